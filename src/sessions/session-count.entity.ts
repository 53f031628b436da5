import { Column, Entity, PrimaryColumn } from 'typeorm';
import { bigintNumber } from '../database/bigint.transformer';
import { OnPostgres } from '../database/postgres-columns';

/** Sessions per owner and (archived, pinned): the source of the list's X-Total-Count. */
@Entity('session_counts')
export class SessionCount {
  @PrimaryColumn({ type: 'varchar', length: 200 })
  @OnPostgres({ collation: 'C' })
  owner_id: string;

  @PrimaryColumn({ type: 'boolean' })
  archived: boolean;

  @PrimaryColumn({ type: 'boolean' })
  pinned: boolean;

  @Column({ type: 'bigint', transformer: bigintNumber })
  n: number;
}
