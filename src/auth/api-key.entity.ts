import { Column, Entity, PrimaryColumn } from 'typeorm';
import { bigintNumber } from '../database/bigint.transformer';

/** An API key: its id, its owner, and a SHA-256 of its secret part (the key is never stored). */
@Entity('api_keys')
export class ApiKey {
  @PrimaryColumn({ type: 'varchar', length: 32 })
  id: string;

  @Column({ type: 'varchar', length: 200 })
  owner_id: string;

  @Column({ type: 'varchar', length: 64 })
  secret_hash: string;

  @Column({ type: 'bigint', transformer: bigintNumber })
  created_at: number;

  @Column({ type: 'bigint', nullable: true, transformer: bigintNumber })
  last_used_at: number | null;

  @Column({ type: 'bigint', nullable: true, transformer: bigintNumber })
  revoked_at: number | null;
}
