import { Column, Entity, Index, OneToMany, PrimaryColumn } from 'typeorm';
import { ChatMessage } from '../messages/chat-message.entity';
import { epochMs } from '../database/epoch-ms.transformer';

@Entity('sessions')
@Index('idx_sessions_owner_recency', ['owner_id', 'last_updated_at', 'created_at', 'id'])
@Index('idx_sessions_owner_archived_recency', [
  'owner_id',
  'archived',
  'last_updated_at',
  'created_at',
  'id',
])
@Index('idx_sessions_owner_archived_id', ['owner_id', 'archived', 'id'])
@Index('idx_sessions_owner_id', ['owner_id', 'id'])
@Index('idx_sessions_owner_archived_pinned_recency', [
  'owner_id',
  'archived',
  'pinned',
  'last_updated_at',
  'created_at',
  'id',
])
@Index('idx_sessions_owner_pinned_recency', [
  'owner_id',
  'pinned',
  'last_updated_at',
  'created_at',
  'id',
])
export class Session {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  /** Who the session belongs to: an API key's owner, or `local` when AUTH_MODE=none. */
  @Column({ type: 'varchar', length: 200, default: 'local' })
  owner_id: string;

  @Column({ type: 'text', nullable: true })
  name: string | null;

  @Column({ type: 'bigint', transformer: epochMs })
  created_at: number;

  @Column({ type: 'bigint', transformer: epochMs })
  last_updated_at: number;

  @Column({ type: 'text', nullable: true })
  llm_model_name: string | null;

  @Column({ type: 'simple-json', nullable: true })
  rag_document_ids: string[] | null;

  @Column({ type: 'simple-json', nullable: true })
  metadata_tags: Record<string, string> | null;

  @Column({ type: 'integer', default: 0 })
  message_count: number;

  @Column({ type: 'boolean', default: false })
  archived: boolean;

  @Column({ type: 'boolean', default: false })
  pinned: boolean;

  @OneToMany(() => ChatMessage, (message) => message.session)
  messages?: ChatMessage[];
}
