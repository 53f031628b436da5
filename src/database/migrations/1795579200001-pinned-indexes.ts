import { MigrationInterface, QueryRunner, TableIndex } from 'typeorm';
import { withoutStatementTimeout } from './unbounded';

/**
 * The pinned filter (`?pinned=true|false`, with or without `archived`) gets indexes of its own:
 * without them a pinned list walks every session of the owner's recency index to test `pinned`.
 */
export class PinnedIndexes1795579200001 implements MigrationInterface {
  name = 'PinnedIndexes1795579200001';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await withoutStatementTimeout(queryRunner);
    await queryRunner.createIndices('sessions', [
      new TableIndex({
        name: 'idx_sessions_owner_archived_pinned_recency',
        columnNames: ['owner_id', 'archived', 'pinned', 'last_updated_at', 'created_at', 'id'],
      }),
      new TableIndex({
        name: 'idx_sessions_owner_pinned_recency',
        columnNames: ['owner_id', 'pinned', 'last_updated_at', 'created_at', 'id'],
      }),
    ]);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await withoutStatementTimeout(queryRunner);
    await queryRunner.dropIndex('sessions', 'idx_sessions_owner_pinned_recency');
    await queryRunner.dropIndex('sessions', 'idx_sessions_owner_archived_pinned_recency');
  }
}
