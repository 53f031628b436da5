import { Injectable } from '@nestjs/common';
import { Page } from '../common/pagination';
import { DatabaseService } from '../database/database.service';
import { sessionNotFound } from '../sessions/sessions.service';
import { ChatMessage, MessageRole } from './chat-message.entity';
import { CreateChatMessageDto, ListMessagesQueryDto } from './dto/chat-message.dto';

/** A `chat_messages` row as the drivers return it (PostgreSQL returns BIGINT as text). */
interface MessageRow {
  id: number;
  session_id: string;
  timestamp: number | string;
  role: MessageRole;
  content: string;
  metadata: string | null;
}

function toMessage(row: MessageRow): ChatMessage {
  return {
    id: Number(row.id),
    session_id: row.session_id,
    timestamp: Number(row.timestamp),
    role: row.role,
    content: row.content,
    metadata: row.metadata === null ? null : (JSON.parse(row.metadata) as object),
  };
}

const COLUMNS = `"id", "session_id", "timestamp", "role", "content", "metadata"`;

@Injectable()
export class MessagesService {
  private readonly sql: Record<'touch' | 'insert' | 'count' | 'page', string>;

  constructor(private readonly db: DatabaseService) {
    this.sql = {
      // Checks that the session exists, counts the message and moves last_updated_at forward in one
      // statement; on PostgreSQL it also locks the row until commit, so appends to one session and
      // a DELETE of it queue up behind each other. The new timestamp is later than everything before
      // it in the session, even within one millisecond or when the clock steps back.
      touch: db.sql(
        `UPDATE "sessions" SET "message_count" = "message_count" + 1,
           "last_updated_at" = CASE WHEN "last_updated_at" + 1 > ? THEN "last_updated_at" + 1 ELSE ? END
         WHERE "id" = ? RETURNING "last_updated_at"`,
      ),
      insert: db.sql(
        `INSERT INTO "chat_messages" ("session_id", "timestamp", "role", "content", "metadata")
         VALUES (?, ?, ?, ?, ?) RETURNING "id"`,
      ),
      count: db.sql(`SELECT "message_count" FROM "sessions" WHERE "id" = ?`),
      // Oldest first; messages stamped in the same millisecond keep their insertion (id) order.
      page: db.sql(
        `SELECT ${COLUMNS} FROM "chat_messages" WHERE "session_id" = ?
         ORDER BY "timestamp" ASC, "id" ASC LIMIT ? OFFSET ?`,
      ),
    };
  }

  /**
   * One transaction: the session check, the touch and the insert commit together, so a message
   * racing a DELETE of its session is either stored before the delete (and removed by it) or
   * answered 404 — never acknowledged and lost, never left orphaned.
   */
  append(sessionId: string, dto: CreateChatMessageDto): Promise<ChatMessage> {
    return this.db.write(async (manager) => {
      const now = Date.now();
      const [touched]: { last_updated_at: number | string }[] = await manager.query(
        this.sql.touch,
        [now, now, sessionId],
      );
      if (!touched) throw sessionNotFound(sessionId);
      const message: Omit<ChatMessage, 'id'> = {
        session_id: sessionId,
        timestamp: Number(touched.last_updated_at),
        role: dto.role ?? 'user',
        content: dto.content,
        metadata: dto.metadata ?? null,
      };
      const [inserted]: { id: number }[] = await manager.query(this.sql.insert, [
        sessionId,
        message.timestamp,
        message.role,
        message.content,
        message.metadata === null ? null : JSON.stringify(message.metadata),
      ]);
      return { id: Number(inserted.id), ...message };
    });
  }

  list(sessionId: string, query: ListMessagesQueryDto): Promise<Page<ChatMessage>> {
    return this.db.read(async (manager) => {
      const [session]: { message_count: number | string }[] = await manager.query(this.sql.count, [
        sessionId,
      ]);
      if (!session) throw sessionNotFound(sessionId);
      const rows: MessageRow[] = await manager.query(this.sql.page, [
        sessionId,
        query.limit,
        query.skip,
      ]);
      return { items: rows.map(toMessage), total: Number(session.message_count) };
    });
  }
}
