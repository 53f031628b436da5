import { MigrationInterface, QueryRunner, TableIndex } from 'typeorm';

/**
 * The bulk export walks sessions in id order, filtered by `archived`: this index serves that walk
 * page by page (without it SQLite would pick the archived index and sort every page).
 */
export class ExportOrder1795579200000 implements MigrationInterface {
  name = 'ExportOrder1795579200000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createIndex(
      'sessions',
      new TableIndex({ name: 'idx_sessions_archived_id', columnNames: ['archived', 'id'] }),
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropIndex('sessions', 'idx_sessions_archived_id');
  }
}
