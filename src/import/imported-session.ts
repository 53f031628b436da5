import type { Type } from '@nestjs/common';
import { plainToInstance } from 'class-transformer';
import { validateSync } from 'class-validator';
import { createHash, createHmac } from 'node:crypto';
import { importedTimeProblem, isPlainObject } from '../common/fields/json-bounds';
import { parseIsoTimestamp } from '../common/fields/timestamps';
import type { MessageRole, MessageStatus } from '../messages/chat-message.entity';
import { RestoredMessageFieldsDto } from '../messages/dto/chat-message.dto';
import { RestoredSessionFieldsDto } from '../sessions/dto/session.dto';
import { Session } from '../sessions/session.entity';
import type { ImportProblems } from './import-problems';
import type { Pacer } from './pacer';
/**
 * A message ready to insert. `id` is the file's id (kept when free, see ImportService), null for a
 * new one; `parent` is the index of its parent among its session's messages, null for a root.
 */
export interface ImportedMessage {
  id: number | null;
  timestamp: number;
  role: MessageRole;
  content: string;
  /** Serialized JSON object, as stored. */
  metadata: string | null;
  parent: number | null;
  status: MessageStatus;
  /** Serialized, as stored. */
  generation: string | null;
}

/**
 * A session ready to insert: `message_count` and `last_updated_at` agree with its messages. Its
 * `current_message_id` is set once its messages have their ids (ImportService), from `current`.
 */
export interface ImportedSession {
  /** The session as it will be stored, before it is given its owner. */
  session: Omit<Session, 'owner_id'>;
  /** In file order, the order new ids are given in. */
  messages: ImportedMessage[];
  /**
   * `tree`: each message's `parent` is set. `chain` (an export older than v1.2, without parent
   * links): each message follows the one before it in (timestamp, id) order, once the ids are
   * known, as the v1.2 upgrade chained the messages stored before it.
   */
  shape: 'tree' | 'chain';
  /** The index of the current message; `newest`: the last in (timestamp, id) order; null: none. */
  current: number | 'newest' | null;
}

/** The indices of `parents` (each an index or null for a root) with every parent before its children. */
export function parentsFirst(parents: (number | null)[]): number[] {
  const children = new Map<number | null, number[]>();
  for (const [i, parent] of parents.entries()) {
    const list = children.get(parent);
    if (list) list.push(i);
    else children.set(parent, [i]);
  }
  const order: number[] = [];
  const stack = [...(children.get(null) ?? [])].reverse();
  while (stack.length > 0) {
    const i = stack.pop()!;
    order.push(i);
    const below = children.get(i);
    if (below) for (let c = below.length - 1; c >= 0; c--) stack.push(below[c]);
  }
  return order;
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
    given(s, [
      'name',
      'llm_model_name',
      'rag_document_ids',
      'metadata_tags',
      'archived',
      'pinned',
      'expires_at',
      'current_message_id',
      'forked_from',
    ]),
    'session',
  );
  if (
    s.message_count !== undefined &&
    !(Number.isSafeInteger(s.message_count) && (s.message_count as number) >= 0)
  ) {
    check.fail('session.message_count', 'must be a non-negative integer');
  }

  const messages: ImportedMessage[] = [];
  /** Each message's parent as the file names it: an id, null for a root, undefined if not given. */
  const parentIds: (number | null | undefined)[] = [];
  if (!Array.isArray(value.messages)) {
    check.fail('messages', 'must be an array of messages');
  } else {
    // One export may hold a million messages: other requests get their turns meanwhile, and a
    // file past the reported problems is not checked further.
    for (const [i, m] of (value.messages as unknown[]).entries()) {
      const message = readMessage(m, `messages[${i}]`, id, check);
      if (message) {
        messages.push(message.message);
        parentIds.push(message.parentId);
      }
      if (problems.full) break;
      await pacer.pace();
    }
  }
  if (problems.count > before || id === undefined || !fields) return undefined;
  const tree = await readTree(messages, parentIds, fields.current_message_id, check, pacer);
  if (!tree) return undefined;

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
      forked_from: fields.forked_from ?? null,
      expires_at:
        typeof fields.expires_at === 'string' ? parseIsoTimestamp(fields.expires_at) : null,
    },
    messages,
    ...tree,
  };
}

/**
 * The session's tree from the parent ids the file gives (ids of messages of the same session in
 * the file): each message's parent as an index, and the current message's. A file without any
 * parent_id (older than v1.2) is a chain; one that gives some must give every one. A parent that
 * is not in the session, parent links in a cycle, or a current_message_id that is not a message of
 * the session (or null while there are messages) is a problem.
 */
async function readTree(
  messages: ImportedMessage[],
  parentIds: (number | null | undefined)[],
  currentId: number | null | undefined,
  check: Checker,
  pacer: Pacer,
): Promise<Pick<ImportedSession, 'shape' | 'current'> | undefined> {
  const at = new Map<number, number>();
  for (const [i, m] of messages.entries()) if (m.id !== null) at.set(m.id, i);
  let ok = true;
  const fail = (path: string, message: string) => {
    ok = false;
    check.fail(path, message);
  };

  const shape = parentIds.every((p) => p === undefined) ? 'chain' : 'tree';
  if (shape === 'tree') {
    for (const [i, parentId] of parentIds.entries()) {
      if (parentId === undefined) {
        fail(
          `messages[${i}].parent_id`,
          'must be given (a message id of this session, or null for a root): other messages of the session give theirs',
        );
      } else if (parentId !== null) {
        const parent = at.get(parentId);
        if (parent === undefined) {
          fail(
            `messages[${i}].parent_id`,
            `names message ${parentId}, which is not a message of this session in the file`,
          );
        } else messages[i].parent = parent;
      }
      await pacer.pace();
    }
    if (ok) {
      // Every message reached from a root is in the tree; the others' links go round in a cycle.
      const reached = new Set(parentsFirst(messages.map((m) => m.parent)));
      let stray = messages.findIndex((_, i) => !reached.has(i));
      if (stray >= 0) {
        // Up from a message no root reaches, as many steps as there are messages: into the cycle.
        for (let step = 0; step < messages.length; step++) stray = messages[stray].parent!;
        fail(
          `messages[${stray}].parent_id`,
          `names message ${parentIds[stray]}, which descends from this message: the parent links form a cycle`,
        );
      }
    }
  }

  let current: ImportedSession['current'] = messages.length > 0 ? 'newest' : null;
  if (currentId === null && messages.length > 0) {
    fail('session.current_message_id', 'must be a message of this session: it has messages');
  } else if (typeof currentId === 'number') {
    const index = at.get(currentId);
    if (index === undefined) {
      fail(
        'session.current_message_id',
        `names message ${currentId}, which is not a message of this session in the file`,
      );
    } else current = index;
  }
  return ok ? { shape, current } : undefined;
}

/** The fields of `value` among `names` that it has (a field left out is left out of the check too). */
function given(value: Record<string, unknown>, names: string[]): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const name of names) if (value[name] !== undefined) fields[name] = value[name];
  return fields;
}

/** A message's content may be empty only where a generated reply stopped before any text came. */
const MAY_BE_EMPTY = new Set<unknown>(['in_progress', 'cancelled', 'failed']);

function readMessage(
  value: unknown,
  path: string,
  sessionId: string | undefined,
  check: Checker,
): { message: ImportedMessage; parentId: number | null | undefined } | undefined {
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
  const emptyReply = value.content === '' && MAY_BE_EMPTY.has(value.status);
  const fields = check.fields(
    RestoredMessageFieldsDto,
    {
      ...given(value, ['content', 'role', 'metadata', 'parent_id', 'status', 'generation']),
      // The one exception to POST's content rule (see the contract's v1.2 fields).
      ...(emptyReply ? { content: 'x' } : {}),
    },
    path,
  );
  if (timestamp === undefined || !fields) return undefined;
  return {
    message: {
      id,
      timestamp,
      role: fields.role ?? 'user',
      content: emptyReply ? '' : fields.content,
      metadata: toMetadataText(fields.metadata),
      parent: null,
      // Nothing generates an imported reply any more: it is stored as cancelled, its text kept.
      status: fields.status === 'in_progress' ? 'cancelled' : (fields.status ?? 'complete'),
      generation: toMetadataText(fields.generation),
    },
    parentId: fields.parent_id,
  };
}

/** Metadata as stored: serialized JSON, or null. */
export function toMetadataText(metadata: object | null | undefined): string | null {
  return metadata === null || metadata === undefined ? null : JSON.stringify(metadata);
}
