import { Column, Entity, PrimaryColumn } from 'typeorm';

/** Deployment-wide values every process reads from the shared database (e.g. the cursor key). */
@Entity('settings')
export class Setting {
  @PrimaryColumn({ type: 'varchar', length: 64 })
  key: string;

  @Column({ type: 'text' })
  value: string;
}
