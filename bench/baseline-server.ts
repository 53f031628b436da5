/**
 * The benchmark's baseline: the v1 endpoints the bench exercises, written with nothing but
 * node:http and better-sqlite3. It does the same database work as the real server (same tables,
 * made by the same migrations before this process starts; the same SQL; WAL, synchronous=FULL;
 * one transaction per append that touches the session row and inserts the message) and answers
 * the same JSON shapes, so the gap between the two is the cost of the framework and its layers.
 * Validation is the minimum needed to keep bad input out of the database.
 *
 * It follows whichever schema the migrations built: with the v1.1 session columns it also answers
 * `metadata_tags`, `archived` and `pinned`, hides archived sessions from the default list and, as
 * the contract asks of every full list page, sends a signed `Link: rel="next"` cursor.
 *
 * Environment: BASELINE_DB (an SQLite file that already has the schema), PORT, HOST.
 */
import Database from 'better-sqlite3';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { createServer, IncomingMessage, ServerResponse, STATUS_CODES } from 'node:http';

const BODY_LIMIT = 1024 * 1024;
const ROLES = new Set(['user', 'assistant', 'system']);
const V1_SESSION_COLUMNS = `"id", "name", "created_at", "last_updated_at", "llm_model_name", "rag_document_ids", "message_count"`;
const V11_SESSION_COLUMNS = `${V1_SESSION_COLUMNS}, "metadata_tags", "archived", "pinned"`;
const MESSAGE_COLUMNS = `"id", "session_id", "timestamp", "role", "content", "metadata"`;

interface SessionRow {
  id: string;
  name: string | null;
  created_at: number;
  last_updated_at: number;
  llm_model_name: string | null;
  rag_document_ids: string | null;
  message_count: number;
  metadata_tags?: string | null;
  archived?: number;
  pinned?: number;
}

interface MessageRow {
  id: number;
  session_id: string;
  timestamp: number;
  role: string;
  content: string;
  metadata: string | null;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function openDatabase(path: string) {
  const db = new Database(path, { fileMustExist: true, timeout: 5000 });
  db.pragma('foreign_keys = ON');
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  return db;
}

function hasV11Sessions(db: Database.Database): boolean {
  const columns = db.prepare(`SELECT "name" FROM pragma_table_info('sessions')`).pluck().all();
  return columns.includes('archived');
}

function prepareStatements(db: Database.Database, v11: boolean) {
  const columns = v11 ? V11_SESSION_COLUMNS : V1_SESSION_COLUMNS;
  const unarchived = v11 ? `WHERE "archived" = 0` : '';
  return {
    // v1.1 columns take their defaults: not archived, not pinned, no tags.
    insertSession: db.prepare(
      `INSERT INTO "sessions" (${V1_SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ),
    pageSessions: db.prepare<[number, number], SessionRow>(
      `SELECT ${columns} FROM "sessions" ${unarchived}
       ORDER BY "last_updated_at" DESC, "created_at" DESC, "id" DESC LIMIT ? OFFSET ?`,
    ),
    countSessions: db.prepare<[], { total: number }>(
      `SELECT COUNT(*) AS "total" FROM "sessions" ${unarchived}`,
    ),
    getSession: db.prepare<[string], SessionRow>(
      `SELECT ${columns} FROM "sessions" WHERE "id" = ?`,
    ),
    touchSession: db.prepare<[number, number, string], { last_updated_at: number }>(
      `UPDATE "sessions" SET "message_count" = "message_count" + 1,
         "last_updated_at" = CASE WHEN "last_updated_at" + 1 > ? THEN "last_updated_at" + 1 ELSE ? END
       WHERE "id" = ? RETURNING "last_updated_at"`,
    ),
    insertMessage: db.prepare<[string, number, string, string, string | null], { id: number }>(
      `INSERT INTO "chat_messages" ("session_id", "timestamp", "role", "content", "metadata")
       VALUES (?, ?, ?, ?, ?) RETURNING "id"`,
    ),
    messageCount: db.prepare<[string], { message_count: number }>(
      `SELECT "message_count" FROM "sessions" WHERE "id" = ?`,
    ),
    pageMessages: db.prepare<[string, number, number], MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM "chat_messages" WHERE "session_id" = ?
       ORDER BY "timestamp" ASC, "id" ASC LIMIT ? OFFSET ?`,
    ),
  };
}

const iso = (epochMs: number): string => new Date(epochMs).toISOString();

const parseJson = (text: string | null): unknown => (text === null ? null : JSON.parse(text));

function sessionJson(row: SessionRow) {
  const session = {
    id: row.id,
    name: row.name,
    created_at: iso(row.created_at),
    last_updated_at: iso(row.last_updated_at),
    llm_model_name: row.llm_model_name,
    rag_document_ids: parseJson(row.rag_document_ids),
    message_count: row.message_count,
  };
  if (row.archived === undefined) return session;
  return {
    ...session,
    metadata_tags: parseJson(row.metadata_tags ?? null),
    archived: row.archived === 1,
    pinned: row.pinned === 1,
  };
}

/** A signed, opaque cursor for the page after `last`, as the v1.1 contract asks of full pages. */
function cursorSigner(db: Database.Database) {
  const stored = db
    .prepare<[], { value: string }>(
      `SELECT "value" FROM "settings" WHERE "key" = 'cursor_signing_key'`,
    )
    .get();
  const secret = stored?.value ?? randomBytes(32).toString('base64url');
  return (last: SessionRow): string => {
    const position = [last.last_updated_at, last.created_at, last.id];
    const payload = Buffer.from(JSON.stringify({ v: 1, k: position })).toString('base64url');
    return `${payload}.${createHmac('sha256', secret).update(payload).digest('base64url')}`;
  };
}

function messageJson(row: MessageRow) {
  return {
    id: row.id,
    session_id: row.session_id,
    timestamp: iso(row.timestamp),
    role: row.role,
    content: row.content,
    metadata: parseJson(row.metadata),
  };
}

function sessionNotFound(id: string): HttpError {
  return new HttpError(404, `Session with ID '${id}' not found.`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function queryInt(
  query: URLSearchParams,
  name: string,
  fallback: number,
  min: number,
  max: number,
) {
  const text = query.get(name);
  if (text === null) return fallback;
  const value = Number(text);
  if (!/^\d{1,16}$/.test(text) || value < min || value > max) {
    throw new HttpError(400, `${name} must be an integer from ${min} to ${max}`);
  }
  return value;
}

function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > BODY_LIMIT) reject(new HttpError(413, 'Request body too large.'));
      else chunks.push(chunk);
    });
    req.on('error', reject);
    req.on('end', () => {
      try {
        const body: unknown = size === 0 ? {} : JSON.parse(Buffer.concat(chunks).toString());
        if (!isObject(body)) throw new Error('not an object');
        resolve(body);
      } catch {
        reject(new HttpError(400, 'Malformed JSON in request body.'));
      }
    });
  });
}

type Headers = Record<string, string | number>;

function send(res: ServerResponse, status: number, body: unknown, headers: Headers = {}): void {
  const type = status >= 400 ? 'application/problem+json' : 'application/json; charset=utf-8';
  res.writeHead(status, { 'Content-Type': type, ...headers }).end(JSON.stringify(body));
}

function sendProblem(res: ServerResponse, status: number, detail: string, instance: string) {
  const title = STATUS_CODES[status] ?? 'Error';
  send(res, status, { type: 'about:blank', title, status, detail, instance });
}

function createApi(db: Database.Database, defaultModelName: string) {
  const v11 = hasV11Sessions(db);
  const sql = prepareStatements(db, v11);
  const signCursor = v11 ? cursorSigner(db) : undefined;

  const append = db.transaction(
    (sessionId: string, role: string, content: string, meta: unknown) => {
      const now = Date.now();
      const touched = sql.touchSession.get(now, now, sessionId);
      if (!touched) throw sessionNotFound(sessionId);
      const metadata = meta === undefined || meta === null ? null : JSON.stringify(meta);
      const { id } = sql.insertMessage.get(
        sessionId,
        touched.last_updated_at,
        role,
        content,
        metadata,
      )!;
      return {
        id,
        session_id: sessionId,
        timestamp: iso(touched.last_updated_at),
        role,
        content,
        metadata: meta ?? null,
      };
    },
  );

  return {
    createSession(body: Record<string, unknown>) {
      const name = typeof body.name === 'string' ? body.name.trim() : null;
      const ragIds = Array.isArray(body.rag_document_ids)
        ? (body.rag_document_ids as string[])
        : null;
      const now = Date.now();
      const row: SessionRow = {
        id: randomUUID(),
        name,
        created_at: now,
        last_updated_at: now,
        llm_model_name: defaultModelName,
        rag_document_ids: ragIds === null ? null : JSON.stringify(ragIds),
        message_count: 0,
        ...(v11 ? { metadata_tags: null, archived: 0, pinned: 0 } : {}),
      };
      sql.insertSession.run(
        row.id,
        row.name,
        row.created_at,
        row.last_updated_at,
        row.llm_model_name,
        row.rag_document_ids,
        row.message_count,
      );
      return sessionJson(row);
    },
    listSessions(query: URLSearchParams) {
      const limit = queryInt(query, 'limit', 50, 1, 1000);
      const skip = queryInt(query, 'skip', 0, 0, Number.MAX_SAFE_INTEGER);
      const rows = sql.pageSessions.all(limit, skip);
      const headers: Headers = { 'X-Total-Count': sql.countSessions.get()!.total };
      if (signCursor && rows.length === limit) {
        const cursor = signCursor(rows[rows.length - 1]);
        headers.Link = `</api/v1/sessions?cursor=${cursor}&limit=${limit}>; rel="next"`;
      }
      return { items: rows.map(sessionJson), headers };
    },
    getSession(id: string) {
      const row = sql.getSession.get(id);
      if (!row) throw sessionNotFound(id);
      return sessionJson(row);
    },
    appendMessage(sessionId: string, body: Record<string, unknown>) {
      const { content, role = 'user', metadata } = body;
      if (typeof content !== 'string' || content.length < 1 || content.length > 100_000) {
        throw new HttpError(400, 'content must be 1 to 100000 characters long');
      }
      if (typeof role !== 'string' || !ROLES.has(role)) {
        throw new HttpError(400, 'role must be one of user, assistant, system');
      }
      if (metadata !== undefined && metadata !== null && !isObject(metadata)) {
        throw new HttpError(400, 'metadata must be a JSON object');
      }
      return append(sessionId, role, content, metadata);
    },
    listMessages(sessionId: string, query: URLSearchParams) {
      const limit = queryInt(query, 'limit', 1000, 1, 1000);
      const skip = queryInt(query, 'skip', 0, 0, Number.MAX_SAFE_INTEGER);
      const session = sql.messageCount.get(sessionId);
      if (!session) throw sessionNotFound(sessionId);
      const rows = sql.pageMessages.all(sessionId, limit, skip);
      return { items: rows.map(messageJson), headers: { 'X-Total-Count': session.message_count } };
    },
  };
}

type Api = ReturnType<typeof createApi>;

const SESSION_PATH = /^\/api\/v1\/sessions\/([^/]+)$/;
const MESSAGES_PATH = /^\/api\/v1\/sessions\/([^/]+)\/messages$/;

async function route(api: Api, req: IncomingMessage, res: ServerResponse, appName: string) {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const path = url.pathname.length > 1 ? url.pathname.replace(/\/$/, '') : url.pathname;
  const method = req.method ?? 'GET';
  let match: RegExpExecArray | null;
  if (path === '/' && method === 'GET') {
    const welcome = `Welcome to the ${appName}!`;
    return send(res, 200, { message: welcome, status: 'running', timestamp: iso(Date.now()) });
  }
  if (path === '/api/v1/sessions' && method === 'POST') {
    return send(res, 201, api.createSession(await readJson(req)));
  }
  if (path === '/api/v1/sessions' && method === 'GET') {
    const page = api.listSessions(url.searchParams);
    return send(res, 200, page.items, page.headers);
  }
  if ((match = SESSION_PATH.exec(path)) && method === 'GET') {
    return send(res, 200, api.getSession(decodeURIComponent(match[1])));
  }
  if ((match = MESSAGES_PATH.exec(path)) && method === 'POST') {
    const body = await readJson(req);
    return send(res, 201, api.appendMessage(decodeURIComponent(match[1]), body));
  }
  if ((match = MESSAGES_PATH.exec(path)) && method === 'GET') {
    const page = api.listMessages(decodeURIComponent(match[1]), url.searchParams);
    return send(res, 200, page.items, page.headers);
  }
  throw new HttpError(404, `Cannot ${method} ${path}`);
}

function main(): void {
  const dbPath = process.env.BASELINE_DB;
  if (!dbPath) throw new Error('BASELINE_DB must name an SQLite file that has the schema');
  const db = openDatabase(dbPath);
  const api = createApi(db, process.env.DEFAULT_MODEL_NAME ?? 'default');
  const appName = process.env.APP_NAME ?? 'Chat Sessions API';
  const server = createServer((req, res) => {
    route(api, req, res, appName).catch((error: unknown) => {
      const instance = (req.url ?? '/').split('?')[0];
      if (error instanceof HttpError)
        return sendProblem(res, error.status, error.message, instance);
      console.error(error);
      sendProblem(res, 500, 'An unexpected error occurred.', instance);
    });
  });
  server.listen(Number(process.env.PORT ?? 8001), process.env.HOST ?? '127.0.0.1');
  process.on('SIGTERM', () => server.close(() => db.close()));
}

main();
