import { Injectable } from '@nestjs/common';
import { EntityManager, In } from 'typeorm';
import { TIME_FORMAT_MAX_MS } from '../common/fields/json-bounds';
import { DatabaseService, queryRows } from '../database/database.service';
import { OwnerRule } from './owner-rule';
import { type ForkedFrom, Session } from './session.entity';

/** A `sessions` row as the drivers return it (PostgreSQL: BIGINT as text; SQLite: booleans as 0/1). */
interface SessionRow {
  id: string;
  owner_id: string;
  name: string | null;
  created_at: number | string;
  last_updated_at: number | string;
  llm_model_name: string | null;
  rag_document_ids: string | null;
  metadata_tags: string | null;
  message_count: number | string;
  archived: boolean | number;
  pinned: boolean | number;
  current_message_id: number | string | null;
  forked_from: string | null;
  expires_at: number | string | null;
}

const nullableNumber = (value: number | string | null) => (value === null ? null : Number(value));

/** The (archived, pinned) bucket of a session, as the session counts key it. */
export interface Bucket {
  archived: boolean;
  pinned: boolean;
}

interface FlagsRow {
  archived: boolean | number;
  pinned: boolean | number;
}

/** A session the sweep deleted: its owner and bucket. */
export interface ExpiredRow extends Bucket {
  owner: string;
}

const toBucket = (row: FlagsRow): Bucket => ({
  archived: Boolean(row.archived),
  pinned: Boolean(row.pinned),
});

function parseJson<T>(text: string | null): T | null {
  return text === null ? null : (JSON.parse(text) as T);
}

function toJson(value: unknown): string | null {
  return value === null || value === undefined ? null : JSON.stringify(value);
}

/** The one mapper from a row to the entity. */
function toSession(row: SessionRow): Session {
  return {
    id: row.id,
    owner_id: row.owner_id,
    name: row.name,
    created_at: Number(row.created_at),
    last_updated_at: Number(row.last_updated_at),
    llm_model_name: row.llm_model_name,
    rag_document_ids: parseJson<string[]>(row.rag_document_ids),
    metadata_tags: parseJson<Record<string, string>>(row.metadata_tags),
    message_count: Number(row.message_count),
    archived: Boolean(row.archived),
    pinned: Boolean(row.pinned),
    current_message_id: nullableNumber(row.current_message_id),
    forked_from: parseJson<ForkedFrom>(row.forked_from),
    expires_at: nullableNumber(row.expires_at),
  };
}

const sessionParams = (s: Session) => [
  s.id,
  s.owner_id,
  s.name,
  s.created_at,
  s.last_updated_at,
  s.llm_model_name,
  toJson(s.rag_document_ids),
  toJson(s.metadata_tags),
  s.message_count,
  s.archived,
  s.pinned,
  s.current_message_id,
  toJson(s.forked_from),
  s.expires_at,
];

const COLUMNS = `"id", "owner_id", "name", "created_at", "last_updated_at", "llm_model_name", "rag_document_ids", "metadata_tags", "message_count", "archived", "pinned", "current_message_id", "forked_from", "expires_at"`;
const ROW = `(${COLUMNS.split(', ')
  .map(() => '?')
  .join(', ')})`;
const prefixed = (columns: string, alias: string) => columns.replace(/"(\w+)"/g, `${alias}."$1"`);

/**
 * The owner rule: every statement on a session names its owner, so another owner's session is
 * indistinguishable from none; and the session must be live (see OwnerRule: an expired session is
 * gone for every statement that names its owner, before the sweep removes it). `rule.owned` takes
 * the id, then the owner; `rule.ownedSession` joins other tables' rows to their session as `s`.
 */
/**
 * The touch of an append (built with the owner rule): counts a message and moves `last_updated_at`
 * forward, returning the new time (the message's timestamp) and the current message (the default
 * parent; unchanged here). The
 * new time is later than every earlier one of the session, even within one millisecond or when the
 * clock steps back. It touches nothing, and returns no row, when the session is not the owner's or
 * when its time cannot move forward within the contract's format (the year 9999). Parameters:
 * `touchParams`. SQLite's append runs it, then the insert, then `SET_CURRENT_MESSAGE` (see
 * ChatMessagesRepository.append).
 */
export const touchSession = (
  rule: OwnerRule,
) => `UPDATE "sessions" SET "message_count" = "message_count" + 1,
    "last_updated_at" = CASE WHEN "last_updated_at" + 1 > ? THEN "last_updated_at" + 1 ELSE ? END
  WHERE ${rule.owned} AND "last_updated_at" < ? RETURNING "id", "last_updated_at", "current_message_id"`;

export const touchParams = (owner: string, id: string, now: number) => [
  now,
  now,
  id,
  owner,
  TIME_FORMAT_MAX_MS,
];

/** Makes a message the session's current one. Parameters: the message id (or null), the session id. */
export const SET_CURRENT_MESSAGE = `UPDATE "sessions" SET "current_message_id" = ? WHERE "id" = ?`;

/**
 * PostgreSQL's touch of an append, as the CTEs `locked` and `touched` of the messages
 * repository's INSERT, so the whole append is one statement. As `touchSession`, and it also draws the new
 * message's id from the messages' sequence and makes it the current message, returning it
 * (`message_id`) with the current message before (`previous_id`, the default parent). `locked`
 * reads that one under FOR UPDATE: the row as the last committed append left it, not as the
 * statement's snapshot saw it (an UPDATE's RETURNING has only the new values). The row stays locked
 * until commit, so appends to one session and a DELETE of it queue up behind each other.
 * Parameters: `touchCteParams`.
 */
export const touchSessionCtes = (rule: OwnerRule) => `"locked" AS (
    SELECT "id", "current_message_id" FROM "sessions"
    WHERE ${rule.owned} AND "last_updated_at" < ? FOR UPDATE
  ), "touched" AS (
    UPDATE "sessions" s SET "message_count" = s."message_count" + 1,
      "last_updated_at" = CASE WHEN s."last_updated_at" + 1 > ? THEN s."last_updated_at" + 1 ELSE ? END,
      "current_message_id" = nextval(pg_get_serial_sequence('"chat_messages"', 'id'))
    FROM "locked" l WHERE s."id" = l."id"
    RETURNING s."id", s."last_updated_at", s."current_message_id" AS "message_id",
      l."current_message_id" AS "previous_id"
  )`;

export const touchCteParams = (owner: string, id: string, now: number) => [
  id,
  owner,
  TIME_FORMAT_MAX_MS,
  now,
  now,
];

/** The list order: newest activity first; ties by newest creation, then id. Total and stable. */
const ORDER = `ORDER BY "last_updated_at" DESC, "created_at" DESC, "id" DESC`;

/** The position of a session in the list order, as carried by a cursor. */
export type SessionKey = [lastUpdatedAt: number, createdAt: number, id: string];

/** What a list page selects. */
export interface SessionFilter {
  archived?: boolean;
  pinned?: boolean;
}

/**
 * The owner and the filter as SQL conditions with their parameters: the columns `sessions` and
 * `session_counts` share, so the list page and its total select alike. The list page adds the
 * liveness of the owner rule; the total, kept per bucket, subtracts the expired sessions the sweep
 * has not removed yet (SessionCountsRepository.total).
 */
export function filterConditions(
  owner: string,
  filter: SessionFilter,
): { conditions: string[]; params: unknown[] } {
  const conditions = [`"owner_id" = ?`];
  const params: unknown[] = [owner];
  if (filter.archived !== undefined) {
    conditions.push(`"archived" = ?`);
    params.push(filter.archived);
  }
  if (filter.pinned !== undefined) {
    conditions.push(`"pinned" = ?`);
    params.push(filter.pinned);
  }
  return { conditions, params };
}

/** A PATCH: each field given (not undefined) is written, the others keep their value. */
export type SessionChanges = Partial<
  Pick<
    Session,
    'name' | 'rag_document_ids' | 'metadata_tags' | 'archived' | 'pinned' | 'expires_at'
  >
>;

/** A search over session names, with the caller's filters. */
export interface NameSearch {
  owner: string;
  /** The query in the database's own syntax (FTS5 or tsquery). */
  match: string;
  archived?: boolean;
  sessionId?: string;
  limit: number;
}

/**
 * The `sessions` table and its search index over names (SQLite: `session_names` and
 * `session_names_fts`; PostgreSQL: the `name_search` column): the only code that reads or writes
 * them. Other tables reach a session's owner through `OwnerRule.ownedSession`.
 *
 * The request paths (create, get one, list a page, PATCH, DELETE, the touch of every append) run
 * statements written once rather than built by TypeORM per call. bench/repository-costs.ts, µs per
 * call on SQLite in memory: get one session 8.9 prepared against 78 through `findOne` and 42
 * through the query builder (PostgreSQL: 189, 198 and 187, the round trip being most of it), a
 * whole "get one session" request being ~190 µs; a page of 20 sessions 115 against 148 through
 * `find` (PostgreSQL: 1,115 against 1,297). The rare paths use TypeORM: export's pages of 100
 * sessions (`find`: 676 against 253 prepared, next to the reading and writing of their messages),
 * import's owner lookup (2.5 ms against 0.8 ms per 500 ids, once or twice per import), search's
 * check of its session filter (`getExists`).
 */
@Injectable()
export class SessionsRepository {
  private readonly sql: Record<
    | 'insert'
    | 'get'
    | 'share'
    | 'flags'
    | 'update'
    | 'delete'
    | 'untouch'
    | 'messageCount'
    | 'setCurrent',
    string
  >;
  private readonly statements = new Map<string, string>();

  constructor(
    private readonly db: DatabaseService,
    private readonly rule: OwnerRule,
  ) {
    const OWNED = rule.owned;
    this.sql = {
      insert: db.sql(`INSERT INTO "sessions" (${COLUMNS}) VALUES ${ROW}`),
      get: db.sql(`SELECT ${COLUMNS} FROM "sessions" WHERE ${OWNED}`),
      // PostgreSQL: every write to a session's tree (append, message delete, PATCH) locks its row
      // first, so a share lock holds the tree still for a reader that must see it whole.
      share: db.sql(
        `SELECT ${COLUMNS} FROM "sessions" WHERE ${OWNED}${db.isSqlite ? '' : ' FOR SHARE'}`,
      ),
      // PostgreSQL: lock the row, so two PATCHes of the flags move the counts one after the other.
      flags: db.sql(
        `SELECT "archived", "pinned" FROM "sessions" WHERE ${OWNED}${db.isSqlite ? '' : ' FOR UPDATE'}`,
      ),
      // One statement for every PATCH: each field has a "given?" flag; a field not given keeps its
      // value. It never touches last_updated_at, which tracks conversation activity.
      update: db.sql(
        `UPDATE "sessions" SET
           "name" = CASE WHEN ? THEN ? ELSE "name" END,
           "rag_document_ids" = CASE WHEN ? THEN ? ELSE "rag_document_ids" END,
           "metadata_tags" = CASE WHEN ? THEN ? ELSE "metadata_tags" END,
           "archived" = CASE WHEN ? THEN ? ELSE "archived" END,
           "pinned" = CASE WHEN ? THEN ? ELSE "pinned" END,
           "expires_at" = CASE WHEN ? THEN ? ELSE "expires_at" END
         WHERE ${OWNED} RETURNING ${COLUMNS}`,
      ),
      // Messages go with the session through the foreign key's ON DELETE CASCADE.
      delete: db.sql(`DELETE FROM "sessions" WHERE ${OWNED} RETURNING "archived", "pinned"`),
      untouch: db.sql(
        `UPDATE "sessions" SET "message_count" = "message_count" - 1 WHERE ${OWNED}
         RETURNING "current_message_id"`,
      ),
      setCurrent: db.sql(SET_CURRENT_MESSAGE),
      messageCount: db.sql(`SELECT "message_count" FROM "sessions" WHERE ${OWNED}`),
    };
  }

  async insert(manager: EntityManager, session: Session): Promise<void> {
    await queryRows(manager, this.sql.insert, sessionParams(session));
  }

  /**
   * Inserts the sessions in one statement unless their id is taken; the ids it inserted.
   * (One statement per row count, built once.)
   */
  async insertMany(manager: EntityManager, sessions: Session[]): Promise<Set<string>> {
    const rows: { id: string }[] = await queryRows(
      manager,
      this.statement(`insert:${sessions.length}`, () =>
        this.db.sql(
          `INSERT INTO "sessions" (${COLUMNS}) VALUES ${Array<string>(sessions.length).fill(ROW).join(', ')}
           ON CONFLICT ("id") DO NOTHING RETURNING "id"`,
        ),
      ),
      sessions.flatMap(sessionParams),
    );
    return new Set(rows.map((row) => row.id));
  }

  async findOwned(manager: EntityManager, owner: string, id: string): Promise<Session | null> {
    const [row] = await queryRows<SessionRow>(manager, this.sql.get, [id, owner]);
    return row ? toSession(row) : null;
  }

  /**
   * As `findOwned`; on PostgreSQL the row is share-locked until commit, so no append, message delete
   * or PATCH of the session (each locks the row first) commits meanwhile, and the row read is the
   * latest committed one. (SQLite runs one write at a time anyway.)
   */
  async findOwnedShared(
    manager: EntityManager,
    owner: string,
    id: string,
  ): Promise<Session | null> {
    const [row] = await queryRows<SessionRow>(manager, this.sql.share, [id, owner]);
    return row ? toSession(row) : null;
  }

  /** The session's bucket; on PostgreSQL the row stays locked until commit. */
  async lockFlags(manager: EntityManager, owner: string, id: string): Promise<Bucket | null> {
    const [row] = await queryRows<FlagsRow>(manager, this.sql.flags, [id, owner]);
    return row ? toBucket(row) : null;
  }

  async update(
    manager: EntityManager,
    owner: string,
    id: string,
    changes: SessionChanges,
  ): Promise<Session | null> {
    const given = (value: unknown) => value !== undefined;
    const [row] = await queryRows<SessionRow>(manager, this.sql.update, [
      given(changes.name),
      changes.name ?? null,
      given(changes.rag_document_ids),
      toJson(changes.rag_document_ids),
      given(changes.metadata_tags),
      toJson(changes.metadata_tags),
      given(changes.archived),
      changes.archived ?? false,
      given(changes.pinned),
      changes.pinned ?? false,
      given(changes.expires_at),
      changes.expires_at ?? null,
      id,
      owner,
    ]);
    return row ? toSession(row) : null;
  }

  /** Deletes the session (and, by the foreign key, its messages); the bucket it was in. */
  async delete(manager: EntityManager, owner: string, id: string): Promise<Bucket | null> {
    const [row] = await queryRows<FlagsRow>(manager, this.sql.delete, [id, owner]);
    return row ? toBucket(row) : null;
  }

  /**
   * Counts one message less (on PostgreSQL locking the row until commit); the session's current
   * message, or null if the session is not the owner's.
   */
  async untouch(
    manager: EntityManager,
    owner: string,
    id: string,
  ): Promise<{ currentMessageId: number | null } | null> {
    const [row] = await queryRows<{ current_message_id: number | string | null }>(
      manager,
      this.sql.untouch,
      [id, owner],
    );
    return row ? { currentMessageId: nullableNumber(row.current_message_id) } : null;
  }

  /** Makes `messageId` (a message of the session, or null) the session's current message. */
  async setCurrent(manager: EntityManager, id: string, messageId: number | null): Promise<void> {
    await queryRows(manager, this.sql.setCurrent, [messageId, id]);
  }

  async messageCount(manager: EntityManager, owner: string, id: string): Promise<number | null> {
    const [row] = await queryRows<{ message_count: number | string }>(
      manager,
      this.sql.messageCount,
      [id, owner],
    );
    return row ? Number(row.message_count) : null;
  }

  /** A page of the owner's list: offset `skip` from the start, or from after the cursor's key. */
  async listPage(
    manager: EntityManager,
    owner: string,
    filter: SessionFilter,
    page: { after: SessionKey | null; limit: number; skip: number },
  ): Promise<Session[]> {
    const { conditions, params } = filterConditions(owner, filter);
    conditions.push(this.rule.live());
    if (page.after) {
      conditions.push(`("last_updated_at", "created_at", "id") < (?, ?, ?)`);
      params.push(...page.after);
    }
    const sql = this.db.sql(
      `SELECT ${COLUMNS} FROM "sessions" WHERE ${conditions.join(' AND ')} ${ORDER} LIMIT ? OFFSET ?`,
    );
    const rows = await queryRows<SessionRow>(manager, sql, [...params, page.limit, page.skip]);
    return rows.map(toSession);
  }

  /**
   * Up to `limit` of the owner's live sessions after id `after`, in id order (a cold path: TypeORM,
   * with the owner rule's liveness as its one raw condition).
   */
  pageById(
    manager: EntityManager,
    owner: string,
    filter: { archived?: boolean },
    after: string,
    limit: number,
  ): Promise<Session[]> {
    const query = manager
      .createQueryBuilder(Session, 's')
      .where('s.owner_id = :owner', { owner })
      .andWhere('s.id > :after', { after })
      .andWhere(this.rule.live('s'));
    if (filter.archived !== undefined) {
      query.andWhere('s.archived = :archived', { archived: filter.archived });
    }
    return query.orderBy('s.id', 'ASC').limit(limit).getMany();
  }

  /**
   * The owner's sessions among `ids` (at most `capacity`, padded with NULLs so that one statement
   * serves every count).
   */
  async findManyOwned(
    manager: EntityManager,
    owner: string,
    ids: string[],
    capacity: number,
  ): Promise<Session[]> {
    const sql = this.statement(`owned:${capacity}`, () =>
      this.db.sql(
        `SELECT ${COLUMNS} FROM "sessions" WHERE "owner_id" = ? AND "id" IN (${Array<string>(
          capacity,
        )
          .fill('?')
          .join(', ')}) AND ${this.rule.live()}`,
      ),
    );
    const padding = Array<null>(capacity - ids.length).fill(null);
    const rows = await queryRows<SessionRow>(manager, sql, [owner, ...ids, ...padding]);
    return rows.map(toSession);
  }

  /**
   * Deletes up to `limit` sessions whose own `expires_at` has passed (their messages go with them
   * through the foreign key), found through idx_sessions_expires_at; the bucket of each, by owner.
   */
  deleteExpiredExplicitly(manager: EntityManager, limit: number): Promise<ExpiredRow[]> {
    const sql = this.statement('expiredExplicitly', () =>
      this.db.sql(
        `DELETE FROM "sessions" WHERE "id" IN (
           SELECT "id" FROM "sessions" WHERE ${this.rule.expiredExplicitly()} LIMIT ?
         ) AND ${this.rule.expired()} RETURNING "owner_id", "archived", "pinned"`,
      ),
    );
    return this.deleted(manager, sql, limit);
  }

  /**
   * Deletes up to `limit` sessions expired by RETENTION_DAYS (none without it), likewise. No index
   * leads with `last_updated_at`: each unpinned bucket of `session_counts` (a few rows per owner)
   * leads instead to a range of the owner's archived, pinned, recency index. The outer condition
   * checks each row again as it is deleted.
   */
  deleteExpiredByRetention(manager: EntityManager, limit: number): Promise<ExpiredRow[]> {
    const byRetention = this.rule.expiredByRetention('s');
    if (byRetention === null) return Promise.resolve([]);
    const sql = this.statement('expiredByRetention', () =>
      this.db.sql(
        `DELETE FROM "sessions" WHERE "id" IN (
           SELECT s."id" FROM "session_counts" c CROSS JOIN "sessions" s
           WHERE c."pinned" = FALSE AND c."n" > 0 AND s."owner_id" = c."owner_id"
             AND s."archived" = c."archived" AND ${byRetention}
           LIMIT ?
         ) AND ${this.rule.expired()} RETURNING "owner_id", "archived", "pinned"`,
      ),
    );
    return this.deleted(manager, sql, limit);
  }

  private async deleted(manager: EntityManager, sql: string, limit: number): Promise<ExpiredRow[]> {
    const rows = await queryRows<FlagsRow & { owner_id: string }>(manager, sql, [limit]);
    return rows.map((row) => ({ owner: row.owner_id, ...toBucket(row) }));
  }

  /** Whether the session is the owner's, and live (a cold path: TypeORM). */
  isOwned(manager: EntityManager, owner: string, id: string): Promise<boolean> {
    return manager
      .createQueryBuilder(Session, 's')
      .where('s.id = :id AND s.owner_id = :owner', { id, owner })
      .andWhere(this.rule.live('s'))
      .getExists();
  }

  /** Whose session each of `ids` is, for those that exist (a cold path: TypeORM). */
  async ownersOf(manager: EntityManager, ids: string[]): Promise<Map<string, string>> {
    const rows = await manager.find(Session, {
      select: { id: true, owner_id: true },
      where: { id: In(ids) },
    });
    return new Map(rows.map((row) => [row.id, row.owner_id]));
  }

  /**
   * The owner's sessions whose name matches, best first (ties newest first). SQLite: FTS5's bm25;
   * PostgreSQL: ts_rank with normalization 1, which divides by the log of the length as bm25 favours
   * short texts.
   */
  async searchNames(manager: EntityManager, search: NameSearch): Promise<Session[]> {
    const filters = [
      `s."owner_id" = ?`,
      this.rule.live('s'),
      ...(search.archived === undefined ? [] : [`s."archived" = ?`]),
      ...(search.sessionId === undefined ? [] : [`s."id" = ?`]),
    ]
      .map((filter) => ` AND ${filter}`)
      .join('');
    const sql = this.statement(`names${filters}`, () => {
      const columns = prefixed(COLUMNS, 's');
      return this.db.isSqlite
        ? `SELECT ${columns} FROM "session_names_fts"
           JOIN "session_names" n ON n."id" = "session_names_fts"."rowid"
           JOIN "sessions" s ON s."id" = n."session_id"
           WHERE "session_names_fts" MATCH ?${filters}
           ORDER BY bm25("session_names_fts"), s."last_updated_at" DESC, s."id" DESC LIMIT ?`
        : this.db.sql(
            `SELECT ${columns} FROM "sessions" s, to_tsquery('simple', ?) q
             WHERE s."name_search" @@ q${filters}
             ORDER BY ts_rank(s."name_search", q, 1) DESC, s."last_updated_at" DESC, s."id" DESC LIMIT ?`,
          );
    });
    const rows = await queryRows<SessionRow>(manager, sql, [
      search.match,
      search.owner,
      ...(search.archived === undefined ? [] : [search.archived]),
      ...(search.sessionId === undefined ? [] : [search.sessionId]),
      search.limit,
    ]);
    return rows.map(toSession);
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
