import { Check, Column, Entity, ForeignKey, Generated, Index, PrimaryColumn } from 'typeorm';
import { bigintNumber } from '../database/bigint.transformer';
import { OnPostgres } from '../database/postgres-columns';
import { Session } from '../sessions/session.entity';

export const MESSAGE_ROLES = ['user', 'assistant', 'system'] as const;
export type MessageRole = (typeof MESSAGE_ROLES)[number];

/**
 * A message of a session, gone with its session (ON DELETE CASCADE). The search index over contents
 * (PostgreSQL: the `search` column; SQLite: the `chat_messages_fts` table) is the search
 * migration's, kept by triggers; ChatMessagesRepository alone queries it.
 */
@Entity('chat_messages')
@Index('idx_chat_messages_session_order', ['session_id', 'timestamp', 'id'])
@Check('chk_chat_messages_role', `"role" IN ('user', 'assistant', 'system')`)
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
}
