import { Injectable, NotFoundException } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { randomUUID } from 'node:crypto';
import type { Env } from '../config/env.validation';
import { Page } from '../common/pagination';
import { DatabaseService } from '../database/database.service';
import { CreateSessionDto, ListSessionsQueryDto } from './dto/session.dto';
import { Session } from './session.entity';

export function sessionNotFound(id: string): NotFoundException {
  return new NotFoundException(`Session with ID '${id}' not found.`);
}

/** A `sessions` row as the drivers return it (PostgreSQL returns BIGINT as text). */
interface SessionRow {
  id: string;
  name: string | null;
  created_at: number | string;
  last_updated_at: number | string;
  llm_model_name: string | null;
  rag_document_ids: string | null;
  message_count: number | string;
}

function toSession(row: SessionRow): Session {
  return {
    id: row.id,
    name: row.name,
    created_at: Number(row.created_at),
    last_updated_at: Number(row.last_updated_at),
    llm_model_name: row.llm_model_name,
    rag_document_ids:
      row.rag_document_ids === null ? null : (JSON.parse(row.rag_document_ids) as string[]),
    message_count: Number(row.message_count),
  };
}

const COLUMNS = `"id", "name", "created_at", "last_updated_at", "llm_model_name", "rag_document_ids", "message_count"`;

@Injectable()
export class SessionsService {
  private readonly defaultModelName: string;
  private readonly sql: Record<'insert' | 'page' | 'count' | 'get' | 'delete', string>;

  constructor(
    private readonly db: DatabaseService,
    config: ConfigService<Env, true>,
  ) {
    this.defaultModelName = config.get('DEFAULT_MODEL_NAME', { infer: true });
    this.sql = {
      insert: db.sql(`INSERT INTO "sessions" (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`),
      // Newest activity first; ties by newest creation, then id: a total, stable order.
      page: db.sql(
        `SELECT ${COLUMNS} FROM "sessions"
         ORDER BY "last_updated_at" DESC, "created_at" DESC, "id" DESC LIMIT ? OFFSET ?`,
      ),
      count: db.sql(`SELECT COUNT(*) AS "total" FROM "sessions"`),
      get: db.sql(`SELECT ${COLUMNS} FROM "sessions" WHERE "id" = ?`),
      // Messages go with the session through the foreign key's ON DELETE CASCADE.
      delete: db.sql(`DELETE FROM "sessions" WHERE "id" = ? RETURNING "id"`),
    };
  }

  async create(dto: CreateSessionDto): Promise<Session> {
    const now = Date.now();
    const session: Session = {
      id: randomUUID(),
      name: dto.name ?? null,
      created_at: now,
      last_updated_at: now,
      llm_model_name: this.defaultModelName,
      rag_document_ids: dto.rag_document_ids ?? null,
      message_count: 0,
    };
    const { rag_document_ids: ragIds } = session;
    await this.db.write((manager) =>
      manager.query(this.sql.insert, [
        session.id,
        session.name,
        now,
        now,
        session.llm_model_name,
        ragIds === null ? null : JSON.stringify(ragIds),
        0,
      ]),
    );
    return session;
  }

  list(query: ListSessionsQueryDto): Promise<Page<Session>> {
    return this.db.read(async (manager) => {
      const rows: SessionRow[] = await manager.query(this.sql.page, [query.limit, query.skip]);
      const [{ total }]: { total: number | string }[] = await manager.query(this.sql.count);
      return { items: rows.map(toSession), total: Number(total) };
    });
  }

  async get(id: string): Promise<Session> {
    const [row]: SessionRow[] = await this.db.read((manager) => manager.query(this.sql.get, [id]));
    if (!row) throw sessionNotFound(id);
    return toSession(row);
  }

  async remove(id: string): Promise<void> {
    const deleted: unknown[] = await this.db.write((manager) =>
      manager.query(this.sql.delete, [id]),
    );
    if (deleted.length === 0) throw sessionNotFound(id);
  }
}
