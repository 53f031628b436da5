import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { bigintNumber } from '../database/bigint.transformer';

/** The first response to a POST with an Idempotency-Key, stored with the write it answered. */
@Entity('idempotency_keys')
@Index('idx_idempotency_keys_created', ['created_at'])
@Index('idx_idempotency_keys_owner_created', ['owner_id', 'created_at'])
export class IdempotencyKey {
  @PrimaryColumn({ type: 'varchar', length: 200 })
  owner_id: string;

  @PrimaryColumn({ type: 'varchar', length: 10 })
  method: string;

  @PrimaryColumn({ type: 'text' })
  path: string;

  @PrimaryColumn({ type: 'varchar', length: 255 })
  key: string;

  /** SHA-256 of the request body. */
  @Column({ type: 'varchar', length: 64 })
  request_hash: string;

  @Column({ type: 'integer' })
  status: number;

  @Column({ type: 'text' })
  body: string;

  @Column({ type: 'bigint', transformer: bigintNumber })
  created_at: number;
}
