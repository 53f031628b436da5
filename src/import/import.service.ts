import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { EntityManager } from 'typeorm';
import type { Env } from '../config/env.validation';
import { DatabaseService, queryRows } from '../database/database.service';
import { bucketOrder, SessionsService, toJson } from '../sessions/sessions.service';
import { ImportResultDto } from './dto/import.dto';
import { type ImportBody, readImportFile } from './import-file';
import type { ImportedMessage, ImportedSession } from './imported-session';
import { Pacer } from './pacer';

const SESSION_COLUMNS = `"id", "owner_id", "name", "created_at", "last_updated_at", "llm_model_name", "rag_document_ids", "metadata_tags", "message_count", "archived", "pinned"`;
const MESSAGE_COLUMNS = `"session_id", "timestamp", "role", "content", "metadata"`;
/** Rows per INSERT: a power of two, and smaller powers of two for the rest, so few distinct statements exist. */
const MAX_ROWS = 256;

function rowsPerStatement(total: number): number[] {
  const sizes: number[] = [];
  for (let left = total, size = MAX_ROWS; left > 0; size /= 2) {
    while (left >= size) {
      sizes.push(size);
      left -= size;
    }
  }
  return sizes;
}

/**
 * Imports as one transaction: all of a file's sessions and messages, or nothing.
 *
 * The file is read and checked completely first (`readImportFile`), outside any transaction. Then
 * multi-row INSERTs write it. Sessions keep their ids; a session whose id exists already is skipped
 * whole (an import never merges into or overwrites a session), which makes importing the same file
 * again a no-op. Exported message ids are kept when this database never issued them (they are above
 * its id high-water mark), so an export imported into a new database reads back identically; a
 * message whose id this database may have used gets a new id, as ids are never reused (its
 * session's order is by timestamp first, so it stays in place).
 *
 * The writing runs as a `bulkWrite` and yields to the event loop every few milliseconds: on
 * PostgreSQL other requests carry on in full; on SQLite other reads carry on (on the main
 * connection, seeing the state before the import) while other writes wait for the import's commit,
 * as SQLite has a single writer. Reading and checking the file holds nothing at all.
 */
@Injectable()
export class ImportService {
  private readonly defaultModelName: string;
  private readonly statements = new Map<string, string>();

  constructor(
    private readonly db: DatabaseService,
    private readonly sessions: SessionsService,
    config: ConfigService<Env, true>,
  ) {
    this.defaultModelName = config.get('DEFAULT_MODEL_NAME', { infer: true });
  }

  /**
   * Imported sessions belong to `owner`. A session id that already exists is skipped, whoever owns
   * it (ids are global), and so is everything in it.
   */
  async import(owner: string, body: ImportBody): Promise<ImportResultDto> {
    const sessions = await readImportFile(body, this.defaultModelName);
    let highest = 0;
    for (const { messages } of sessions) {
      for (const { id } of messages) if (id !== null && id > highest) highest = id;
    }
    // PostgreSQL: reserve the exported ids in a short transaction of its own, before the import's.
    const reserved =
      !this.db.isSqlite && highest > 0
        ? await this.db.write((m) => this.reserveIds(m, highest), { hooks: false })
        : 0;

    return this.db.bulkWrite(async (manager) => {
      const issued =
        this.db.isSqlite && highest > 0 ? await this.sqliteHighWater(manager) : reserved;
      const pacer = new Pacer();
      const inserted = new Set<string>();
      let done = 0;
      for (const size of rowsPerStatement(sessions.length)) {
        const chunk = sessions.slice(done, done + size);
        done += size;
        const rows: { id: string }[] = await queryRows(
          manager,
          this.statement('sessions', size),
          chunk.flatMap(({ session: s }) => [
            s.id,
            owner,
            s.name,
            s.created_at,
            s.last_updated_at,
            s.llm_model_name,
            toJson(s.rag_document_ids),
            toJson(s.metadata_tags),
            s.message_count,
            s.archived,
            s.pinned,
          ]),
        );
        for (const row of rows) inserted.add(row.id);
        const messages = chunk
          .filter(({ session }) => inserted.has(session.id))
          .flatMap(({ session, messages }) =>
            messages.map((m) => ({ ...m, sessionId: session.id })),
          );
        await this.insertMessages(
          manager,
          messages.filter((m) => m.id !== null && m.id > issued),
          'kept',
          pacer,
        );
        await this.insertMessages(
          manager,
          messages.filter((m) => m.id === null || m.id <= issued),
          'new',
          pacer,
        );
        await pacer.pace();
      }
      await this.countImported(
        manager,
        owner,
        sessions.filter(({ session }) => inserted.has(session.id)),
      );
      return {
        imported: inserted.size,
        skipped: sessions.length - inserted.size,
        sessions: sessions.map(({ session }) => session.id),
      };
    });
  }

  /** The list's session counts move with the sessions the import added. */
  private async countImported(
    manager: EntityManager,
    owner: string,
    imported: ImportedSession[],
  ): Promise<void> {
    const buckets = new Map<string, { archived: boolean; pinned: boolean; n: number }>();
    for (const { session } of imported) {
      const key = `${session.archived}:${session.pinned}`;
      const bucket = buckets.get(key) ?? {
        archived: session.archived,
        pinned: session.pinned,
        n: 0,
      };
      bucket.n++;
      buckets.set(key, bucket);
    }
    for (const bucket of [...buckets.values()].sort((a, b) => bucketOrder(a) - bucketOrder(b))) {
      await this.sessions.count(manager, owner, bucket.archived, bucket.pinned, bucket.n);
    }
  }

  private async insertMessages(
    manager: EntityManager,
    messages: (ImportedMessage & { sessionId: string })[],
    ids: 'kept' | 'new',
    pacer: Pacer,
  ): Promise<void> {
    let done = 0;
    for (const size of rowsPerStatement(messages.length)) {
      const params: unknown[] = [];
      for (const m of messages.slice(done, done + size)) {
        if (ids === 'kept') params.push(m.id);
        params.push(m.sessionId, m.timestamp, m.role, m.content, m.metadata);
      }
      done += size;
      await manager.query(
        this.statement(ids === 'kept' ? 'messagesWithIds' : 'messages', size),
        params,
      );
      await pacer.pace();
    }
  }

  /** A multi-row INSERT, built once per kind and row count. */
  private statement(kind: 'sessions' | 'messages' | 'messagesWithIds', rows: number): string {
    const key = `${kind}:${rows}`;
    let sql = this.statements.get(key);
    if (sql === undefined) {
      const [columns, count, tail] =
        kind === 'sessions'
          ? [SESSION_COLUMNS, 11, ` ON CONFLICT ("id") DO NOTHING RETURNING "id"`]
          : kind === 'messages'
            ? [MESSAGE_COLUMNS, 5, '']
            : [`"id", ${MESSAGE_COLUMNS}`, 6, ''];
      const row = `(${Array<string>(count).fill('?').join(', ')})`;
      const table = kind === 'sessions' ? 'sessions' : 'chat_messages';
      sql = this.db.sql(
        `INSERT INTO "${table}" (${columns}) VALUES ${Array<string>(rows).fill(row).join(', ')}${tail}`,
      );
      this.statements.set(key, sql);
    }
    return sql;
  }

  /** SQLite: the highest message id ever issued (AUTOINCREMENT never goes below it). */
  private async sqliteHighWater(manager: EntityManager): Promise<number> {
    const [row]: { seq: number }[] = await queryRows(
      manager,
      `SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'chat_messages'`,
    );
    return row ? Number(row.seq) : 0;
  }

  /**
   * PostgreSQL: the highest message id ever issued, with the id sequence moved past `highest`, so
   * appends running alongside the import never draw an id the import is about to insert. ALTER
   * SEQUENCE blocks other nextval() calls until this short transaction commits, which makes reading
   * and moving the sequence one atomic step.
   */
  private async reserveIds(manager: EntityManager, highest: number): Promise<number> {
    const [{ sequence }]: { sequence: string }[] = await queryRows(
      manager,
      `SELECT pg_get_serial_sequence('"chat_messages"', 'id') AS "sequence"`,
    );
    // The name comes quoted from PostgreSQL itself.
    await manager.query(`ALTER SEQUENCE ${sequence} INCREMENT BY 1`);
    const [state]: { last_value: string; is_called: boolean }[] = await queryRows(
      manager,
      `SELECT "last_value", "is_called" FROM ${sequence}`,
    );
    const issued = Number(state.last_value) - (state.is_called ? 0 : 1);
    if (highest > issued)
      await manager.query(`SELECT setval($1::regclass, $2)`, [sequence, highest]);
    return issued;
  }
}
