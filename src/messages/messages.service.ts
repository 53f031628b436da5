import { ConflictException, Injectable, NotFoundException } from '@nestjs/common';
import { exactMessageId, isWritableTime } from '../common/json-bounds';
import { Page } from '../common/pagination';
import { ValidationProblemException } from '../common/validation.pipe';
import { DatabaseService, queryRows } from '../database/database.service';
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

function messageNotFound(sessionId: string, messageId: string): NotFoundException {
  return new NotFoundException(
    `Message with ID '${messageId}' not found in session '${sessionId}'.`,
  );
}

/** A message id from the path: anything but a plain positive integer names no message. */
function parseMessageId(text: string): number | null {
  return /^\d{1,15}$/.test(text) ? Number(text) : null;
}

const COLUMNS = `"id", "session_id", "timestamp", "role", "content", "metadata"`;
const KEY = `("timestamp", "id")`;

@Injectable()
export class MessagesService {
  private readonly sql: Record<
    'touch' | 'insert' | 'count' | 'position' | 'get' | 'untouch' | 'delete',
    string
  >;

  constructor(private readonly db: DatabaseService) {
    this.sql = {
      // Checks that the session exists, counts the message and moves last_updated_at forward in one
      // statement; on PostgreSQL it also locks the row until commit, so appends to one session and
      // a DELETE of it queue up behind each other. The new timestamp is later than everything before
      // it in the session, even within one millisecond or when the clock steps back.
      touch: db.sql(
        `UPDATE "sessions" SET "message_count" = "message_count" + 1,
           "last_updated_at" = CASE WHEN "last_updated_at" + 1 > ? THEN "last_updated_at" + 1 ELSE ? END
         WHERE "id" = ? AND "owner_id" = ? RETURNING "last_updated_at"`,
      ),
      insert: db.sql(
        `INSERT INTO "chat_messages" ("session_id", "timestamp", "role", "content", "metadata")
         VALUES (?, ?, ?, ?, ?) RETURNING "id"`,
      ),
      // Every statement reaches messages through their session's owner: another owner's session or
      // message is indistinguishable from a missing one.
      count: db.sql(`SELECT "message_count" FROM "sessions" WHERE "id" = ? AND "owner_id" = ?`),
      position: db.sql(
        `SELECT "timestamp", "id" FROM "chat_messages" WHERE "id" = ? AND "session_id" = ?`,
      ),
      get: db.sql(
        `SELECT ${COLUMNS.replace(/"(\w+)"/g, 'm."$1"')} FROM "chat_messages" m
         JOIN "sessions" s ON s."id" = m."session_id"
         WHERE m."id" = ? AND m."session_id" = ? AND s."owner_id" = ?`,
      ),
      // The session row first (as appends do), then the message: one lock order for every write.
      untouch: db.sql(
        `UPDATE "sessions" SET "message_count" = "message_count" - 1
         WHERE "id" = ? AND "owner_id" = ? RETURNING "id"`,
      ),
      delete: db.sql(
        `DELETE FROM "chat_messages" WHERE "id" = ? AND "session_id" = ? RETURNING "id"`,
      ),
    };
  }

  /**
   * One transaction: the session check, the touch and the insert commit together, so a message
   * racing a DELETE of its session is either stored before the delete (and removed by it) or
   * answered 404 — never acknowledged and lost, never left orphaned. Whatever the answer needs is
   * checked before the commit: a message whose time the contract's format cannot write, or whose
   * id would not be exact or fetchable, is rolled back and refused, never stored and then failed.
   */
  append(owner: string, sessionId: string, dto: CreateChatMessageDto): Promise<ChatMessage> {
    return this.db.write(async (manager) => {
      const now = Date.now();
      const [touched]: { last_updated_at: number | string }[] = await queryRows(
        manager,
        this.sql.touch,
        [now, now, sessionId, owner],
      );
      if (!touched) throw sessionNotFound(sessionId);
      const timestamp = Number(touched.last_updated_at);
      if (!isWritableTime(timestamp)) {
        throw new ConflictException(
          `Session '${sessionId}' was last active at a time after the year 9999: no later message can be stamped.`,
        );
      }
      const message: Omit<ChatMessage, 'id'> = {
        session_id: sessionId,
        timestamp,
        role: dto.role ?? 'user',
        content: dto.content,
        metadata: dto.metadata ?? null,
      };
      const [inserted]: { id: number | string }[] = await queryRows(manager, this.sql.insert, [
        sessionId,
        message.timestamp,
        message.role,
        message.content,
        message.metadata === null ? null : JSON.stringify(message.metadata),
      ]);
      const id = exactMessageId(inserted.id);
      // Only a store whose id sequence was pushed to its end gets here; the operator must see it.
      if (id === null)
        throw new Error(`Message ids are exhausted: the database issued ${inserted.id}`);
      return { id, ...message };
    });
  }

  /**
   * Ordered by (timestamp, id), ascending or descending. Offset paging with `skip`; keyset paging
   * with `after` / `before` (message ids of this session). `before` alone returns the `limit`
   * messages nearest to it, still in the list's order. A full page names the next one by `after`.
   */
  list(owner: string, sessionId: string, query: ListMessagesQueryDto): Promise<Page<ChatMessage>> {
    const keyset = query.after !== undefined || query.before !== undefined;
    if (keyset && query.skip !== undefined) {
      throw new ValidationProblemException([
        { field: 'skip', message: 'skip cannot be combined with after or before' },
      ]);
    }
    const ascending = query.order === 'asc';
    return this.db.read(async (manager) => {
      const [session]: { message_count: number | string }[] = await queryRows(
        manager,
        this.sql.count,
        [sessionId, owner],
      );
      if (!session) throw sessionNotFound(sessionId);

      const conditions = [`"session_id" = ?`];
      const params: unknown[] = [sessionId];
      for (const param of ['after', 'before'] as const) {
        const id = query[param];
        if (id === undefined) continue;
        const [position]: { timestamp: number | string; id: number }[] = await queryRows(
          manager,
          this.sql.position,
          [id, sessionId],
        );
        if (!position) {
          throw new ValidationProblemException([
            { field: param, message: `${param} names message ${id}, which is not in this session` },
          ]);
        }
        // "after" means later in the list's order: later in time when ascending, earlier when not.
        const later = (param === 'after') === ascending;
        conditions.push(`${KEY} ${later ? '>' : '<'} (?, ?)`);
        params.push(Number(position.timestamp), Number(position.id));
      }
      // `before` alone: read backwards from the cursor to get the nearest messages, then flip.
      const backwards = query.before !== undefined && query.after === undefined;
      const direction = ascending !== backwards ? 'ASC' : 'DESC';
      const sql = this.db.sql(
        `SELECT ${COLUMNS} FROM "chat_messages" WHERE ${conditions.join(' AND ')}
         ORDER BY "timestamp" ${direction}, "id" ${direction} LIMIT ? OFFSET ?`,
      );
      const rows: MessageRow[] = await queryRows(manager, sql, [
        ...params,
        query.limit,
        query.skip ?? 0,
      ]);
      const items = rows.map(toMessage);
      if (backwards) items.reverse();
      const last = items.at(-1);
      return {
        items,
        total: Number(session.message_count),
        next:
          last && items.length === query.limit
            ? {
                after: last.id,
                ...(query.before === undefined ? {} : { before: query.before }),
                limit: query.limit,
                order: query.order,
              }
            : undefined,
      };
    });
  }

  async get(owner: string, sessionId: string, messageId: string): Promise<ChatMessage> {
    const id = parseMessageId(messageId);
    const [row]: MessageRow[] =
      id === null
        ? []
        : await this.db.read((m) => queryRows(m, this.sql.get, [id, sessionId, owner]));
    if (!row) throw messageNotFound(sessionId, messageId);
    return toMessage(row);
  }

  /**
   * `message_count` drops by one; `last_updated_at` stays (it tracks activity, not content). The
   * count is decremented first (locking the session row, as appends do), and the transaction rolls
   * back if the message is not there — e.g. a concurrent DELETE of the same message got it first.
   */
  async remove(owner: string, sessionId: string, messageId: string): Promise<void> {
    const id = parseMessageId(messageId);
    if (id === null) throw messageNotFound(sessionId, messageId);
    await this.db.write(async (manager) => {
      const touched = await queryRows(manager, this.sql.untouch, [sessionId, owner]);
      if (touched.length === 0) throw messageNotFound(sessionId, messageId);
      const deleted = await queryRows(manager, this.sql.delete, [id, sessionId]);
      if (deleted.length === 0) throw messageNotFound(sessionId, messageId);
    });
  }
}

/** For features that read messages next to their own rows (search, export). */
export { COLUMNS as MESSAGE_COLUMNS, toMessage, type MessageRow };
