import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { bigintNumber } from '../database/bigint.transformer';
import { OnPostgres } from '../database/postgres-columns';

export interface ForkedFrom {
  session_id: string;
  message_id: number | null;
}

/**
 * A conversation. On PostgreSQL the ids and owners compare byte by byte (collation "C", SQLite's
 * default), so lists and cursors order them the same on both databases whatever the server locale.
 * The search index over names (PostgreSQL: the `name_search` column; SQLite: the `session_names`
 * tables) is the search migration's, kept by triggers; SessionsRepository alone queries it.
 */
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
@Index('idx_sessions_expires_at', ['expires_at'])
export class Session {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  @OnPostgres({ collation: 'C' })
  id: string;

  /** Who the session belongs to: an API key's owner, or `local` when AUTH_MODE=none. */
  @Column({ type: 'varchar', length: 200, default: 'local' })
  @OnPostgres({ collation: 'C' })
  owner_id: string;

  @Column({ type: 'text', nullable: true })
  name: string | null;

  @Column({ type: 'bigint', transformer: bigintNumber })
  created_at: number;

  @Column({ type: 'bigint', transformer: bigintNumber })
  last_updated_at: number;

  @Column({ type: 'text', nullable: true })
  llm_model_name: string | null;

  @Column({ type: 'simple-json', nullable: true })
  rag_document_ids: string[] | null;

  @Column({ type: 'simple-json', nullable: true })
  metadata_tags: Record<string, string> | null;

  @Column({ type: 'integer', default: 0 })
  message_count: number;

  // The SQL default the migration wrote: TypeORM spells `false` as 0 on SQLite.
  @Column({ type: 'boolean', default: () => 'false' })
  archived: boolean;

  @Column({ type: 'boolean', default: () => 'false' })
  pinned: boolean;

  /** The leaf of the branch the user is on; null exactly when the session has no messages. */
  @Column({ type: 'integer', nullable: true, transformer: bigintNumber })
  @OnPostgres({ type: 'bigint' })
  current_message_id: number | null;

  /** The session and message this one was forked from. */
  @Column({ type: 'simple-json', nullable: true })
  forked_from: ForkedFrom | null;

  /** When the session is to be deleted (epoch ms); null keeps it. */
  @Column({ type: 'bigint', nullable: true, transformer: bigintNumber })
  expires_at: number | null;
}
