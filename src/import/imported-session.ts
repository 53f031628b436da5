import type { Type } from '@nestjs/common';
import { plainToInstance } from 'class-transformer';
import { validateSync } from 'class-validator';
import { createHash, createHmac } from 'node:crypto';
import { importedTimeProblem, isPlainObject } from '../common/fields/json-bounds';
import { parseIsoTimestamp } from '../common/fields/timestamps';
import type { MessageRole } from '../messages/chat-message.entity';
import { CreateChatMessageDto } from '../messages/dto/chat-message.dto';
import { RestoredSessionFieldsDto } from '../sessions/dto/session.dto';
import { Session } from '../sessions/session.entity';
import type { ImportProblems } from './import-problems';
import type { Pacer } from './pacer';
/** A message ready to insert; `id` is the exported id (kept when free), null for a new one. */
export interface ImportedMessage {
  id: number | null;
  timestamp: number;
  role: MessageRole;
  content: string;
  /** Serialized JSON object, as stored. */
  metadata: string | null;
}

/**
 * A session ready to insert: `message_count` and `last_updated_at` agree with its messages; its
 * messages' parents and its current message are set once they are stored (ImportService).
 */
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

/**
 * A name-based id (SHA-256 of `name`) in UUID v4 layout, so it reads like every other session id:
 * the same name always gives the same id, which is what makes a repeated import find its sessions.
 */
export function nameBasedUuid(name: string, key?: Buffer): string {
  const hash = key ? createHmac('sha256', key) : createHash('sha256');
  const bytes = hash.update(name).digest().subarray(0, 16);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

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
  // v1.2's fields, which our exports carry: accepted, not restored yet. The import chains each
  // session's messages in (timestamp, id) order and makes its newest message the current one, as
  // the upgrade migration did to the messages stored before v1.2.
  'current_message_id',
  'forked_from',
  'expires_at',
]);
const MESSAGE_FIELDS = new Set([
  'id',
  'session_id',
  'timestamp',
  'role',
  'content',
  'metadata',
  'parent_id',
  'status',
  'generation',
]);

/**
 * The problems of `fields` under a DTO class of the API, checked as the API's validation pipe
 * checks a request body (class-transformer, then class-validator; free-form JSON fields raw), so an
 * import can never accept what the API refuses, or refuse what it stores. Returns the DTO too: its
 * values are the ones to store (e.g. the name trimmed).
 */
export function checkFields<T extends object>(
  dtoClass: Type<T>,
  fields: Record<string, unknown>,
): { dto: T; problems: { property: string; message: string }[] } {
  const dto = plainToInstance(dtoClass, fields) as T & Record<string, unknown>;
  // Fields class-transformer left out (@RawJson) take their raw value.
  for (const key of Object.keys(fields)) {
    if (dto[key] === undefined) (dto as Record<string, unknown>)[key] = fields[key];
  }
  const errors = validateSync(dto, {
    whitelist: true,
    forbidNonWhitelisted: true,
    forbidUnknownValues: true,
    stopAtFirstError: true,
  });
  const problems = errors.flatMap((error) =>
    Object.values(error.constraints ?? {}).map((message) => ({
      property: error.property,
      message,
    })),
  );
  return { dto, problems };
}

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

  /** Reports a DTO's problems under `path` (the object the fields belong to). */
  fields<T extends object>(
    dtoClass: Type<T>,
    fields: Record<string, unknown>,
    path: string,
  ): T | undefined {
    const { dto, problems } = checkFields(dtoClass, fields);
    for (const { property, message } of problems) {
      const field = `${path}.${property}`;
      // class-validator's messages mostly start with the property's name: put the path before it.
      this.problems.add(
        this.at.field(field),
        `${this.at.subject}: ${message.startsWith(`${property} `) ? `${path}.${message}` : `${field}: ${message}`}`,
      );
    }
    return problems.length > 0 ? undefined : dto;
  }

  unknownFields(value: Record<string, unknown>, known: Set<string>, path: string): void {
    for (const key of Object.keys(value)) {
      if (!known.has(key)) this.fail(path ? `${path}.${key}` : key, 'is not a field of the export');
    }
  }

  timestamp(value: unknown, path: string): number | undefined {
    const ms = typeof value === 'string' ? parseIsoTimestamp(value) : NaN;
    if (!Number.isFinite(ms)) {
      return this.fail(path, 'must be an ISO 8601 timestamp such as 2026-01-31T12:00:00.000Z');
    }
    const problem = importedTimeProblem(ms);
    return problem ? this.fail(path, problem) : ms;
  }
}

/** Reads one `{session, messages}` object of our own export (JSON or an NDJSON line). */
export async function readExportedSession(
  value: Record<string, unknown>,
  at: Location,
  problems: ImportProblems,
  pacer: Pacer,
): Promise<ImportedSession | undefined> {
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
  const createdAt = check.timestamp(s.created_at, 'session.created_at');
  const lastUpdatedAt = check.timestamp(s.last_updated_at, 'session.last_updated_at');
  const fields = check.fields(
    RestoredSessionFieldsDto,
    given(s, ['name', 'llm_model_name', 'rag_document_ids', 'metadata_tags', 'archived', 'pinned']),
    'session',
  );
  if (
    s.message_count !== undefined &&
    !(Number.isSafeInteger(s.message_count) && (s.message_count as number) >= 0)
  ) {
    check.fail('session.message_count', 'must be a non-negative integer');
  }

  const messages: ImportedMessage[] = [];
  if (!Array.isArray(value.messages)) {
    check.fail('messages', 'must be an array of messages');
  } else {
    // One export may hold a million messages: other requests get their turns meanwhile, and a
    // file past the reported problems is not checked further.
    for (const [i, m] of (value.messages as unknown[]).entries()) {
      const message = readMessage(m, `messages[${i}]`, id, check);
      if (message) messages.push(message);
      if (problems.full) break;
      await pacer.pace();
    }
  }
  if (problems.count > before || id === undefined || !fields) return undefined;

  const newest = messages.reduce((max, m) => Math.max(max, m.timestamp), -Infinity);
  return {
    session: {
      id,
      name: fields.name ?? null,
      created_at: createdAt!,
      // At least the newest message's time, so the next append is stamped after every message.
      last_updated_at: Math.max(lastUpdatedAt!, createdAt!, newest),
      llm_model_name: fields.llm_model_name ?? null,
      rag_document_ids: fields.rag_document_ids ?? null,
      metadata_tags: fields.metadata_tags ?? null,
      message_count: messages.length,
      archived: fields.archived === true,
      pinned: fields.pinned === true,
      current_message_id: null,
      forked_from: null,
      expires_at: null,
    },
    messages,
  };
}

/** The fields of `value` among `names` that it has (a field left out is left out of the check too). */
function given(value: Record<string, unknown>, names: string[]): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const name of names) if (value[name] !== undefined) fields[name] = value[name];
  return fields;
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
  const fields = check.fields(
    CreateChatMessageDto,
    given(value, ['content', 'role', 'metadata']),
    path,
  );
  if (timestamp === undefined || !fields) return undefined;
  return {
    id,
    timestamp,
    role: fields.role ?? 'user',
    content: fields.content,
    metadata: toMetadataText(fields.metadata),
  };
}

/** Metadata as stored: serialized JSON, or null. */
export function toMetadataText(metadata: object | null | undefined): string | null {
  return metadata === null || metadata === undefined ? null : JSON.stringify(metadata);
}
