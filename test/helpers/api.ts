import type { Server } from 'node:http';
import request from 'supertest';
import type { DatabaseService } from '../../src/database/database.service';

/** What the e2e files share about the wire contract (docs/API.md): paths, formats, problem documents. */

/** A timestamp as the API writes it: ISO 8601, UTC, milliseconds. */
export const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
export const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
/** A well-formed session id that no test creates. */
export const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';

export const SESSIONS = '/api/v1/sessions';
export const messagesOf = (sessionId: string) => `${SESSIONS}/${sessionId}/messages`;
export const messageAt = (sessionId: string, messageId: number | string) =>
  `${messagesOf(sessionId)}/${messageId}`;
/** v1.2 replies: a new reply, a message's stream, its cancel. */
export const repliesOf = (sessionId: string) => `${SESSIONS}/${sessionId}/replies`;
export const streamOf = (sessionId: string, messageId: number) =>
  `${messageAt(sessionId, messageId)}/stream`;
export const cancelOf = (sessionId: string, messageId: number) =>
  `${messageAt(sessionId, messageId)}/cancel`;

/** Waits until `check` holds (polled every 25 ms), or fails after `ms`. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  ms = 10_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not true within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export interface SessionBody {
  id: string;
  name: string | null;
  created_at: string;
  last_updated_at: string;
  llm_model_name: string | null;
  rag_document_ids: string[] | null;
  metadata_tags: Record<string, string> | null;
  message_count: number;
  archived: boolean;
  pinned: boolean;
  current_message_id: number | null;
  forked_from: { session_id: string; message_id: number | null } | null;
  expires_at: string | null;
}

export interface MessageBody {
  id: number;
  session_id: string;
  timestamp: string;
  role: string;
  content: string;
  metadata: object | null;
  parent_id: number | null;
  status: string;
  generation: object | null;
}

/** The headers that authenticate as the owner of `key` (AUTH_MODE=api-key). */
export const bearer = (key: string) => ({ Authorization: `Bearer ${key}` });

/** The problem document of a 400 (`errors` as the test expects it, e.g. a matcher). */
export function badRequest(instance: string, errors: unknown) {
  return {
    type: 'about:blank',
    title: 'Bad Request',
    status: 400,
    detail: expect.any(String),
    instance,
    errors,
  };
}

/** The problem document of a 404. */
export function notFound(instance: string) {
  return {
    type: 'about:blank',
    title: 'Not Found',
    status: 404,
    detail: expect.stringContaining('not found'),
    instance,
  };
}

/** The 404 problem document for a session id that names no session (of the caller's). */
export function sessionNotFound(sessionId: string, instance: string) {
  return {
    type: 'about:blank',
    title: 'Not Found',
    status: 404,
    detail: `Session with ID '${sessionId}' not found.`,
    instance,
  };
}

/** Creates a session through the API (201 expected) and returns it. */
export async function createSession(
  http: Server,
  body: object = {},
  headers: Record<string, string> = {},
): Promise<SessionBody> {
  const res = await request(http).post(SESSIONS).set(headers).send(body);
  expect(res.status).toBe(201);
  return res.body as SessionBody;
}

/** Reads a session through the API (200 expected). */
export async function readSession(http: Server, sessionId: string): Promise<SessionBody> {
  const res = await request(http).get(`${SESSIONS}/${sessionId}`);
  expect(res.status).toBe(200);
  return res.body as SessionBody;
}

/**
 * Appends `n` messages one after the other (201 expected for each): contents m0, m1, …, roles
 * alternating user/assistant, metadata `{ i }`. Returns them as the API answered.
 */
export async function appendMessages(
  http: Server,
  sessionId: string,
  n: number,
): Promise<MessageBody[]> {
  const messages: MessageBody[] = [];
  for (let i = 0; i < n; i++) {
    const res = await request(http)
      .post(messagesOf(sessionId))
      .send({ content: `m${i}`, role: i % 2 ? 'assistant' : 'user', metadata: { i } });
    expect(res.status).toBe(201);
    messages.push(res.body as MessageBody);
  }
  return messages;
}

/**
 * Gives each session its own, well separated activity times in the past, straight in the database:
 * the first is the oldest.
 */
export async function spreadActivity(db: DatabaseService, ids: string[]): Promise<void> {
  for (const [i, id] of ids.entries()) {
    await db.write((m) =>
      m.query(
        db.sql('UPDATE "sessions" SET "created_at" = ?, "last_updated_at" = ? WHERE "id" = ?'),
        [1_000_000 + i * 1000, 1_000_000 + i * 1000 + 500, id],
      ),
    );
  }
}

/** Appends one message through the API (201 expected) and returns it. */
export async function postMessage(
  http: Server,
  sessionId: string,
  body: object,
): Promise<MessageBody> {
  const res = await request(http).post(messagesOf(sessionId)).send(body);
  expect(res.status).toBe(201);
  return res.body as MessageBody;
}

/** The raw text of a response, whatever its content type (supertest parses only some). */
export function rawText(req: request.Test): request.Test {
  return req.buffer(true).parse((res, done) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => (body += chunk));
    res.on('end', () => done(null, body));
  });
}
