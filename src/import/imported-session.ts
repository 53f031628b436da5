import { length } from 'class-validator';
import {
  isPlainObject,
  jsonDepth,
  metadataTagsProblem,
  METADATA_MAX_BYTES,
  METADATA_MAX_DEPTH,
} from '../common/json-bounds';
import { MESSAGE_ROLES, type MessageRole } from '../messages/chat-message.entity';
import { CONTENT_MAX_LENGTH } from '../messages/dto/chat-message.dto';
import { Session } from '../sessions/session.entity';
import type { ImportProblems } from './import-problems';

/** A message ready to insert; `id` is the exported id (kept when free), null for a new one. */
export interface ImportedMessage {
  id: number | null;
  timestamp: number;
  role: MessageRole;
  content: string;
  /** Serialized JSON object, as stored. */
  metadata: string | null;
}

/** A session ready to insert: `message_count` and `last_updated_at` agree with its messages. */
export interface ImportedSession {
  /** The session as it will be stored, before it is given its owner. */
  session: Omit<Session, 'owner_id'>;
  messages: ImportedMessage[];
}

/** Where in the file a value is, for problem reports: a JSON path, or an NDJSON line. */
export class Location {
  constructor(
    private readonly prefix: string,
    /** Names the session or conversation in messages ("session 6f1c…", "conversation 'Trip' (id …)"). */
    readonly subject: string,
  ) {}

  withSubject(subject: string): Location {
    return new Location(this.prefix, subject);
  }

  field(path: string): string {
    if (!this.prefix) return path;
    return this.prefix.startsWith('line') ? `${this.prefix}: ${path}` : `${this.prefix}.${path}`;
  }
}

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ISO_TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;
const SESSION_FIELDS = new Set([
  'id',
  'name',
  'created_at',
  'last_updated_at',
  'llm_model_name',
  'rag_document_ids',
  'metadata_tags',
  'message_count',
  'archived',
  'pinned',
]);
const MESSAGE_FIELDS = new Set(['id', 'session_id', 'timestamp', 'role', 'content', 'metadata']);
// eslint-disable-next-line no-control-regex -- matching U+0000 is the point
const NUL = /\u0000/;

/** Problems of one export object, each named with its path and the session it belongs to. */
class Checker {
  constructor(
    private readonly at: Location,
    private readonly problems: ImportProblems,
  ) {}

  fail(path: string, message: string): undefined {
    this.problems.add(this.at.field(path), `${this.at.subject}: ${path} ${message}`);
    return undefined;
  }

  unknownFields(value: Record<string, unknown>, known: Set<string>, path: string): void {
    for (const key of Object.keys(value)) {
      if (!known.has(key)) this.fail(path ? `${path}.${key}` : key, 'is not a field of the export');
    }
  }

  timestamp(value: unknown, path: string): number | undefined {
    const ms = typeof value === 'string' && ISO_TIMESTAMP.test(value) ? Date.parse(value) : NaN;
    if (Number.isFinite(ms)) return ms;
    return this.fail(path, 'must be an ISO 8601 timestamp such as 2026-01-31T12:00:00.000Z');
  }

  /** A string counted as the API's validation counts it (class-validator's `length`). */
  text(value: unknown, path: string, min: number, max?: number): string | undefined {
    if (typeof value !== 'string') return this.fail(path, 'must be a string');
    if (NUL.test(value)) return this.fail(path, 'must not contain NUL (U+0000) characters');
    if (!length(value, min, max)) {
      return this.fail(path, `must be ${min} to ${max ?? 'any number of'} characters long`);
    }
    return value;
  }
}

/** Reads one `{session, messages}` object of our own export (JSON or an NDJSON line). */
export function readExportedSession(
  value: Record<string, unknown>,
  at: Location,
  problems: ImportProblems,
): ImportedSession | undefined {
  const before = problems.count;
  const sessionId = isPlainObject(value.session) ? value.session.id : undefined;
  const check = new Checker(
    typeof sessionId === 'string' ? at.withSubject(`session ${sessionId.slice(0, 40)}`) : at,
    problems,
  );
  check.unknownFields(value, new Set(['session', 'messages']), '');
  const s = value.session;
  if (!isPlainObject(s)) return check.fail('session', 'must be a session object');
  check.unknownFields(s, SESSION_FIELDS, 'session');

  const id = typeof s.id === 'string' && UUID.test(s.id) ? s.id.toLowerCase() : undefined;
  if (id === undefined) check.fail('session.id', 'must be a UUID');
  let name: string | null = null;
  if (s.name !== null && s.name !== undefined) {
    name =
      check.text(typeof s.name === 'string' ? s.name.trim() : s.name, 'session.name', 1, 200) ??
      null;
  }
  const createdAt = check.timestamp(s.created_at, 'session.created_at');
  const lastUpdatedAt = check.timestamp(s.last_updated_at, 'session.last_updated_at');
  let model: string | null = null;
  if (s.llm_model_name !== null && s.llm_model_name !== undefined) {
    model = check.text(s.llm_model_name, 'session.llm_model_name', 0) ?? null;
  }
  let ragIds: string[] | null = null;
  if (s.rag_document_ids !== null && s.rag_document_ids !== undefined) {
    const ids = s.rag_document_ids;
    if (!Array.isArray(ids) || ids.length > 100) {
      check.fail('session.rag_document_ids', 'must be an array of at most 100 document ids');
    } else {
      ids.forEach((doc, i) => check.text(doc, `session.rag_document_ids[${i}]`, 1, 200));
      ragIds = ids as string[];
    }
  }
  let tags: Record<string, string> | null = null;
  if (s.metadata_tags !== null && s.metadata_tags !== undefined) {
    const problem = metadataTagsProblem(s.metadata_tags);
    if (problem) check.fail('session.metadata_tags', `is invalid: ${problem}`);
    else tags = s.metadata_tags as Record<string, string>;
  }
  if (
    s.message_count !== undefined &&
    !(Number.isSafeInteger(s.message_count) && (s.message_count as number) >= 0)
  ) {
    check.fail('session.message_count', 'must be a non-negative integer');
  }
  for (const flag of ['archived', 'pinned'] as const) {
    if (s[flag] !== undefined && typeof s[flag] !== 'boolean') {
      check.fail(`session.${flag}`, 'must be true or false');
    }
  }

  const messages: ImportedMessage[] = [];
  if (!Array.isArray(value.messages)) {
    check.fail('messages', 'must be an array of messages');
  } else {
    value.messages.forEach((m: unknown, i) => {
      const message = readMessage(m, `messages[${i}]`, id, check);
      if (message) messages.push(message);
    });
  }
  if (problems.count > before || id === undefined) return undefined;

  const newest = messages.reduce((max, m) => Math.max(max, m.timestamp), -Infinity);
  return {
    session: {
      id,
      name,
      created_at: createdAt!,
      // At least the newest message's time, so the next append is stamped after every message.
      last_updated_at: Math.max(lastUpdatedAt!, createdAt!, newest),
      llm_model_name: model,
      rag_document_ids: ragIds,
      metadata_tags: tags,
      message_count: messages.length,
      archived: s.archived === true,
      pinned: s.pinned === true,
    },
    messages,
  };
}

function readMessage(
  value: unknown,
  path: string,
  sessionId: string | undefined,
  check: Checker,
): ImportedMessage | undefined {
  if (!isPlainObject(value)) return check.fail(path, 'must be a message object');
  check.unknownFields(value, MESSAGE_FIELDS, path);
  let id: number | null = null;
  if (value.id !== undefined && value.id !== null) {
    if (Number.isSafeInteger(value.id) && (value.id as number) > 0) id = value.id as number;
    else check.fail(`${path}.id`, 'must be a positive integer');
  }
  if (
    value.session_id !== undefined &&
    (typeof value.session_id !== 'string' || value.session_id.toLowerCase() !== sessionId)
  ) {
    check.fail(`${path}.session_id`, "must be the session's id");
  }
  const timestamp = check.timestamp(value.timestamp, `${path}.timestamp`);
  const role = MESSAGE_ROLES.find((r) => r === value.role);
  if (!role) check.fail(`${path}.role`, `must be one of ${MESSAGE_ROLES.join(', ')}`);
  const content = check.text(value.content, `${path}.content`, 1, CONTENT_MAX_LENGTH);
  let metadata: string | null = null;
  if (value.metadata !== null && value.metadata !== undefined) {
    const m = value.metadata;
    if (!isPlainObject(m) || jsonDepth(m, METADATA_MAX_DEPTH) > METADATA_MAX_DEPTH) {
      check.fail(
        `${path}.metadata`,
        `must be a JSON object at most ${METADATA_MAX_DEPTH} levels deep`,
      );
    } else {
      metadata = JSON.stringify(m);
      if (Buffer.byteLength(metadata) > METADATA_MAX_BYTES) {
        check.fail(`${path}.metadata`, `must be at most ${METADATA_MAX_BYTES} bytes serialized`);
      }
    }
  }
  if (timestamp === undefined || !role || content === undefined) return undefined;
  return { id, timestamp, role, content, metadata };
}
