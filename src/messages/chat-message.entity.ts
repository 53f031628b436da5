import {
  Check,
  Column,
  Entity,
  Index,
  JoinColumn,
  ManyToOne,
  PrimaryGeneratedColumn,
} from 'typeorm';
import { Session } from '../sessions/session.entity';
import { epochMs } from '../database/epoch-ms.transformer';

export const MESSAGE_ROLES = ['user', 'assistant', 'system'] as const;
export type MessageRole = (typeof MESSAGE_ROLES)[number];

@Entity('chat_messages')
@Index('idx_chat_messages_session_order', ['session_id', 'timestamp', 'id'])
@Check('chk_chat_messages_role', `"role" IN ('user', 'assistant', 'system')`)
export class ChatMessage {
  @PrimaryGeneratedColumn({ type: 'integer' })
  id: number;

  @Column({ type: 'varchar', length: 36 })
  session_id: string;

  @Column({ type: 'bigint', transformer: epochMs })
  timestamp: number;

  @Column({ type: 'varchar', length: 16 })
  role: MessageRole;

  @Column({ type: 'text' })
  content: string;

  @Column({ type: 'simple-json', nullable: true })
  /** A JSON object; `object` because TypeORM's insert types cannot check a recursive JSON type. */
  metadata: object | null;

  @ManyToOne(() => Session, (session) => session.messages, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'session_id' })
  session?: Session;
}
