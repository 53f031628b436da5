import { MigrationInterface, QueryRunner, TableIndex } from 'typeorm';
import { withoutStatementTimeout } from './unbounded';

/**
 * The bulk export walks an owner's sessions in id order, filtered by `archived` or not: these
 * indexes serve that walk page by page (without them SQLite would pick a recency index and sort
 * every page).
 */
export class ExportOrder1795579200000 implements MigrationInterface {
  name = 'ExportOrder1795579200000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await withoutStatementTimeout(queryRunner);
    await queryRunner.createIndices('sessions', [
      new TableIndex({
        name: 'idx_sessions_owner_archived_id',
        columnNames: ['owner_id', 'archived', 'id'],
      }),
      new TableIndex({ name: 'idx_sessions_owner_id', columnNames: ['owner_id', 'id'] }),
    ]);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await withoutStatementTimeout(queryRunner);
    await queryRunner.dropIndex('sessions', 'idx_sessions_owner_id');
    await queryRunner.dropIndex('sessions', 'idx_sessions_owner_archived_id');
  }
}
