/**
 * The bench's ceiling: the endpoints the bench exercises, written as well as plain code can with
 * nothing but node:http and better-sqlite3, doing all the work our server does for them:
 * - the schema our migrations built (same tables, indexes and search-index triggers), WAL,
 *   `synchronous` as ours (SQLITE_SYNCHRONOUS, FULL by default), every statement prepared once;
 * - owner scoping (`local`, as AUTH_MODE=none), X-Total-Count from `session_counts` kept in the
 *   transaction that creates a session, `message_count` / `last_updated_at` moved in the append's
 *   transaction, signed list cursors in `Link`, the same JSON, headers and problem documents;
 * - group commit: writes that arrive while one is pending share one transaction (each in its own
 *   savepoint) and are answered after its COMMIT, so an acknowledged write is on disk, as ours;
 * - the same input rules (content type, size, strict JSON, unknown fields, text, metadata, tags,
 *   paging parameters), answered with the same status codes.
 * The gap between it and our server is what the framework, TypeORM and our layers cost.
 *
 * Environment: CEILING_DB (an SQLite file our migrations created), PORT, HOST, SQLITE_SYNCHRONOUS,
 * DEFAULT_MODEL_NAME, APP_NAME. Compiled to plain JavaScript and run by plain node (see servers.ts).
 */
import Database from 'better-sqlite3';
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, IncomingMessage, ServerResponse, STATUS_CODES } from 'node:http';

const OWNER = 'local';
const BODY_LIMIT = 1024 * 1024;
const BODY_MAX_DEPTH = 32;
const MAX_WRITES_PER_COMMIT = 64;
const ROLES = ['user', 'assistant', 'system'];
const SESSION_COLUMNS = `"id", "owner_id", "name", "created_at", "last_updated_at", "llm_model_name", "rag_document_ids", "metadata_tags", "message_count", "archived", "pinned", "current_message_id", "forked_from", "expires_at"`;
const MESSAGE_COLUMNS = `"id", "session_id", "timestamp", "role", "content", "metadata", "parent_id", "status", "generation"`;
/** The database clock in epoch ms, and a session that has not expired (`expires_at`), as ours reads them. */
const NOW = `CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`;
const LIVE = `("expires_at" IS NULL OR "expires_at" > ${NOW})`;
const SESSION_ORDER = `ORDER BY "last_updated_at" DESC, "created_at" DESC, "id" DESC`;
const VALID_REQUEST_ID = /^[\w.:-]{1,128}$/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const INTEGER = /^-?\d{1,16}$/;

/** What helmet sends with our configuration, as constants. */
const SECURITY_HEADERS = {
  'Content-Security-Policy':
    "default-src 'self';base-uri 'self';font-src 'self' https: data:;form-action 'self';frame-ancestors 'self';img-src 'self' data:;object-src 'none';script-src 'self';script-src-attr 'none';style-src 'self' https: 'unsafe-inline'",
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Origin-Agent-Cluster': '?1',
  'Referrer-Policy': 'no-referrer',
  'X-Content-Type-Options': 'nosniff',
  'X-DNS-Prefetch-Control': 'off',
  'X-Download-Options': 'noopen',
  'X-Frame-Options': 'SAMEORIGIN',
  'X-Permitted-Cross-Domain-Policies': 'none',
  'X-XSS-Protection': '0',
};

interface SessionRow {
  id: string;
  name: string | null;
  created_at: number;
  last_updated_at: number;
  llm_model_name: string | null;
  rag_document_ids: string | null;
  metadata_tags: string | null;
  message_count: number;
  archived: number;
  pinned: number;
  current_message_id: number | null;
  forked_from: string | null;
  expires_at: number | null;
}

interface MessageRow {
  id: number;
  session_id: string;
  timestamp: number;
  role: string;
  content: string;
  metadata: string | null;
  parent_id: number | null;
  status: string;
  generation: string | null;
}

interface FieldError {
  field: string;
  message: string;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errors?: FieldError[],
  ) {
    super(message);
  }
}

const invalid = (errors: FieldError[]) =>
  new HttpError(
    400,
    `Request validation failed: ${errors.map((e) => e.message).join('; ')}`,
    errors,
  );
const invalidField = (field: string, message: string) => invalid([{ field, message }]);
const sessionNotFound = (id: string) => new HttpError(404, `Session with ID '${id}' not found.`);

const iso = (ms: number) => new Date(ms).toISOString();
const parseJson = (text: string | null): unknown => (text === null ? null : JSON.parse(text));
const toJson = (value: unknown) =>
  value === null || value === undefined ? null : JSON.stringify(value);
const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const isStorableText = (text: string) => !text.includes('\u0000') && !LONE_SURROGATE.test(text);

/** Length as class-validator counts it: a surrogate pair or a variation selector is not a character. */
function textLength(text: string): number {
  let length = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0xfe0f || code === 0xfe0e) length--;
    else if (code >= 0xd800 && code <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        length--;
        i++;
      }
    }
  }
  return length;
}

/** Nesting depth and whether every number is finite, in one walk without recursion. */
function shape(value: unknown): { depth: number; finite: boolean } {
  let depth = 0;
  let finite = true;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [node, level] = stack.pop()!;
    if (typeof node === 'number' && !Number.isFinite(node)) finite = false;
    if (node === null || typeof node !== 'object') continue;
    depth = Math.max(depth, level + 1);
    for (const child of Object.values(node)) stack.push([child, level + 1]);
  }
  return { depth, finite };
}

function metadataProblem(value: unknown): string | null {
  if (!isObject(value)) return 'metadata must be a JSON object';
  const { depth, finite } = shape(value);
  if (depth > 16) return 'metadata must be at most 16 levels deep';
  if (!finite) return 'metadata holds a number too large for JSON to store exactly';
  if (Buffer.byteLength(JSON.stringify(value)) > 16 * 1024) {
    return 'metadata must be at most 16384 bytes serialized';
  }
  return null;
}

function tagsProblem(value: unknown): string | null {
  if (!isObject(value)) return 'metadata_tags must be an object of string values';
  const entries = Object.entries(value);
  if (entries.length > 16)
    return `metadata_tags has ${entries.length} keys; at most 16 are allowed`;
  for (const [key, tag] of entries) {
    if ([...key].length < 1 || [...key].length > 64) {
      return `metadata_tags key '${key.slice(0, 80)}' must be 1 to 64 characters long`;
    }
    if (typeof tag !== 'string' || [...tag].length > 512) {
      return `metadata_tags['${key}'] must be a string of at most 512 characters`;
    }
  }
  return null;
}

/** Strict bodies: reserved keys and fields the endpoint does not know are refused. */
function checkFields(body: Record<string, unknown>, known: string[]): void {
  const unknown = Object.keys(body).filter((key) => !known.includes(key));
  for (const key of ['__proto__', 'constructor', 'prototype']) {
    if (Object.hasOwn(body, key) && !unknown.includes(key)) unknown.push(key);
  }
  if (unknown.length > 0) {
    throw invalid(
      unknown.map((field) => ({ field, message: `property ${field} should not exist` })),
    );
  }
}

function queryInteger(
  query: URLSearchParams,
  name: string,
  fallback: number | undefined,
  min: number,
  max: number,
  message: string,
): number | undefined {
  const text = query.get(name);
  if (text === null) return fallback;
  const value = INTEGER.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(value) || value < min) throw invalidField(name, message);
  if (value > max) throw invalidField(name, name === 'skip' ? 'skip is too large' : message);
  return value;
}

const limitOf = (query: URLSearchParams, fallback: number) =>
  queryInteger(query, 'limit', fallback, 1, 1000, 'limit must be an integer from 1 to 1000')!;
const skipOf = (query: URLSearchParams) =>
  queryInteger(
    query,
    'skip',
    undefined,
    0,
    Number.MAX_SAFE_INTEGER,
    'skip must be a non-negative integer',
  );

function sessionJson(row: SessionRow) {
  return {
    id: row.id,
    name: row.name,
    created_at: iso(row.created_at),
    last_updated_at: iso(row.last_updated_at),
    llm_model_name: row.llm_model_name,
    rag_document_ids: parseJson(row.rag_document_ids),
    metadata_tags: parseJson(row.metadata_tags),
    message_count: row.message_count,
    archived: row.archived === 1,
    pinned: row.pinned === 1,
    current_message_id: row.current_message_id,
    forked_from: parseJson(row.forked_from),
    expires_at: row.expires_at === null ? null : iso(row.expires_at),
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
    parent_id: row.parent_id,
    status: row.status,
    generation: parseJson(row.generation),
  };
}

function openDatabase(path: string): Database.Database {
  const db = new Database(path, { fileMustExist: true, timeout: 5000 });
  db.pragma('foreign_keys = ON');
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${process.env.SQLITE_SYNCHRONOUS === 'NORMAL' ? 'NORMAL' : 'FULL'}`);
  return db;
}

/** Statements prepared on first use and kept: the list's filters make a few variants. */
function statementCache(db: Database.Database) {
  const cache = new Map<string, Database.Statement>();
  return <R>(sql: string) => {
    let statement = cache.get(sql);
    if (!statement) cache.set(sql, (statement = db.prepare(sql)));
    return statement as Database.Statement<unknown[], R>;
  };
}

/**
 * Group commit: the writes that queue up within one turn of the event loop run in one transaction,
 * each in a savepoint (a failing write rolls back alone), and settle after the COMMIT.
 */
function groupCommitter(db: Database.Database) {
  type Pending = {
    work: () => unknown;
    resolve: (v: unknown) => void;
    reject: (e: unknown) => void;
  };
  const queue: Pending[] = [];
  const inSavepoint = db.transaction((work: () => unknown) => work());
  const commit = () => {
    const batch = queue.splice(0, MAX_WRITES_PER_COMMIT);
    if (queue.length > 0) setImmediate(commit);
    const outcomes: Array<{ ok: boolean; value: unknown }> = [];
    try {
      db.transaction(() => {
        for (const pending of batch) {
          try {
            outcomes.push({ ok: true, value: inSavepoint(pending.work) });
          } catch (error) {
            outcomes.push({ ok: false, value: error });
          }
        }
      })();
    } catch (error) {
      for (const pending of batch) pending.reject(error);
      return;
    }
    batch.forEach((pending, i) =>
      outcomes[i].ok ? pending.resolve(outcomes[i].value) : pending.reject(outcomes[i].value),
    );
  };
  return <T>(work: () => T): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      queue.push({ work, resolve: resolve as (v: unknown) => void, reject });
      if (queue.length === 1) setImmediate(commit);
    });
}

function cursors(db: Database.Database) {
  const { value } = db
    .prepare<[], { value: string }>(
      `SELECT "value" FROM "settings" WHERE "key" = 'cursor_signing_key'`,
    )
    .get()!;
  const key = Buffer.from(value, 'base64url');
  const sign = (body: string) => createHmac('sha256', key).update(body).digest('base64url');
  return {
    encode(payload: unknown): string {
      const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
      return `${body}.${sign(body)}`;
    },
    decode(token: string): unknown {
      const bad = invalidField('cursor', 'cursor is malformed or was not issued by this server');
      const [body, signature, extra] = token.split('.');
      if (!body || !signature || extra !== undefined) throw bad;
      const given = Buffer.from(signature);
      const expected = Buffer.from(sign(body));
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw bad;
      try {
        return JSON.parse(Buffer.from(body, 'base64url').toString()) as unknown;
      } catch {
        throw bad;
      }
    },
  };
}

type Headers = Record<string, string | number>;
interface Answer {
  status: number;
  body: unknown;
  headers?: Headers;
}

function createApi(db: Database.Database) {
  const statement = statementCache(db);
  const write = groupCommitter(db);
  const cursor = cursors(db);
  const modelName = process.env.DEFAULT_MODEL_NAME ?? 'default';
  const sql = {
    insertSession: statement(
      `INSERT INTO "sessions" (${SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL)`,
    ),
    countSession: statement(
      `INSERT INTO "session_counts" ("owner_id", "archived", "pinned", "n") VALUES (?, ?, ?, 1)
       ON CONFLICT ("owner_id", "archived", "pinned") DO UPDATE SET "n" = "session_counts"."n" + 1`,
    ),
    getSession: statement<SessionRow>(
      `SELECT ${SESSION_COLUMNS} FROM "sessions" WHERE "id" = ? AND "owner_id" = ? AND ${LIVE}`,
    ),
    touchSession: statement<{ last_updated_at: number; current_message_id: number | null }>(
      `UPDATE "sessions" SET "message_count" = "message_count" + 1,
         "last_updated_at" = CASE WHEN "last_updated_at" + 1 > ? THEN "last_updated_at" + 1 ELSE ? END
       WHERE "id" = ? AND "owner_id" = ? AND ${LIVE} RETURNING "last_updated_at", "current_message_id"`,
    ),
    insertMessage: statement<{ id: number }>(
      `INSERT INTO "chat_messages" ("session_id", "timestamp", "parent_id", "role", "content", "metadata")
       VALUES (?, ?, ?, ?, ?, ?) RETURNING "id"`,
    ),
    setCurrent: statement(`UPDATE "sessions" SET "current_message_id" = ? WHERE "id" = ?`),
    messageCount: statement<{ message_count: number }>(
      `SELECT "message_count" FROM "sessions" WHERE "id" = ? AND "owner_id" = ? AND ${LIVE}`,
    ),
    position: statement<{ timestamp: number; id: number }>(
      `SELECT "timestamp", "id" FROM "chat_messages" WHERE "id" = ? AND "session_id" = ?`,
    ),
    current: statement<{ current_message_id: number | null }>(
      `SELECT "current_message_id" FROM "sessions" WHERE "id" = ? AND "owner_id" = ? AND ${LIVE}`,
    ),
    tree: statement<{ id: number; parent_id: number | null }>(
      `SELECT "id", "parent_id" FROM "chat_messages" WHERE "session_id" = ?
       ORDER BY "parent_id", "timestamp", "id"`,
    ),
  };

  /**
   * `?branch=`: the session's (id, parent) pairs read in one index scan, the path walked up from
   * the leaf in a Map, paged, and the page's rows read by id with each one's siblings.
   */
  function listBranch(sessionId: string, query: URLSearchParams): Answer {
    const branch = query.get('branch')!;
    if (!/^(current|[1-9]\d{0,14})$/.test(branch)) {
      throw invalidField('branch', 'branch must be current or a message id');
    }
    // The bench pages branches by skip and limit only.
    if (query.has('after') || query.has('before')) throw new HttpError(501, 'Not implemented');
    const limit = limitOf(query, 1000);
    const skip = skipOf(query) ?? 0;
    const order = query.get('order') ?? 'asc';
    if (order !== 'asc' && order !== 'desc')
      throw invalidField('order', 'order must be asc or desc');
    const session = sql.current.get(sessionId, OWNER);
    if (!session) throw sessionNotFound(sessionId);
    const leaf = branch === 'current' ? session.current_message_id : Number(branch);
    const parentOf = new Map<number, number | null>();
    const children = new Map<number | null, number[]>();
    for (const row of sql.tree.all(sessionId)) {
      parentOf.set(row.id, row.parent_id);
      const siblings = children.get(row.parent_id);
      if (siblings) siblings.push(row.id);
      else children.set(row.parent_id, [row.id]);
    }
    const path: number[] = [];
    for (let id = leaf; id !== null; id = parentOf.get(id)!) {
      if (!parentOf.has(id)) {
        throw invalidField('branch', `branch names message ${id}, which is not in this session`);
      }
      path.push(id);
    }
    if (order === 'asc') path.reverse();
    const page = path.slice(skip, skip + limit);
    const rows = page.length
      ? statement<MessageRow>(
          `SELECT ${MESSAGE_COLUMNS} FROM "chat_messages"
           WHERE "session_id" = ? AND "id" IN (${page.map(() => '?').join(', ')})`,
        ).all(sessionId, ...page)
      : [];
    const byId = new Map(rows.map((row) => [row.id, row]));
    const headers: Headers = { 'X-Total-Count': path.length };
    if (leaf !== null && page.length === limit) {
      const next = new URLSearchParams({
        branch: String(leaf),
        after: String(page.at(-1)),
        limit: String(limit),
        order,
      });
      headers.Link = `</api/v1/sessions/${sessionId}/messages?${next.toString()}>; rel="next"`;
    }
    const body = page.map((id) => {
      const row = byId.get(id)!;
      return { ...messageJson(row), sibling_ids: children.get(row.parent_id) };
    });
    return { status: 200, body, headers };
  }

  function createSession(body: Record<string, unknown>): Promise<Answer> {
    checkFields(body, ['name', 'rag_document_ids', 'metadata_tags', 'archived', 'pinned']);
    const errors: FieldError[] = [];
    let name = body.name ?? null;
    if (name !== null) {
      if (typeof name !== 'string')
        errors.push({ field: 'name', message: 'name must be a string' });
      else {
        name = name.trim();
        if (!isStorableText(name as string)) {
          errors.push({
            field: 'name',
            message: 'name must be valid Unicode text without NUL (U+0000) characters',
          });
        } else if (textLength(name as string) < 1 || textLength(name as string) > 200) {
          errors.push({
            field: 'name',
            message: 'name must be 1 to 200 characters long after trimming',
          });
        }
      }
    }
    const ragIds = body.rag_document_ids ?? null;
    if (ragIds !== null) {
      const ok =
        Array.isArray(ragIds) &&
        ragIds.length <= 100 &&
        ragIds.every(
          (id) =>
            typeof id === 'string' &&
            isStorableText(id) &&
            textLength(id) >= 1 &&
            textLength(id) <= 200,
        );
      if (!ok) {
        errors.push({
          field: 'rag_document_ids',
          message: 'each of rag_document_ids must be 1 to 200 characters long',
        });
      }
    }
    const tags = body.metadata_tags ?? null;
    const tagsError = tags === null ? null : tagsProblem(tags);
    if (tagsError) errors.push({ field: 'metadata_tags', message: tagsError });
    for (const flag of ['archived', 'pinned']) {
      if (body[flag] !== undefined && typeof body[flag] !== 'boolean') {
        errors.push({ field: flag, message: `${flag} must be true or false` });
      }
    }
    if (errors.length > 0) throw invalid(errors);
    const now = Date.now();
    const archived = body.archived === true ? 1 : 0;
    const pinned = body.pinned === true ? 1 : 0;
    const row: SessionRow = {
      id: randomUUID(),
      name: name as string | null,
      created_at: now,
      last_updated_at: now,
      llm_model_name: modelName,
      rag_document_ids: toJson(ragIds),
      metadata_tags: toJson(tags),
      message_count: 0,
      archived,
      pinned,
      current_message_id: null,
      forked_from: null,
      expires_at: null,
    };
    return write(() => {
      sql.insertSession.run(
        row.id,
        OWNER,
        row.name,
        now,
        now,
        modelName,
        row.rag_document_ids,
        row.metadata_tags,
        0,
        archived,
        pinned,
      );
      sql.countSession.run(OWNER, archived, pinned);
      return { status: 201, body: sessionJson(row) };
    });
  }

  function listSessions(query: URLSearchParams): Answer {
    const limit = limitOf(query, 50);
    const skip = skipOf(query);
    const token = query.get('cursor');
    const archived = query.get('archived') ?? 'false';
    if (!['false', 'true', 'any'].includes(archived)) {
      throw invalidField('archived', 'archived must be one of false, true, any');
    }
    const pinned = query.get('pinned');
    if (pinned !== null && pinned !== 'true' && pinned !== 'false') {
      throw invalidField('pinned', 'pinned must be true or false');
    }
    if (token !== null && skip !== undefined) {
      throw invalidField('skip', 'skip cannot be combined with cursor');
    }
    const filters = [`"owner_id" = ?`];
    const params: unknown[] = [OWNER];
    if (archived !== 'any') {
      filters.push(`"archived" = ?`);
      params.push(archived === 'true' ? 1 : 0);
    }
    if (pinned !== null) {
      filters.push(`"pinned" = ?`);
      params.push(pinned === 'true' ? 1 : 0);
    }
    // The counts less the expired sessions not yet swept, as ours computes it.
    const where = filters.join(' AND ');
    const { total } = statement<{ total: number }>(
      `SELECT COALESCE(SUM("n"), 0)
         - (SELECT COUNT(*) FROM "sessions" INDEXED BY "idx_sessions_expires_at"
            WHERE ${where} AND "expires_at" <= ${NOW}) AS "total"
       FROM "session_counts" WHERE ${where}`,
    ).get(...params, ...params)!;
    if (token !== null) {
      const payload = cursor.decode(token) as { v?: unknown; k?: unknown };
      const k = payload?.k;
      const valid =
        payload?.v === 1 &&
        Array.isArray(k) &&
        k.length === 3 &&
        Number.isSafeInteger(k[0]) &&
        Number.isSafeInteger(k[1]) &&
        typeof k[2] === 'string';
      if (!valid) throw invalidField('cursor', 'cursor is not a session list cursor');
      filters.push(`("last_updated_at", "created_at", "id") < (?, ?, ?)`);
      params.push(...(k as unknown[]));
    }
    const rows = statement<SessionRow>(
      `SELECT ${SESSION_COLUMNS} FROM "sessions" WHERE ${filters.join(' AND ')} AND ${LIVE} ${SESSION_ORDER} LIMIT ? OFFSET ?`,
    ).all(...params, limit, skip ?? 0);
    const headers: Headers = { 'X-Total-Count': total };
    const last = rows.at(-1);
    if (last && rows.length === limit) {
      const next = new URLSearchParams({
        cursor: cursor.encode({ v: 1, k: [last.last_updated_at, last.created_at, last.id] }),
        limit: String(limit),
        archived,
        ...(pinned === null ? {} : { pinned }),
      });
      headers.Link = `</api/v1/sessions?${next.toString()}>; rel="next"`;
    }
    return { status: 200, body: rows.map(sessionJson), headers };
  }

  function getSession(id: string): Answer {
    const row = sql.getSession.get(id, OWNER);
    if (!row) throw sessionNotFound(id);
    return { status: 200, body: sessionJson(row) };
  }

  function appendMessage(sessionId: string, body: Record<string, unknown>): Promise<Answer> {
    checkFields(body, ['content', 'role', 'metadata', 'parent_id']);
    const { content, role = 'user', parent_id: parent } = body;
    if (parent !== undefined && parent !== null && !Number.isSafeInteger(parent)) {
      throw invalidField('parent_id', 'parent_id must be a message id or null');
    }
    const metadata = body.metadata ?? null;
    const errors: FieldError[] = [];
    if (typeof content !== 'string') {
      errors.push({ field: 'content', message: 'content must be a string' });
    } else if (!isStorableText(content)) {
      errors.push({
        field: 'content',
        message: 'content must be valid Unicode text without NUL (U+0000) characters',
      });
    } else if (textLength(content) < 1 || textLength(content) > 100_000) {
      errors.push({ field: 'content', message: 'content must be 1 to 100000 characters long' });
    }
    if (typeof role !== 'string' || !ROLES.includes(role)) {
      errors.push({ field: 'role', message: `role must be one of ${ROLES.join(', ')}` });
    }
    const metadataError = metadata === null ? null : metadataProblem(metadata);
    if (metadataError) errors.push({ field: 'metadata', message: metadataError });
    if (errors.length > 0) throw invalid(errors);
    const stored = toJson(metadata);
    return write(() => {
      const now = Date.now();
      const touched = sql.touchSession.get(now, now, sessionId, OWNER);
      if (!touched) throw sessionNotFound(sessionId);
      const parentId =
        parent === undefined ? touched.current_message_id : (parent as number | null);
      if (parentId !== null && !sql.position.get(parentId, sessionId)) {
        throw invalidField(
          'parent_id',
          `parent_id names message ${parentId}, which is not in this session`,
        );
      }
      const { id } = sql.insertMessage.get(
        sessionId,
        touched.last_updated_at,
        parentId,
        role,
        content,
        stored,
      )!;
      sql.setCurrent.run(id, sessionId);
      return {
        status: 201,
        body: {
          id,
          session_id: sessionId,
          timestamp: iso(touched.last_updated_at),
          role,
          content,
          metadata,
          parent_id: parentId,
          status: 'complete',
          generation: null,
        },
      };
    });
  }

  function listMessages(sessionId: string, query: URLSearchParams): Answer {
    if (query.has('branch')) return listBranch(sessionId, query);
    const limit = limitOf(query, 1000);
    const skip = skipOf(query);
    const order = query.get('order') ?? 'asc';
    if (order !== 'asc' && order !== 'desc')
      throw invalidField('order', 'order must be asc or desc');
    const after = queryInteger(
      query,
      'after',
      undefined,
      -Infinity,
      Infinity,
      'after must be a message id',
    );
    const before = queryInteger(
      query,
      'before',
      undefined,
      -Infinity,
      Infinity,
      'before must be a message id',
    );
    if ((after !== undefined || before !== undefined) && skip !== undefined) {
      throw invalidField('skip', 'skip cannot be combined with after or before');
    }
    const session = sql.messageCount.get(sessionId, OWNER);
    if (!session) throw sessionNotFound(sessionId);
    const ascending = order === 'asc';
    const conditions = [`"session_id" = ?`];
    const params: unknown[] = [sessionId];
    for (const [param, id] of [
      ['after', after],
      ['before', before],
    ] as const) {
      if (id === undefined) continue;
      const position = sql.position.get(id, sessionId);
      if (!position) {
        throw invalidField(param, `${param} names message ${id}, which is not in this session`);
      }
      const later = (param === 'after') === ascending;
      conditions.push(`("timestamp", "id") ${later ? '>' : '<'} (?, ?)`);
      params.push(position.timestamp, position.id);
    }
    const backwards = before !== undefined && after === undefined;
    const direction = ascending !== backwards ? 'ASC' : 'DESC';
    const rows = statement<MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM "chat_messages" WHERE ${conditions.join(' AND ')}
       ORDER BY "timestamp" ${direction}, "id" ${direction} LIMIT ? OFFSET ?`,
    ).all(...params, limit, skip ?? 0);
    if (backwards) rows.reverse();
    const headers: Headers = { 'X-Total-Count': session.message_count };
    const last = rows.at(-1);
    if (last && rows.length === limit) {
      const next = new URLSearchParams({
        after: String(last.id),
        ...(before === undefined ? {} : { before: String(before) }),
        limit: String(limit),
        order,
      });
      headers.Link = `</api/v1/sessions/${sessionId}/messages?${next.toString()}>; rel="next"`;
    }
    return { status: 200, body: rows.map(messageJson), headers };
  }

  return { createSession, listSessions, getSession, appendMessage, listMessages };
}

function jsonDepthOver(value: unknown, max: number): boolean {
  return shape(value).depth > max;
}

function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const hasBody =
    req.headers['transfer-encoding'] !== undefined ||
    (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
  if (!hasBody) return Promise.resolve({});
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json' && !/^application\/[^/]+\+json$/.test(type)) {
    const given = req.headers['content-type'] ?? 'none';
    return Promise.reject(
      new HttpError(415, `Unsupported Content-Type '${given}': send application/json.`),
    );
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > BODY_LIMIT) {
        reject(new HttpError(413, `Request body exceeds the ${BODY_LIMIT} byte limit.`));
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on('error', reject);
    req.on('end', () => {
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString());
      } catch {
        return reject(new HttpError(400, 'Malformed JSON in request body.'));
      }
      if (jsonDepthOver(body, BODY_MAX_DEPTH)) {
        return reject(
          new HttpError(400, `JSON body is nested more than ${BODY_MAX_DEPTH} levels deep.`),
        );
      }
      if (!isObject(body)) {
        return reject(invalidField('body', 'the request body must be a JSON object'));
      }
      resolve(body);
    });
  });
}

function send(res: ServerResponse, requestId: string, answer: Answer): void {
  const problem = answer.status >= 400;
  res
    .writeHead(answer.status, {
      'X-Request-Id': requestId,
      ...SECURITY_HEADERS,
      ...answer.headers,
      'Content-Type': problem
        ? 'application/problem+json; charset=utf-8'
        : 'application/json; charset=utf-8',
    })
    .end(JSON.stringify(answer.body));
}

type Api = ReturnType<typeof createApi>;

const SESSION_PATH = /^\/api\/v1\/sessions\/([^/]+)\/?$/;
const MESSAGES_PATH = /^\/api\/v1\/sessions\/([^/]+)\/messages\/?$/;

/** A path parameter as our validation pipe sees it: characters no id holds make a plain 404. */
function param(encoded: string): string {
  let id: string;
  try {
    id = decodeURIComponent(encoded);
  } catch {
    throw new HttpError(400, 'Malformed URI in the path.');
  }
  if (!isStorableText(id))
    throw new HttpError(404, 'Not found: the id holds characters no id contains.');
  return id;
}

async function route(api: Api, req: IncomingMessage, welcome: string): Promise<Answer> {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
  const method = req.method ?? 'GET';
  let match: RegExpExecArray | null;
  if (method === 'GET' && path === '/') {
    return {
      status: 200,
      body: { message: welcome, status: 'running', timestamp: iso(Date.now()) },
    };
  }
  if (method === 'GET' && path === '/health/ready') return { status: 200, body: { status: 'ok' } };
  if (path === '/api/v1/sessions' || path === '/api/v1/sessions/') {
    if (method === 'POST') return api.createSession(await readJson(req));
    if (method === 'GET') return api.listSessions(query);
  } else if ((match = MESSAGES_PATH.exec(path))) {
    if (method === 'POST') {
      const id = param(match[1]);
      return api.appendMessage(id, await readJson(req));
    }
    if (method === 'GET') return api.listMessages(param(match[1]), query);
  } else if ((match = SESSION_PATH.exec(path)) && method === 'GET') {
    return api.getSession(param(match[1]));
  }
  throw new HttpError(404, `Cannot ${method} ${path}`);
}

function main(): void {
  const path = process.env.CEILING_DB;
  if (!path) throw new Error('CEILING_DB must name an SQLite file our migrations created');
  const db = openDatabase(path);
  const api = createApi(db);
  const welcome = `Welcome to the ${process.env.APP_NAME ?? 'Chat Sessions API'}!`;
  const server = createServer((req, res) => {
    const incoming = req.headers['x-request-id'];
    const requestId =
      typeof incoming === 'string' && VALID_REQUEST_ID.test(incoming) ? incoming : randomUUID();
    route(api, req, welcome)
      .then((answer) => send(res, requestId, answer))
      .catch((error: unknown) => {
        const instance = (req.url ?? '/').split('?')[0];
        if (!(error instanceof HttpError)) console.error(error);
        const status = error instanceof HttpError ? error.status : 500;
        const detail = error instanceof HttpError ? error.message : 'An unexpected error occurred.';
        const errors = error instanceof HttpError ? error.errors : undefined;
        const title = STATUS_CODES[status] ?? 'Error';
        const body = {
          type: 'about:blank',
          title,
          status,
          detail,
          instance,
          ...(errors ? { errors } : {}),
        };
        send(res, requestId, { status, body });
      });
  });
  server.listen(Number(process.env.PORT ?? 8001), process.env.HOST ?? '127.0.0.1');
  process.on('SIGTERM', () => server.close(() => db.close()));
}

main();
