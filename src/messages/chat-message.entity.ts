import { Check, Column, Entity, ForeignKey, Generated, Index, PrimaryColumn } from 'typeorm';
import { bigintNumber } from '../database/bigint.transformer';
import { OnPostgres } from '../database/postgres-columns';
import { Session } from '../sessions/session.entity';

export const MESSAGE_ROLES = ['user', 'assistant', 'system'] as const;
export type MessageRole = (typeof MESSAGE_ROLES)[number];

export const MESSAGE_STATUSES = ['complete', 'in_progress', 'cancelled', 'failed'] as const;
export type MessageStatus = (typeof MESSAGE_STATUSES)[number];

/** How a generated reply came about; null for posted messages. */
export interface Generation {
  model: string;
  finish_reason: string | null;
  usage: { prompt_tokens: number; completion_tokens: number } | null;
  error: string | null;
}

/**
 * A message of a session, gone with its session (ON DELETE CASCADE). A session's messages form a
 * tree (several roots allowed): `parent_id` names a message of the same session, which the
 * composite foreign key over the unique (session_id, id) index enforces. The search index over
 * contents (PostgreSQL: the `search` column; SQLite: the `chat_messages_fts` table) is the search
 * migration's, kept by triggers; ChatMessagesRepository alone queries it.
 */
@Entity('chat_messages')
@Index('idx_chat_messages_session_order', ['session_id', 'timestamp', 'id'])
@Index('uq_chat_messages_session_id', ['session_id', 'id'], { unique: true })
@Index('idx_chat_messages_session_parent', ['session_id', 'parent_id', 'timestamp', 'id'])
@Index('idx_chat_messages_in_progress', ['progress_at'], { where: `"status" = 'in_progress'` })
@Check('chk_chat_messages_role', `"role" IN ('user', 'assistant', 'system')`)
@Check('chk_chat_messages_status', `"status" IN ('complete', 'in_progress', 'cancelled', 'failed')`)
@ForeignKey(() => ChatMessage, ['session_id', 'parent_id'], ['session_id', 'id'], {
  name: 'fk_chat_messages_parent',
})
export class ChatMessage {
  // SQLite's INTEGER PRIMARY KEY is 64-bit; PostgreSQL's INTEGER would run out at 2^31 messages.
  // (@PrimaryGeneratedColumn takes no transformer, which PostgreSQL's BIGINT needs.)
  @PrimaryColumn({ type: 'integer', transformer: bigintNumber })
  @Generated('increment')
  @OnPostgres({ type: 'bigint' })
  id: number;

  @Column({ type: 'varchar', length: 36 })
  @OnPostgres({ collation: 'C' })
  @ForeignKey(() => Session, { onDelete: 'CASCADE' })
  session_id: string;

  @Column({ type: 'bigint', transformer: bigintNumber })
  timestamp: number;

  @Column({ type: 'varchar', length: 16 })
  role: MessageRole;

  @Column({ type: 'text' })
  content: string;

  /** A JSON object; `object` because TypeORM's insert types cannot check a recursive JSON type. */
  @Column({ type: 'simple-json', nullable: true })
  metadata: object | null;

  /** The message this one follows; null for a root. */
  @Column({ type: 'integer', nullable: true, transformer: bigintNumber })
  @OnPostgres({ type: 'bigint' })
  parent_id: number | null;

  @Column({ type: 'varchar', length: 16, default: 'complete' })
  status: MessageStatus;

  @Column({ type: 'simple-json', nullable: true })
  generation: Generation | null;

  /**
   * An `in_progress` reply's last sign of life (epoch ms): when its process last stored its text or
   * said it is still generating. Not part of the API.
   */
  @Column({ type: 'bigint', nullable: true, transformer: bigintNumber, select: false })
  progress_at?: number | null;
}
