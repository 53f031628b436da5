import { STATUS_CODES } from 'node:http';
import type { Problem } from '../problems/problem';

/*
 * Examples for the OpenAPI document, copied from real responses of the server (ids and times
 * replaced by fixed ones). test/openapi.e2e-spec.ts checks each against its schema, and the problem
 * examples against the problems the server really sends, so a change of wording shows up there.
 */

export const EXAMPLE_SESSION_ID = '6f1c2a8e-3b7d-4c5e-9a10-2f4b6c8d0e12';

const session = {
  id: EXAMPLE_SESSION_ID,
  name: 'Trip planning',
  created_at: '2026-05-02T09:14:03.215Z',
  last_updated_at: '2026-05-02T09:15:41.870Z',
  llm_model_name: 'default',
  rag_document_ids: ['doc-1'],
  metadata_tags: { project: 'travel' },
  message_count: 2,
  archived: false,
  pinned: false,
  current_message_id: 2,
  forked_from: null,
  expires_at: null,
};

const question = {
  id: 1,
  session_id: EXAMPLE_SESSION_ID,
  timestamp: '2026-05-02T09:15:12.402Z',
  role: 'user',
  content: 'Where should we go in May?',
  metadata: null,
  parent_id: null,
  status: 'complete',
  generation: null,
};

const answer = {
  id: 2,
  session_id: EXAMPLE_SESSION_ID,
  timestamp: '2026-05-02T09:15:41.870Z',
  role: 'assistant',
  content: 'Lisbon is lovely in late May.',
  metadata: { model: 'gpt-x' },
  parent_id: 1,
  status: 'complete',
  generation: null,
};

const exported = { session, messages: [question, answer] };

const markdown =
  '# Trip planning\n\n' +
  `- Session: \`${EXAMPLE_SESSION_ID}\`\n` +
  '- Created: 2026-05-02T09:14:03.215Z\n' +
  '- Last updated: 2026-05-02T09:15:41.870Z\n' +
  '- Messages: 2\n' +
  '- Model: default\n\n' +
  '## User · 2026-05-02T09:15:12.402Z\n\nWhere should we go in May?\n\n' +
  '## Assistant · 2026-05-02T09:15:41.870Z\n\nLisbon is lovely in late May.\n';

const database = { driver: 'sqlite', latency_ms: 0, status: 'up' };

/** The success body of each operation, by media type. */
export const SUCCESS_EXAMPLES: Record<string, Record<string, unknown>> = {
  'GET /': {
    'application/json': {
      message: 'Welcome to the Chat Sessions API!',
      status: 'running',
      timestamp: '2026-05-02T09:14:00.031Z',
    },
  },
  'POST /api/v1/sessions': {
    'application/json': {
      ...session,
      last_updated_at: session.created_at,
      metadata_tags: null,
      message_count: 0,
      current_message_id: null,
    },
  },
  'GET /api/v1/sessions': { 'application/json': [session] },
  'GET /api/v1/sessions/{id}': { 'application/json': session },
  'PATCH /api/v1/sessions/{id}': { 'application/json': { ...session, pinned: true } },
  'POST /api/v1/sessions/{id}/messages': { 'application/json': answer },
  'POST /api/v1/sessions/{id}/fork': {
    'application/json': {
      ...session,
      id: '5a0c39e4-86f2-4d8e-9d5c-61b0e3e8f2aa',
      created_at: '2026-05-02T09:20:00.000Z',
      last_updated_at: '2026-05-02T09:20:00.001Z',
      current_message_id: 4,
      forked_from: { session_id: EXAMPLE_SESSION_ID, message_id: 2 },
    },
  },
  'GET /api/v1/sessions/{id}/messages': { 'application/json': [question, answer] },
  'GET /api/v1/sessions/{id}/messages/{message_id}': { 'application/json': question },
  'GET /api/v1/search': {
    'application/json': [
      { session, message: null, snippet: '[Lisbon] trip' },
      { session, message: answer, snippet: '[Lisbon] is lovely in late May.' },
    ],
  },
  'GET /api/v1/sessions/{id}/export': {
    'application/json': exported,
    'text/markdown': markdown,
  },
  'GET /api/v1/export': { 'application/x-ndjson': `${JSON.stringify(exported)}\n` },
  'POST /api/v1/import': {
    'application/json': {
      imported: 1,
      skipped: 0,
      sessions: [EXAMPLE_SESSION_ID],
      message_ids: 'kept',
      renumbered_sessions: [],
    },
  },
  'GET /health/live': { 'application/json': { status: 'ok' } },
  'GET /health/ready': {
    'application/json': { status: 'ok', info: { database }, error: {}, details: { database } },
  },
};

const sessionNotFound = `Session with ID '${EXAMPLE_SESSION_ID}' not found.`;
const validation = (field: string, message: string) => ({
  detail: `Request validation failed: ${message}`,
  errors: [{ field, message }],
});

type ProblemText = Pick<Problem, 'detail' | 'errors'> & { extras?: Record<string, unknown> };

const messageNotFound = `Message with ID '3' not found in session '${EXAMPLE_SESSION_ID}'.`;

/** The wording of each status, for every operation that answers it. */
const PROBLEMS: Record<number, ProblemText> = {
  401: { detail: 'Missing API key: send Authorization: Bearer <key>.' },
  404: { detail: sessionNotFound },
  409: {
    detail:
      'A request with this Idempotency-Key is still being processed; retry after it completes.',
  },
  413: { detail: 'Request body exceeds the 1048576 byte limit.' },
  415: { detail: "Unsupported Content-Type 'text/plain': send application/json." },
  422: { detail: 'This Idempotency-Key was already used with a different request body.' },
  429: { detail: 'Rate limit of 600 requests per minute exceeded; retry in 42 s.' },
  500: { detail: 'An unexpected error occurred.' },
  503: { detail: 'The database could not complete the request; try again later.' },
  507: {
    detail: 'The server has run out of storage space; nothing was saved. Try again later.',
  },
};

/** Where one operation's wording differs from the table above. */
const OPERATION_PROBLEMS: Record<string, Record<number, ProblemText>> = {
  'POST /api/v1/sessions': {
    400: validation('name', 'name must be 1 to 200 characters long after trimming'),
  },
  'GET /api/v1/sessions': {
    400: validation('limit', 'limit must be an integer from 1 to 1000'),
  },
  'PATCH /api/v1/sessions/{id}': {
    400: validation('pinned', 'pinned must be true or false'),
  },
  'POST /api/v1/sessions/{id}/messages': {
    400: {
      detail:
        'Request validation failed: content must be 1 to 100000 characters long; role must be one of user, assistant, system',
      errors: [
        { field: 'content', message: 'content must be 1 to 100000 characters long' },
        { field: 'role', message: 'role must be one of user, assistant, system' },
      ],
    },
  },
  'POST /api/v1/sessions/{id}/fork': {
    400: validation('message_id', 'message_id names message 999, which is not in this session'),
  },
  'GET /api/v1/sessions/{id}/messages': {
    400: validation('before', 'before names message 999, which is not in this session'),
  },
  'GET /api/v1/sessions/{id}/messages/{message_id}': { 404: { detail: messageNotFound } },
  'DELETE /api/v1/sessions/{id}/messages/{message_id}': { 404: { detail: messageNotFound } },
  'POST /api/v1/sessions/{id}/replies': {
    400: validation('temperature', 'temperature must be a number from 0 to 2'),
    409: {
      detail:
        'The parent message is a reply still being generated: wait for it to end, or cancel it.',
    },
    502: {
      detail:
        'The model failed: the model server answered 500: upstream exploded. The failed reply is stored as message 4.',
      extras: { message_id: 4 },
    },
    503: {
      detail:
        'Replies from a language model are off: set LLM_BASE_URL to an OpenAI-compatible API (e.g. http://127.0.0.1:11434/v1 for Ollama) and restart the service.',
    },
    504: {
      detail:
        'The model failed: the model did not finish within 120000 ms (LLM_TIMEOUT_MS). The failed reply is stored as message 4.',
      extras: { message_id: 4 },
    },
  },
  'GET /api/v1/sessions/{id}/messages/{message_id}/stream': {
    400: validation('offset', 'offset must be a non-negative integer'),
    404: { detail: messageNotFound },
  },
  'POST /api/v1/sessions/{id}/messages/{message_id}/cancel': {
    404: { detail: messageNotFound },
    409: { detail: 'Message 3 is not a reply in progress: there is nothing to cancel.' },
  },
  'GET /api/v1/search': {
    400: validation('q', 'q must be 1 to 500 characters long (after trimming)'),
  },
  'GET /health/ready': {
    503: { detail: 'Not ready (database: down).' },
  },
  'GET /api/v1/sessions/{id}/export': {
    400: validation('format', 'format must be one of json, markdown'),
  },
  'GET /api/v1/export': {
    400: validation('archived', 'archived must be one of false, true, any'),
  },
  'POST /api/v1/import': {
    400: {
      detail:
        'Nothing was imported: [0] is neither an export ({"session", "messages"}) nor a ChatGPT conversation (with a "mapping")',
      errors: [
        {
          field: '[0]',
          message:
            '[0] is neither an export ({"session", "messages"}) nor a ChatGPT conversation (with a "mapping")',
        },
      ],
    },
    413: { detail: 'Request body exceeds the 52428800 byte limit.' },
    429: {
      detail:
        'Another import of yours is still running (at most 1 at a time); retry when it has finished.',
    },
    503: { detail: 'The server is running 2 imports already; retry shortly.' },
    415: {
      detail:
        "Unsupported Content-Type 'text/plain': send application/json or application/x-ndjson.",
    },
  },
};

/** The path of an operation with example ids in place of its parameters. */
function examplePath(path: string): string {
  return path.replace('{id}', EXAMPLE_SESSION_ID).replace('{message_id}', '3');
}

/** A problem document as the server sends it for `status` on `operation` ("METHOD /path"). */
export function problemExample(operation: string, status: number): Problem {
  const text = OPERATION_PROBLEMS[operation]?.[status] ?? PROBLEMS[status];
  if (!text) throw new Error(`No problem example for ${status} on ${operation}`);
  return {
    type: 'about:blank',
    title: STATUS_CODES[status] ?? 'Error',
    status,
    detail: text.detail,
    instance: examplePath(operation.slice(operation.indexOf(' ') + 1)),
    ...(text.errors ? { errors: text.errors } : {}),
    ...text.extras,
  };
}
