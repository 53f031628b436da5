import { Injectable } from '@nestjs/common';
import { EntityManager, QueryFailedError } from 'typeorm';
import { DatabaseService, queryRows } from '../database/database.service';
import { OwnerRule } from '../sessions/owner-rule';
import {
  SET_CURRENT_MESSAGE,
  touchCteParams,
  touchParams,
  touchSession,
  touchSessionCtes,
} from '../sessions/sessions.repository';
import { ChatMessage, Generation, MessageRole, MessageStatus } from './chat-message.entity';
import { TreeShape } from './tree-shape';
import { BUSY_PARENT_SQLSTATE } from '../database/migrations/1795593600000-reply-progress';

/** A `chat_messages` row as the drivers return it (PostgreSQL returns BIGINT as text). */
interface MessageRow {
  id: number | string;
  session_id: string;
  timestamp: number | string;
  role: MessageRole;
  content: string;
  metadata: string | null;
  parent_id: number | string | null;
  status: MessageStatus;
  generation: string | null;
}

/** The one mapper from a row (or an outline row, of a known session) to the entity. */
function toMessage(row: Omit<MessageRow, 'session_id'>, sessionId: string): ChatMessage {
  return {
    id: Number(row.id),
    session_id: sessionId,
    timestamp: Number(row.timestamp),
    role: row.role,
    content: row.content,
    metadata: row.metadata === null ? null : (JSON.parse(row.metadata) as object),
    parent_id: row.parent_id === null ? null : Number(row.parent_id),
    status: row.status,
    generation: row.generation === null ? null : (JSON.parse(row.generation) as Generation),
  };
}

const fromRow = (row: MessageRow) => toMessage(row, row.session_id);

const COLUMNS = `"id", "session_id", "timestamp", "role", "content", "metadata", "parent_id", "status", "generation"`;
const M_COLUMNS = COLUMNS.replace(/"(\w+)"/g, 'm."$1"');

/**
 * A message's weight in UTF-8 bytes. octet_length reads it from the row's header on both databases,
 * without loading a long text (SQLite's overflow pages, PostgreSQL's TOAST): over 1000 rows of
 * 100,000 characters on SQLite, 0.3 ms, where length() takes 100 ms.
 */
const SIZE = `octet_length("content") + COALESCE(octet_length("metadata"), 0)`;
/**
 * A page's outline: each row's key, and its content and metadata where it weighs at most `?` bytes,
 * else its weight. A size on the rows left out only, and no session_id (the caller has it): read
 * this way, 200 rows of 100 characters cost what the plain page did on SQLite (600 µs vs 583 µs;
 * a size on every row and the session_id made it 20% dearer).
 */
const OUTLINE_COLUMNS = `"id", "timestamp", "role", "parent_id", "status", "generation",
  CASE WHEN ${SIZE} > ? THEN ${SIZE} END AS "size",
  CASE WHEN ${SIZE} <= ? THEN "content" END AS "content",
  CASE WHEN ${SIZE} <= ? THEN "metadata" END AS "metadata"`;

type OutlineRow = Omit<MessageRow, 'session_id' | 'content'> & {
  size: number | string | null;
  content: string | null;
};

/** The one mapper from an outline row to its entry. */
function toOutlineEntry(row: OutlineRow, sessionId: string): OutlineEntry {
  return row.content === null
    ? {
        id: Number(row.id),
        timestamp: Number(row.timestamp),
        weight: Number(row.size),
        message: null,
      }
    : {
        id: Number(row.id),
        timestamp: Number(row.timestamp),
        weight: row.content.length + (row.metadata?.length ?? 0),
        message: toMessage(row as Omit<MessageRow, 'session_id'>, sessionId),
      };
}

/** A row of a page's outline: its key, and the message itself or its weight in bytes. */
export interface OutlineEntry {
  id: number;
  timestamp: number;
  /** About the bytes the row holds: its size, or for an inlined row the length of its texts. */
  weight: number;
  /** The whole message, where it weighs at most the outline's `inline` bytes. */
  message: ChatMessage | null;
}

/** What an append writes: a posted message (`complete`), or a reply starting (`in_progress`). */
export type AppendedMessage = Pick<
  ChatMessage,
  'session_id' | 'role' | 'content' | 'metadata' | 'status' | 'generation'
>;

/** What an append stored: the new message's id (as the driver returned it), time and parent. */
export interface AppendedRow {
  id: number | string;
  timestamp: number;
  parent_id: number | null;
}

/**
 * Whether `error` is the parent foreign key refusing a row. PostgreSQL names the constraint;
 * SQLite names none, but an append's insert has only that key left to break (its session was
 * just touched).
 */
function isParentViolation(error: unknown): boolean {
  if (!(error instanceof QueryFailedError)) return false;
  const cause = error.driverError as { code?: string; constraint?: string };
  return (
    cause.code === 'SQLITE_CONSTRAINT_FOREIGNKEY' ||
    (cause.code === '23503' && cause.constraint === 'fk_chat_messages_parent')
  );
}

/** Whether `error` is the reply-progress migration's trigger refusing an in-progress parent. */
function isBusyParent(error: unknown): boolean {
  if (!(error instanceof QueryFailedError)) return false;
  const cause = error.driverError as { code?: string; message?: string };
  return (
    cause.code === BUSY_PARENT_SQLSTATE ||
    (cause.code === 'SQLITE_CONSTRAINT_TRIGGER' && /reply in progress/.test(cause.message ?? ''))
  );
}

/** A message on a branch: its id and its parent's. */
export interface BranchEntry {
  id: number;
  parentId: number | null;
}

/** A branch, root first, and the session's tree where it was read whole to find it (see path). */
export interface Branch {
  entries: BranchEntry[];
  shape: TreeShape | null;
}

/** Sessions of at most this many messages have their branches walked in memory (see `path`). */
export const SHAPE_MAX = 50_000;

/** Ids per `IN (…)` list: a page holds at most 1000, so one statement in practice. */
const ID_LIST_MAX = 1000;

const placeholders = (n: number) => Array<string>(n).fill('?').join(', ');

/** Where a page starts: strictly after or before a (timestamp, id) key in the page's order. */
export interface KeyBound {
  op: '>' | '<';
  key: [timestamp: number, id: number];
}

/** A search over message contents, with the caller's filters. */
export interface ContentSearch {
  owner: string;
  /** The query in the database's own syntax (FTS5 or tsquery). */
  match: string;
  /** The id range to scan (a session's first and last message). */
  ids: [number, number];
  archived?: boolean;
  sessionId?: string;
  /** How many matches (the newest) are ranked. */
  window: number;
  limit: number;
}

/** A message as an import writes it: with its id and its parent's (see ImportService). */
export interface ImportedRow {
  id: number;
  session_id: string;
  timestamp: number;
  parent_id: number | null;
  role: MessageRole;
  content: string;
  /** Already JSON text. */
  metadata: string | null;
  status: MessageStatus;
  /** Already JSON text. */
  generation: string | null;
}

/** Whether `error` is a message id that is taken (a concurrent import inserted it first). */
function isIdTaken(error: unknown): boolean {
  if (!(error instanceof QueryFailedError)) return false;
  const cause = error.driverError as { code?: string };
  return cause.code === '23505' || cause.code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/**
 * The `chat_messages` table and its search index over contents (SQLite: `chat_messages_fts`;
 * PostgreSQL: the `search` column): the only code that reads or writes them. Messages belong to
 * their session's owner: every read of another owner's messages goes through `OwnerRule.ownedSession`, which
 * also hides the messages of an expired session.
 *
 * Statements are written once rather than built by TypeORM per call. bench/repository-costs.ts, µs
 * per call on SQLite in memory: an append (the touch of the session and the insert, in a
 * transaction) 74 prepared against 379 through TypeORM's `update`, `findOne` and `insert`, whose
 * UpdateQueryBuilder has no RETURNING on SQLite, so the new time takes a read of its own
 * (PostgreSQL: 1,372 against 2,670); a page of 20 messages 55 against 88 through `find`
 * (PostgreSQL: 389 against 474). The import's multi-row INSERTs are prepared too: one statement per
 * row count, where TypeORM's `insert` would build the SQL of 256 rows anew each time.
 */
@Injectable()
export class ChatMessagesRepository {
  private readonly sql: Record<
    | 'insert'
    | 'touch'
    | 'setCurrent'
    | 'append'
    | 'position'
    | 'get'
    | 'adopt'
    | 'delete'
    | 'newestLeaf'
    | 'rangeAsc'
    | 'rangeDesc'
    | 'idRange',
    string
  >;
  private readonly statements = new Map<string, string>();

  private readonly ownedSession: string;

  constructor(
    private readonly db: DatabaseService,
    rule: OwnerRule,
  ) {
    this.ownedSession = rule.ownedSession;
    this.sql = {
      insert: db.sql(
        `INSERT INTO "chat_messages" ("session_id", "timestamp", "parent_id", "role", "content", "metadata", "status", "generation", "progress_at")
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING "id"`,
      ),
      touch: db.sql(touchSession(rule)),
      setCurrent: db.sql(SET_CURRENT_MESSAGE),
      // The parent: the one given (a flag says whether it was), else the current message before.
      append: db.sql(
        `WITH ${touchSessionCtes(rule)}
         INSERT INTO "chat_messages" ("id", "session_id", "timestamp", "parent_id", "role", "content", "metadata", "status", "generation", "progress_at")
         SELECT "message_id", "id", "last_updated_at",
           CASE WHEN CAST(? AS BOOLEAN) THEN CAST(? AS BIGINT) ELSE "previous_id" END, ?, ?, ?, ?, ?, ?
         FROM "touched" RETURNING "id", "timestamp", "parent_id"`,
      ),
      position: db.sql(
        `SELECT "timestamp", "id" FROM "chat_messages" WHERE "id" = ? AND "session_id" = ?`,
      ),
      get: db.sql(
        `SELECT ${M_COLUMNS} FROM "chat_messages" m ${this.ownedSession}
         WHERE m."id" = ? AND m."session_id" = ?`,
      ),
      // The children of a message move up to its parent (null for a root's).
      adopt: db.sql(
        `UPDATE "chat_messages" SET "parent_id" = (
           SELECT p."parent_id" FROM "chat_messages" p WHERE p."id" = ? AND p."session_id" = ?)
         WHERE "session_id" = ? AND "parent_id" = ?`,
      ),
      delete: db.sql(
        `DELETE FROM "chat_messages" WHERE "id" = ? AND "session_id" = ? RETURNING "parent_id"`,
      ),
      // From a message (or, given none, the newest root), the newest child at every level: one
      // probe of idx_chat_messages_session_parent per level.
      newestLeaf: db.sql(
        `WITH RECURSIVE "walk" ("id", "depth") AS (
           SELECT CASE WHEN CAST(? AS BIGINT) IS NULL THEN (
               SELECT r."id" FROM "chat_messages" r WHERE r."session_id" = ? AND r."parent_id" IS NULL
               ORDER BY r."timestamp" DESC, r."id" DESC LIMIT 1)
             ELSE CAST(? AS BIGINT) END, 0
           UNION ALL
           SELECT (SELECT c."id" FROM "chat_messages" c WHERE c."session_id" = ? AND c."parent_id" = w."id"
               ORDER BY c."timestamp" DESC, c."id" DESC LIMIT 1), w."depth" + 1
           FROM "walk" w WHERE w."id" IS NOT NULL
         )
         SELECT "id" FROM "walk" WHERE "id" IS NOT NULL ORDER BY "depth" DESC LIMIT 1`,
      ),
      // The rows of a streamed page between two keys, both included, in the page's order.
      rangeAsc: db.sql(range(this.ownedSession, 'ASC')),
      rangeDesc: db.sql(range(this.ownedSession, 'DESC')),
      // Each bound one index probe: MIN and MAX stay simple subqueries so both databases read just
      // the index ends.
      idRange: db.sql(
        `SELECT (SELECT MIN("id") FROM "chat_messages" WHERE "session_id" = ?) AS "first",
           (SELECT MAX("id") FROM "chat_messages" WHERE "session_id" = ?) AS "last"`,
      ),
    };
  }

  /**
   * Appends a message to the owner's session in the caller's transaction: the session's touch
   * (`touchSession`) gives the message its timestamp and its default parent (the current message),
   * the message is inserted, and it becomes the current message. `parent` given (a number or null)
   * overrides the default. Null, and nothing written, when the touch finds no session to move
   * forward (not the owner's, or its time at the end of the format); `'unknown parent'` when the
   * parent is not a message of this session (the foreign key refused it: nothing is written either,
   * once the caller's transaction or statement is undone).
   *
   * On PostgreSQL all of it is one statement (`touchSessionCtes`), so one round trip and atomic by
   * itself (an append without an Idempotency-Key needs no transaction: see
   * DatabaseService.writeStatement). SQLite, which has no UPDATE inside WITH, runs three prepared
   * statements in turn.
   */
  async append(
    manager: EntityManager,
    owner: string,
    message: AppendedMessage,
    parent: { given: boolean; id: number | null },
    now: number,
  ): Promise<AppendedRow | 'unknown parent' | 'parent in progress' | null> {
    const reply = message.status === 'in_progress';
    const values = [
      message.role,
      message.content,
      message.metadata === null ? null : JSON.stringify(message.metadata),
      message.status,
      message.generation === null ? null : JSON.stringify(message.generation),
      reply ? now : null,
    ];
    try {
      if (!this.db.isSqlite) {
        const [row] = await queryRows<{
          id: number | string;
          timestamp: number | string;
          parent_id: number | string | null;
        }>(
          manager,
          this.sql.append,
          // The session id comes from the touched row, not as a parameter: PostgreSQL would type it
          // as the column (varchar(36)) and refuse a longer id from the path even when no row matched.
          [...touchCteParams(owner, message.session_id, now), parent.given, parent.id, ...values],
        );
        return row
          ? {
              id: row.id,
              timestamp: Number(row.timestamp),
              parent_id: row.parent_id === null ? null : Number(row.parent_id),
            }
          : null;
      }
      const [touched] = await queryRows<{
        last_updated_at: number;
        current_message_id: number | null;
      }>(manager, this.sql.touch, touchParams(owner, message.session_id, now));
      if (!touched) return null;
      const timestamp = Number(touched.last_updated_at);
      const parentId = parent.given ? parent.id : touched.current_message_id;
      const [inserted] = await queryRows<{ id: number }>(manager, this.sql.insert, [
        message.session_id,
        timestamp,
        parentId,
        ...values,
      ]);
      await queryRows(manager, this.sql.setCurrent, [inserted.id, message.session_id]);
      return { id: inserted.id, timestamp, parent_id: parentId };
    } catch (error) {
      if (isParentViolation(error)) return 'unknown parent';
      if (isBusyParent(error)) return 'parent in progress';
      throw error;
    }
  }

  /** The (timestamp, id) key of a message of the session, or null. */
  async position(
    manager: EntityManager,
    sessionId: string,
    id: number,
  ): Promise<[number, number] | null> {
    const [row] = await queryRows<{ timestamp: number | string; id: number | string }>(
      manager,
      this.sql.position,
      [id, sessionId],
    );
    return row ? [Number(row.timestamp), Number(row.id)] : null;
  }

  async findOwned(
    manager: EntityManager,
    owner: string,
    sessionId: string,
    id: number,
  ): Promise<ChatMessage | null> {
    const [row] = await queryRows<MessageRow>(manager, this.sql.get, [owner, id, sessionId]);
    return row ? fromRow(row) : null;
  }

  /**
   * Deletes the message of the session, its children moving up to its parent first (a root's
   * become roots); the parent it had, or null if there is no such message.
   */
  async delete(
    manager: EntityManager,
    sessionId: string,
    id: number | string,
  ): Promise<{ parentId: number | null } | null> {
    await queryRows(manager, this.sql.adopt, [id, sessionId, sessionId, id]);
    const [row] = await queryRows<{ parent_id: number | string | null }>(manager, this.sql.delete, [
      id,
      sessionId,
    ]);
    if (!row) return null;
    return { parentId: row.parent_id === null ? null : Number(row.parent_id) };
  }

  /**
   * The newest leaf under message `from` of the session (itself when it has no children), following
   * the newest child by (timestamp, id) at every level; with `from` null, from the newest root. Null
   * when the session has no messages.
   */
  async newestLeaf(
    manager: EntityManager,
    sessionId: string,
    from: number | null,
  ): Promise<number | null> {
    const [row] = await queryRows<{ id: number | string }>(manager, this.sql.newestLeaf, [
      from,
      sessionId,
      from,
      sessionId,
    ]);
    return row ? Number(row.id) : null;
  }

  /**
   * A page's outline (see OUTLINE_COLUMNS): the session's rows past `bounds`, in (timestamp, id)
   * order `direction`, each inlined where it weighs at most `inline` bytes. The caller checked the
   * owner.
   */
  async outline(
    manager: EntityManager,
    sessionId: string,
    page: {
      bounds: KeyBound[];
      direction: 'ASC' | 'DESC';
      inline: number;
      limit: number;
      skip: number;
    },
  ): Promise<OutlineEntry[]> {
    const conditions = [
      `"session_id" = ?`,
      ...page.bounds.map((b) => `("timestamp", "id") ${b.op} (?, ?)`),
    ];
    const { direction, inline } = page;
    const sql = this.db.sql(
      `SELECT ${OUTLINE_COLUMNS} FROM "chat_messages" WHERE ${conditions.join(' AND ')}
       ORDER BY "timestamp" ${direction}, "id" ${direction} LIMIT ? OFFSET ?`,
    );
    const rows = await queryRows<OutlineRow>(manager, sql, [
      inline,
      inline,
      inline,
      sessionId,
      ...page.bounds.flatMap((b) => b.key),
      page.limit,
      page.skip,
    ]);
    return rows.map((row) => toOutlineEntry(row, sessionId));
  }

  /**
   * The owner's messages of the session from key `low` to key `high`, both included, in the
   * direction given, at most `limit` of them.
   */
  async range(
    manager: EntityManager,
    owner: string,
    sessionId: string,
    bounds: { low: [number, number]; high: [number, number]; ascending: boolean; limit: number },
  ): Promise<ChatMessage[]> {
    const rows = await queryRows<MessageRow>(
      manager,
      bounds.ascending ? this.sql.rangeAsc : this.sql.rangeDesc,
      [owner, sessionId, ...bounds.low, ...bounds.high, bounds.limit],
    );
    return rows.map(fromRow);
  }

  /**
   * The messages of the owner's sessions among `ids` (at most `capacity`, padded with NULLs, which
   * match nothing, so one statement serves every count), unordered: the caller groups and orders
   * them in memory, which spares PostgreSQL a sort over the IN list.
   */
  async ofSessions(
    manager: EntityManager,
    owner: string,
    ids: string[],
    capacity: number,
  ): Promise<ChatMessage[]> {
    const sql = this.statement(`of:${capacity}`, () =>
      this.db.sql(
        `SELECT ${M_COLUMNS} FROM "chat_messages" m ${this.ownedSession}
         WHERE m."session_id" IN (${Array<string>(capacity).fill('?').join(', ')})`,
      ),
    );
    const padding = Array<null>(capacity - ids.length).fill(null);
    const rows = await queryRows<MessageRow>(manager, sql, [owner, ...ids, ...padding]);
    return rows.map(fromRow);
  }

  /** Up to `limit` of the owner's messages of the session after key `after`, oldest first. */
  async pageAfter(
    manager: EntityManager,
    owner: string,
    sessionId: string,
    after: [number, number],
    limit: number,
  ): Promise<ChatMessage[]> {
    const sql = this.statement('after', () =>
      this.db.sql(
        `SELECT ${M_COLUMNS} FROM "chat_messages" m ${this.ownedSession}
         WHERE m."session_id" = ? AND (m."timestamp", m."id") > (?, ?)
         ORDER BY m."timestamp", m."id" LIMIT ?`,
      ),
    );
    const rows = await queryRows<MessageRow>(manager, sql, [owner, sessionId, ...after, limit]);
    return rows.map(fromRow);
  }

  /** The session's first and last message ids, or null when it has none. */
  async idRange(manager: EntityManager, sessionId: string): Promise<[number, number] | null> {
    const [row] = await queryRows<{ first: number | string | null; last: number | string | null }>(
      manager,
      this.sql.idRange,
      [sessionId, sessionId],
    );
    return row.first === null || row.last === null ? null : [Number(row.first), Number(row.last)];
  }

  /**
   * The owner's messages whose content matches: the newest `window` matches (by id, within the id
   * range) are ranked, the best `limit` of them are read whole; best first, ties newest first.
   * SQLite: FTS5's bm25, and CROSS JOIN fixes the join order (FTS5 streams its matches newest first
   * and the window stops the scan). PostgreSQL: ts_rank with normalization 1.
   */
  async searchContents(manager: EntityManager, search: ContentSearch): Promise<ChatMessage[]> {
    const filters = [
      ...(search.archived === undefined ? [] : [`s."archived" = ?`]),
      ...(search.sessionId === undefined ? [] : [`s."id" = ?`]),
    ]
      .map((filter) => ` AND ${filter}`)
      .join('');
    const sql = this.statement(`contents${filters}:${search.window}`, () =>
      this.db.isSqlite
        ? `SELECT ${M_COLUMNS} FROM (
             SELECT "id", "timestamp", "score" FROM (
               SELECT m."id" AS "id", m."timestamp" AS "timestamp", bm25("chat_messages_fts") AS "score"
               FROM "chat_messages_fts"
               CROSS JOIN "chat_messages" m ON m."id" = "chat_messages_fts"."rowid"
               CROSS ${this.ownedSession}
               WHERE "chat_messages_fts" MATCH ? AND "chat_messages_fts"."rowid" BETWEEN ? AND ?${filters}
               ORDER BY "chat_messages_fts"."rowid" DESC LIMIT ${search.window}
             ) ORDER BY "score", "timestamp" DESC, "id" DESC LIMIT ?
           ) top CROSS JOIN "chat_messages" m ON m."id" = top."id"
           ORDER BY top."score", top."timestamp" DESC, top."id" DESC`
        : this.db.sql(
            `SELECT ${M_COLUMNS} FROM (
               SELECT w."id", w."timestamp", ts_rank(w."search", w."q", 1) AS "score" FROM (
                 SELECT m."id", m."timestamp", m."search", query."q"
                 FROM "chat_messages" m ${this.ownedSession},
                   to_tsquery('simple', ?) AS query("q")
                 WHERE m."search" @@ query."q" AND m."id" BETWEEN ? AND ?${filters}
                 ORDER BY m."id" DESC LIMIT ${search.window}
               ) w ORDER BY "score" DESC, w."timestamp" DESC, w."id" DESC LIMIT ?
             ) top JOIN "chat_messages" m ON m."id" = top."id"
             ORDER BY top."score" DESC, top."timestamp" DESC, top."id" DESC`,
          ),
    );
    const filterParams = [
      ...(search.archived === undefined ? [] : [search.archived]),
      ...(search.sessionId === undefined ? [] : [search.sessionId]),
    ];
    // The owner comes first, with the join to the session.
    const rows = await queryRows<MessageRow>(manager, sql, [
      search.owner,
      search.match,
      ...search.ids,
      ...filterParams,
      search.limit,
    ]);
    return rows.map(fromRow);
  }

  /**
   * Inserts the rows in one statement (one per row count, built once), each with its id and its
   * parent's: a parent must be stored before its children or in the same statement. `'id taken'`
   * (and the caller's transaction to roll back) when another writer stored one of the ids first.
   */
  async insertMany(manager: EntityManager, rows: ImportedRow[]): Promise<'id taken' | undefined> {
    const sql = this.statement(`insert:${rows.length}`, () => {
      const row = `(${placeholders(9)})`;
      return this.db.sql(
        `INSERT INTO "chat_messages" ("id", "session_id", "timestamp", "parent_id", "role", "content", "metadata", "status", "generation")
         VALUES ${Array<string>(rows.length).fill(row).join(', ')}`,
      );
    });
    const params: unknown[] = [];
    for (const m of rows) {
      params.push(m.id, m.session_id, m.timestamp, m.parent_id, m.role, m.content, m.metadata);
      params.push(m.status, m.generation);
    }
    try {
      await manager.query(sql, params);
    } catch (error) {
      if (isIdTaken(error)) return 'id taken';
      throw error;
    }
    return undefined;
  }

  /** Those of `ids` that are messages now (of any session, any owner). */
  async existingIds(manager: EntityManager, ids: number[]): Promise<Set<number>> {
    const found = new Set<number>();
    for (let i = 0; i < ids.length; i += ID_LIST_MAX) {
      const part = ids.slice(i, i + ID_LIST_MAX);
      const rows = await queryRows<{ id: number | string }>(
        manager,
        this.statement(`existing:${part.length}`, () =>
          this.db.sql(
            `SELECT "id" FROM "chat_messages" WHERE "id" IN (${placeholders(part.length)})`,
          ),
        ),
        part,
      );
      for (const row of rows) found.add(Number(row.id));
    }
    return found;
  }

  /** SQLite: the highest message id ever issued (AUTOINCREMENT never goes below it). */
  async sqliteHighWater(manager: EntityManager): Promise<number> {
    const [row] = await queryRows<{ seq: number }>(
      manager,
      `SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'chat_messages'`,
    );
    return row ? Number(row.seq) : 0;
  }

  /**
   * PostgreSQL: the highest message id issued so far, with the id sequence locked until commit:
   * ALTER SEQUENCE blocks other nextval() calls, which makes reading the sequence and moving it
   * (`moveIdSequence`) one atomic step.
   */
  async lockIdSequence(manager: EntityManager): Promise<number> {
    const sequence = await this.idSequence(manager);
    await manager.query(`ALTER SEQUENCE ${sequence} INCREMENT BY 1`);
    const [state] = await queryRows<{ last_value: string; is_called: boolean }>(
      manager,
      `SELECT "last_value", "is_called" FROM ${sequence}`,
    );
    return Number(state.last_value) - (state.is_called ? 0 : 1);
  }

  /** PostgreSQL: moves the id sequence to `highest`, so the next id issued is above it. */
  async moveIdSequence(manager: EntityManager, highest: number): Promise<void> {
    const sequence = await this.idSequence(manager);
    await manager.query(`SELECT setval($1::regclass, $2)`, [sequence, highest]);
  }

  /** The sequence's name, quoted by PostgreSQL itself. */
  private async idSequence(manager: EntityManager): Promise<string> {
    const [{ sequence }] = await queryRows<{ sequence: string }>(
      manager,
      `SELECT pg_get_serial_sequence('"chat_messages"', 'id') AS "sequence"`,
    );
    return sequence;
  }

  /**
   * The branch ending at `leafId`: its messages' ids and parents, root first. Null if `leafId` is
   * not a message of the session.
   *
   * A session of at most `SHAPE_MAX` messages is read whole as (id, parent) pairs, one scan of the
   * covering index idx_chat_messages_session_parent, and walked in memory; a larger one by a
   * recursive statement, one primary-key probe per message of the branch. On a 10,000-message
   * chain the scan took 5 ms and the recursive statement 7.5 ms on SQLite (PostgreSQL: the
   * recursive statement ~40 ms, each step a round of its executor). `maxDepth` (the session's
   * message count) bounds both walks, so even a cycle a bug or a hand edit could make in the
   * parent links cannot make them run forever.
   */
  async path(
    manager: EntityManager,
    sessionId: string,
    leafId: number,
    maxDepth: number,
    shapeMax = SHAPE_MAX,
  ): Promise<Branch | null> {
    if (maxDepth <= shapeMax) {
      const shape = await this.shape(manager, sessionId);
      const path: BranchEntry[] = [];
      for (let id: number | null | undefined = leafId; id !== null && id !== undefined;) {
        const parentId: number | null | undefined = shape.parentOf(id);
        if (parentId === undefined || path.length > maxDepth) break;
        path.push({ id, parentId });
        id = parentId;
      }
      return path.length === 0 ? null : { entries: path.reverse(), shape };
    }
    const rows = await queryRows<{ id: number | string; parent_id: number | string | null }>(
      manager,
      this.statement('path', () =>
        this.db.sql(
          `WITH RECURSIVE "path" ("id", "parent_id", "depth") AS (
             SELECT "id", "parent_id", 0 FROM "chat_messages" WHERE "id" = ? AND "session_id" = ?
             UNION ALL
             SELECT m."id", m."parent_id", p."depth" + 1
             FROM "path" p JOIN "chat_messages" m ON m."id" = p."parent_id"
             WHERE p."depth" < ?
           )
           SELECT "id", "parent_id" FROM "path" ORDER BY "depth" DESC`,
        ),
      ),
      [leafId, sessionId, maxDepth],
    );
    if (rows.length === 0) return null;
    const entries = rows.map((row) => ({
      id: Number(row.id),
      parentId: row.parent_id === null ? null : Number(row.parent_id),
    }));
    return { entries, shape: null };
  }

  /**
   * From `from`, the newest child (by timestamp, then id) at every level, down to a leaf: the leaf.
   * Null if `from` is not a message of the session. Read as `path` reads a branch: whole, for a
   * session of at most SHAPE_MAX messages (a 10,000-level descent: one index scan, where the
   * recursive statement of `newestLeaf` takes a probe per level), else by `newestLeaf`.
   */
  async leafUnder(
    manager: EntityManager,
    sessionId: string,
    from: number,
    messageCount: number,
    shapeMax = SHAPE_MAX,
  ): Promise<number | null> {
    if (messageCount > shapeMax) {
      return (await this.position(manager, sessionId, from))
        ? this.newestLeaf(manager, sessionId, from)
        : null;
    }
    const shape = await this.shape(manager, sessionId);
    if (!shape.has(from)) return null;
    let leaf = from;
    for (let steps = 0, next = shape.newestChildOf(leaf); next !== undefined; steps++) {
      if (steps > messageCount) break;
      leaf = next;
      next = shape.newestChildOf(leaf);
    }
    return leaf;
  }

  /**
   * A session's tree, in the order of idx_chat_messages_session_parent (by parent, then timestamp
   * and id), so the last child read of each parent is its newest. PostgreSQL sends it as one text
   * (`id,parent;…`, 0 for no parent): 10,000 pairs took 5.8 ms that way against 12.7 ms as rows,
   * most of it the driver building a row object per pair.
   */
  private async shape(manager: EntityManager, sessionId: string): Promise<TreeShape> {
    if (this.db.isSqlite) {
      const rows = await queryRows<{ id: number; parent_id: number | null }>(
        manager,
        this.statement('shape', () =>
          this.db.sql(
            `SELECT "id", "parent_id" FROM "chat_messages" WHERE "session_id" = ?
             ORDER BY "parent_id", "timestamp", "id"`,
          ),
        ),
        [sessionId],
      );
      return TreeShape.fromRows(rows);
    }
    const [{ pairs }] = await queryRows<{ pairs: string | null }>(
      manager,
      this.statement('shape', () =>
        this.db.sql(
          `SELECT string_agg("pair", ';') AS "pairs" FROM (
             SELECT "id" || ',' || COALESCE("parent_id", 0) AS "pair" FROM "chat_messages"
             WHERE "session_id" = ? ORDER BY "parent_id", "timestamp", "id"
           ) p`,
        ),
      ),
      [sessionId],
    );
    return TreeShape.fromPairs(pairs);
  }

  /**
   * The children of each of `parents` (null: the session's roots), oldest first by (timestamp,
   * id): from `shape` when the session's tree was read whole, else from
   * idx_chat_messages_session_parent.
   */
  async children(
    manager: EntityManager,
    sessionId: string,
    parents: (number | null)[],
    shape: TreeShape | null = null,
  ): Promise<Map<number | null, number[]>> {
    if (shape) return new Map(parents.map((p) => [p, shape.childrenOf(p)]));
    const children = new Map<number | null, number[]>(parents.map((p) => [p, []]));
    type Row = { id: number | string; parent_id: number | string | null };
    const rows = await this.byIdLists(
      parents.filter((p): p is number => p !== null),
      (part) =>
        queryRows<Row>(
          manager,
          this.statement(`children:${part.length}`, () =>
            this.db.sql(
              `SELECT "id", "parent_id" FROM "chat_messages"
               WHERE "session_id" = ? AND "parent_id" IN (${placeholders(part.length)})
               ORDER BY "timestamp", "id"`,
            ),
          ),
          [sessionId, ...part],
        ),
    );
    if (children.has(null)) {
      rows.push(
        ...(await queryRows<Row>(
          manager,
          this.statement('roots', () =>
            this.db.sql(
              `SELECT "id", "parent_id" FROM "chat_messages"
               WHERE "session_id" = ? AND "parent_id" IS NULL ORDER BY "timestamp", "id"`,
            ),
          ),
          [sessionId],
        )),
      );
    }
    for (const row of rows) {
      children.get(row.parent_id === null ? null : Number(row.parent_id))?.push(Number(row.id));
    }
    return children;
  }

  /**
   * The outline (see outline) of the session's messages `ids`, in the order of `ids`, each inlined
   * where it weighs at most `inline` bytes; missing ones left out. The caller checked the owner.
   */
  async outlineOf(
    manager: EntityManager,
    sessionId: string,
    ids: number[],
    inline: number,
  ): Promise<OutlineEntry[]> {
    const rows = await this.byIdLists(ids, (part) =>
      queryRows<OutlineRow>(
        manager,
        this.statement(`outlineOf:${part.length}`, () =>
          this.db.sql(
            `SELECT ${OUTLINE_COLUMNS} FROM "chat_messages"
             WHERE "session_id" = ? AND "id" IN (${placeholders(part.length)})`,
          ),
        ),
        [inline, inline, inline, sessionId, ...part],
      ),
    );
    const found = new Map(rows.map((row) => [Number(row.id), toOutlineEntry(row, sessionId)]));
    return ids.flatMap((id) => found.get(id) ?? []);
  }

  /** The owner's messages `ids` of the session, in the order of `ids`; missing ones left out. */
  async byIds(
    manager: EntityManager,
    owner: string,
    sessionId: string,
    ids: number[],
  ): Promise<ChatMessage[]> {
    const rows = await this.byIdLists(ids, (part) =>
      queryRows<MessageRow>(
        manager,
        this.statement(`byIds:${part.length}`, () =>
          this.db.sql(
            `SELECT ${M_COLUMNS} FROM "chat_messages" m ${this.ownedSession}
             WHERE m."session_id" = ? AND m."id" IN (${placeholders(part.length)})`,
          ),
        ),
        [owner, sessionId, ...part],
      ),
    );
    const found = new Map(rows.map((row) => [Number(row.id), fromRow(row)]));
    return ids.flatMap((id) => found.get(id) ?? []);
  }

  /** `read` for each ID_LIST_MAX of `ids` in turn (an IN list stays within every driver's limits). */
  private async byIdLists<T>(ids: number[], read: (part: number[]) => Promise<T[]>): Promise<T[]> {
    const rows: T[] = [];
    for (let i = 0; i < ids.length; i += ID_LIST_MAX) {
      rows.push(...(await read(ids.slice(i, i + ID_LIST_MAX))));
    }
    return rows;
  }

  /**
   * Inserts copies of `messages` into the session `sessionId`, in order, each the child of the one
   * before (the first a root), stamped `firstTimestamp`, +1, +2, …: a fork's path. The new ids, in
   * order.
   */
  async insertPath(
    manager: EntityManager,
    sessionId: string,
    messages: ChatMessage[],
    firstTimestamp: number,
  ): Promise<number[]> {
    const sql = this.statement('insertPath', () =>
      this.db.sql(
        `INSERT INTO "chat_messages" ("session_id", "timestamp", "parent_id", "role", "content", "metadata", "status", "generation")
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING "id"`,
      ),
    );
    const ids: number[] = [];
    for (const [i, m] of messages.entries()) {
      const [row] = await queryRows<{ id: number | string }>(manager, sql, [
        sessionId,
        firstTimestamp + i,
        ids.at(-1) ?? null,
        m.role,
        m.content,
        m.metadata === null ? null : JSON.stringify(m.metadata),
        m.status,
        m.generation === null ? null : JSON.stringify(m.generation),
      ]);
      ids.push(Number(row.id));
    }
    return ids;
  }

  /** Sets the `generation` of message `id` (a reply just stored, in the caller's transaction). */
  async setGeneration(manager: EntityManager, id: number, generation: Generation): Promise<void> {
    await queryRows(
      manager,
      this.statement('setGeneration', () =>
        this.db.sql(`UPDATE "chat_messages" SET "generation" = ? WHERE "id" = ?`),
      ),
      [JSON.stringify(generation), id],
    );
  }

  /** Message `id`, whoever owns it: for the process generating it, which owns the reply. */
  async find(manager: EntityManager, id: number): Promise<ChatMessage | null> {
    const [row] = await queryRows<MessageRow>(
      manager,
      this.statement('find', () =>
        this.db.sql(`SELECT ${COLUMNS} FROM "chat_messages" WHERE "id" = ?`),
      ),
      [id],
    );
    return row ? fromRow(row) : null;
  }

  /**
   * Stores the text of replies in progress and their sign of life (`progress_at`), in the caller's
   * transaction: one statement per reply. The ids of those still in progress; a reply left out
   * was cancelled, deleted, or marked failed by another process meanwhile, and nothing was written
   * for it.
   */
  async saveProgress(
    manager: EntityManager,
    replies: { id: number; content: string }[],
    now: number,
  ): Promise<Set<number>> {
    const sql = this.statement('saveProgress', () =>
      this.db.sql(
        `UPDATE "chat_messages" SET "content" = ?, "progress_at" = ?
         WHERE "id" = ? AND "status" = 'in_progress' RETURNING "id"`,
      ),
    );
    const live = new Set<number>();
    for (const reply of replies) {
      const [row] = await queryRows<{ id: number | string }>(manager, sql, [
        reply.content,
        now,
        reply.id,
      ]);
      if (row) live.add(reply.id);
    }
    return live;
  }

  /** `progress_at` of replies in progress whose text has not changed: a sign of life only. */
  async heartbeat(manager: EntityManager, ids: number[], now: number): Promise<Set<number>> {
    const rows = await this.byIdLists(ids, (part) =>
      queryRows<{ id: number | string }>(
        manager,
        this.statement(`heartbeat:${part.length}`, () =>
          this.db.sql(
            `UPDATE "chat_messages" SET "progress_at" = ?
             WHERE "status" = 'in_progress' AND "id" IN (${placeholders(part.length)}) RETURNING "id"`,
          ),
        ),
        [now, ...part],
      ),
    );
    return new Set(rows.map((row) => Number(row.id)));
  }

  /**
   * Ends a reply in progress: its final text (null: the text stored, e.g. a cancel from a process
   * that does not generate it), status and generation. The message as stored, or null (nothing
   * written) if it is no longer in progress: cancelled, deleted, or marked failed meanwhile.
   */
  async endReply(
    manager: EntityManager,
    id: number,
    end: { content: string | null } & Pick<ChatMessage, 'status' | 'generation'>,
  ): Promise<ChatMessage | null> {
    const [row] = await queryRows<MessageRow>(
      manager,
      this.statement('endReply', () =>
        this.db.sql(
          `UPDATE "chat_messages" SET "content" = COALESCE(?, "content"), "status" = ?, "generation" = ?, "progress_at" = NULL
           WHERE "id" = ? AND "status" = 'in_progress' RETURNING ${COLUMNS}`,
        ),
      ),
      [end.content, end.status, JSON.stringify(end.generation), id],
    );
    return row ? fromRow(row) : null;
  }

  /**
   * Replies in progress whose last sign of life is older than `before` (every one, given null): the
   * ones a dead process left (see GenerationManager). Read through idx_chat_messages_in_progress.
   */
  async stalledReplies(manager: EntityManager, before: number | null): Promise<ChatMessage[]> {
    const rows = await queryRows<MessageRow>(
      manager,
      this.statement(`stalled:${before === null}`, () =>
        this.db.sql(
          `SELECT ${COLUMNS} FROM "chat_messages" WHERE "status" = 'in_progress'
           ${before === null ? '' : 'AND "progress_at" < ?'}`,
        ),
      ),
      before === null ? [] : [before],
    );
    return rows.map(fromRow);
  }

  /**
   * Marks a stalled reply `failed` with its stored text, unless it showed a sign of life since it
   * was found (`progress_at` moved past `before`) or ended. The message as stored, or null.
   */
  async failStalled(
    manager: EntityManager,
    id: number,
    generation: Generation,
    before: number | null,
  ): Promise<ChatMessage | null> {
    const [row] = await queryRows<MessageRow>(
      manager,
      this.statement(`failStalled:${before === null}`, () =>
        this.db.sql(
          `UPDATE "chat_messages" SET "status" = 'failed', "generation" = ?, "progress_at" = NULL
           WHERE "id" = ? AND "status" = 'in_progress'
           ${before === null ? '' : 'AND "progress_at" < ?'} RETURNING ${COLUMNS}`,
        ),
      ),
      before === null ? [JSON.stringify(generation), id] : [JSON.stringify(generation), id, before],
    );
    return row ? fromRow(row) : null;
  }

  private statement(key: string, build: () => string): string {
    let sql = this.statements.get(key);
    if (sql === undefined) {
      sql = build();
      this.statements.set(key, sql);
    }
    return sql;
  }
}

/** The rows of the owner's session between two keys, both included, in the page's order. */
function range(ownedSession: string, direction: 'ASC' | 'DESC'): string {
  return `SELECT ${M_COLUMNS} FROM "chat_messages" m ${ownedSession}
    WHERE m."session_id" = ?
      AND (m."timestamp", m."id") >= (?, ?) AND (m."timestamp", m."id") <= (?, ?)
    ORDER BY m."timestamp" ${direction}, m."id" ${direction} LIMIT ?`;
}
