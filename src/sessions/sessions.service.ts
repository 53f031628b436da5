import { ConflictException, Injectable, NotFoundException } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { randomUUID } from 'node:crypto';
import type { Env } from '../config/env.validation';
import { isWritableTime } from '../common/fields/json-bounds';
import { Page } from '../common/pagination/pagination';
import { ValidationProblemException } from '../common/problems/validation.pipe';
import { CursorService } from '../database/cursor.service';
import type { EntityManager } from 'typeorm';
import { DatabaseService, queryRows } from '../database/database.service';
import { claimWriteHooks } from '../database/write-hooks';
import { CreateSessionDto, ListSessionsQueryDto, UpdateSessionDto } from './dto/session.dto';
import { Session } from './session.entity';

export function sessionNotFound(id: string): NotFoundException {
  return new NotFoundException(`Session with ID '${id}' not found.`);
}

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
}

/** The flags as the drivers return them (SQLite: 0/1). */
interface Flags {
  archived: boolean | number;
  pinned: boolean | number;
}

/**
 * Rebuilds session_counts from the sessions themselves: for bulk loads that insert rows directly
 * (the large-data seeders), never needed by the service, which keeps the counts as it writes.
 */
export const RECOUNT_SESSIONS_SQL = [
  `DELETE FROM "session_counts"`,
  `INSERT INTO "session_counts" ("owner_id", "archived", "pinned", "n")
   SELECT "owner_id", "archived", "pinned", COUNT(*) FROM "sessions"
   GROUP BY "owner_id", "archived", "pinned"`,
];

/** The one order in which session-count buckets are locked, so writers never wait in a cycle. */
export const bucketOrder = (bucket: { archived: boolean; pinned: boolean }) =>
  Number(bucket.archived) * 2 + Number(bucket.pinned);

const flags = (row: Flags) => ({ archived: Boolean(row.archived), pinned: Boolean(row.pinned) });

function parseJson<T>(text: string | null): T | null {
  return text === null ? null : (JSON.parse(text) as T);
}

function toJson(value: unknown): string | null {
  return value === null || value === undefined ? null : JSON.stringify(value);
}

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
  };
}

const COLUMNS = `"id", "owner_id", "name", "created_at", "last_updated_at", "llm_model_name", "rag_document_ids", "metadata_tags", "message_count", "archived", "pinned"`;
/** The list order: newest activity first; ties by newest creation, then id. Total and stable. */
const ORDER = `ORDER BY "last_updated_at" DESC, "created_at" DESC, "id" DESC`;

/** The position of a session in the list order, as carried by a cursor. */
type SessionKey = [lastUpdatedAt: number, createdAt: number, id: string];

function isSessionKey(value: unknown): value is SessionKey {
  return (
    Array.isArray(value) &&
    value.length === 3 &&
    Number.isSafeInteger(value[0]) &&
    Number.isSafeInteger(value[1]) &&
    typeof value[2] === 'string'
  );
}

@Injectable()
export class SessionsService {
  private readonly defaultModelName: string;
  private readonly sql: Record<'insert' | 'get' | 'flags' | 'update' | 'delete' | 'count', string>;

  constructor(
    private readonly db: DatabaseService,
    private readonly cursors: CursorService,
    config: ConfigService<Env, true>,
  ) {
    this.defaultModelName = config.get('DEFAULT_MODEL_NAME', { infer: true });
    this.sql = {
      insert: db.sql(
        `INSERT INTO "sessions" (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      // Every statement names the owner: another owner's session is indistinguishable from none.
      get: db.sql(`SELECT ${COLUMNS} FROM "sessions" WHERE "id" = ? AND "owner_id" = ?`),
      // PostgreSQL: lock the row, so two PATCHes of the flags move the counts one after the other.
      flags: db.sql(
        `SELECT "archived", "pinned" FROM "sessions" WHERE "id" = ? AND "owner_id" = ?${
          db.isSqlite ? '' : ' FOR UPDATE'
        }`,
      ),
      // One statement for every PATCH: each field has a "given?" flag; a field not given keeps its
      // value. It never touches last_updated_at, which tracks conversation activity.
      update: db.sql(
        `UPDATE "sessions" SET
           "name" = CASE WHEN ? THEN ? ELSE "name" END,
           "rag_document_ids" = CASE WHEN ? THEN ? ELSE "rag_document_ids" END,
           "metadata_tags" = CASE WHEN ? THEN ? ELSE "metadata_tags" END,
           "archived" = CASE WHEN ? THEN ? ELSE "archived" END,
           "pinned" = CASE WHEN ? THEN ? ELSE "pinned" END
         WHERE "id" = ? AND "owner_id" = ? RETURNING ${COLUMNS}`,
      ),
      // Messages go with the session through the foreign key's ON DELETE CASCADE.
      delete: db.sql(
        `DELETE FROM "sessions" WHERE "id" = ? AND "owner_id" = ? RETURNING "archived", "pinned"`,
      ),
      count: db.sql(
        `INSERT INTO "session_counts" ("owner_id", "archived", "pinned", "n") VALUES (?, ?, ?, ?)
         ON CONFLICT ("owner_id", "archived", "pinned")
         DO UPDATE SET "n" = "session_counts"."n" + excluded."n"`,
      ),
    };
  }

  create(owner: string, dto: CreateSessionDto): Promise<Session> {
    const now = Date.now();
    const session: Session = {
      id: randomUUID(),
      owner_id: owner,
      name: dto.name ?? null,
      created_at: now,
      last_updated_at: now,
      llm_model_name: this.defaultModelName,
      rag_document_ids: dto.rag_document_ids ?? null,
      metadata_tags: dto.metadata_tags ?? null,
      message_count: 0,
      archived: dto.archived ?? false,
      pinned: dto.pinned ?? false,
    };
    return this.db.write(async (manager) => {
      await queryRows(manager, this.sql.insert, [
        session.id,
        owner,
        session.name,
        now,
        now,
        session.llm_model_name,
        toJson(session.rag_document_ids),
        toJson(session.metadata_tags),
        0,
        session.archived,
        session.pinned,
      ]);
      await this.count(manager, owner, session.archived, session.pinned, 1);
      return session;
    }, claimWriteHooks());
  }

  /**
   * Moves the session counts behind X-Total-Count by `delta` for one (archived, pinned) bucket, in
   * the caller's transaction: every write that adds, removes or re-flags sessions calls it.
   */
  async count(
    manager: EntityManager,
    owner: string,
    archived: boolean,
    pinned: boolean,
    delta: number,
  ): Promise<void> {
    await queryRows(manager, this.sql.count, [owner, archived, pinned, delta]);
  }

  /** Offset (`skip`) or keyset (`cursor`) paging over the filtered list; `next` continues by cursor. */
  list(owner: string, query: ListSessionsQueryDto): Promise<Page<Session>> {
    if (query.cursor !== undefined && query.skip !== undefined) {
      throw new ValidationProblemException([
        { field: 'skip', message: 'skip cannot be combined with cursor' },
      ]);
    }
    const after = query.cursor === undefined ? null : this.decodeCursor(query.cursor);
    const filters = [`"owner_id" = ?`];
    const params: unknown[] = [owner];
    if (query.archived !== 'any') {
      filters.push(`"archived" = ?`);
      params.push(query.archived === 'true');
    }
    if (query.pinned !== undefined) {
      filters.push(`"pinned" = ?`);
      params.push(query.pinned === 'true');
    }
    const countSql = this.db.sql(
      `SELECT COALESCE(SUM("n"), 0) AS "total" FROM "session_counts" ${where(filters)}`,
    );
    const countParams = [...params];
    if (after) {
      filters.push(`("last_updated_at", "created_at", "id") < (?, ?, ?)`);
      params.push(...after);
    }
    const pageSql = this.db.sql(
      `SELECT ${COLUMNS} FROM "sessions" ${where(filters)} ${ORDER} LIMIT ? OFFSET ?`,
    );
    params.push(query.limit, query.skip ?? 0);

    return this.db.read(async (manager) => {
      const rows: SessionRow[] = await queryRows(manager, pageSql, params);
      const [{ total }]: { total: number | string }[] = await queryRows(
        manager,
        countSql,
        countParams,
      );
      const items = rows.map(toSession);
      const last = items.at(-1);
      return {
        items,
        total: Number(total),
        next:
          last && items.length === query.limit
            ? {
                cursor: this.cursors.encode({
                  v: 1,
                  k: [last.last_updated_at, last.created_at, last.id],
                }),
                limit: query.limit,
                archived: query.archived,
                ...(query.pinned === undefined ? {} : { pinned: query.pinned }),
              }
            : undefined,
      };
    });
  }

  async get(owner: string, id: string): Promise<Session> {
    const [row]: SessionRow[] = await this.db.read((manager) =>
      queryRows(manager, this.sql.get, [id, owner]),
    );
    if (!row) throw sessionNotFound(id);
    return toSession(row);
  }

  async update(owner: string, id: string, dto: UpdateSessionDto): Promise<Session> {
    const given = (value: unknown) => value !== undefined;
    const flagsChange = given(dto.archived) || given(dto.pinned);
    const row = await this.db.write(async (manager) => {
      const [before]: Flags[] = flagsChange
        ? await queryRows(manager, this.sql.flags, [id, owner])
        : [];
      const [after]: SessionRow[] = await queryRows(manager, this.sql.update, [
        given(dto.name),
        dto.name ?? null,
        given(dto.rag_document_ids),
        toJson(dto.rag_document_ids),
        given(dto.metadata_tags),
        toJson(dto.metadata_tags),
        given(dto.archived),
        dto.archived ?? false,
        given(dto.pinned),
        dto.pinned ?? false,
        id,
        owner,
      ]);
      // The answer is written from this row: a time it cannot write rolls the update back.
      if (
        after &&
        !(isWritableTime(Number(after.created_at)) && isWritableTime(Number(after.last_updated_at)))
      ) {
        throw new ConflictException(
          `Session '${id}' holds a time after the year 9999 and cannot be answered; nothing was changed.`,
        );
      }
      if (before && after) {
        const [was, is] = [flags(before), flags(after)];
        if (was.archived !== is.archived || was.pinned !== is.pinned) {
          // Buckets in one fixed order, so two PATCHes moving opposite ways cannot deadlock.
          const moves = [
            { ...was, delta: -1 },
            { ...is, delta: 1 },
          ].sort((a, b) => bucketOrder(a) - bucketOrder(b));
          for (const move of moves) {
            await this.count(manager, owner, move.archived, move.pinned, move.delta);
          }
        }
      }
      return after;
    });
    if (!row) throw sessionNotFound(id);
    return toSession(row);
  }

  async remove(owner: string, id: string): Promise<void> {
    const removed = await this.db.write(async (manager) => {
      const [gone]: Flags[] = await queryRows(manager, this.sql.delete, [id, owner]);
      if (gone) await this.count(manager, owner, Boolean(gone.archived), Boolean(gone.pinned), -1);
      return gone !== undefined;
    });
    if (!removed) throw sessionNotFound(id);
  }

  private decodeCursor(cursor: string): SessionKey {
    const payload = this.cursors.decode(cursor) as { v?: unknown; k?: unknown };
    if (payload?.v !== 1 || !isSessionKey(payload.k)) {
      throw new ValidationProblemException([
        { field: 'cursor', message: 'cursor is not a session list cursor' },
      ]);
    }
    return payload.k;
  }
}

function where(conditions: string[]): string {
  return conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
}

/** For features that read sessions next to their own rows (search, export, import). */
export { COLUMNS as SESSION_COLUMNS, toSession, toJson, type SessionRow };
