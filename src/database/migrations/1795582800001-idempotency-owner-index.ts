import { MigrationInterface, QueryRunner, TableIndex } from 'typeorm';
import { withoutStatementTimeout } from './unbounded';

/**
 * Idempotency records by owner, newest first: each keyed write keeps its owner's records under
 * IDEMPOTENCY_KEYS_PER_OWNER by probing this index at that depth, rather than sorting them all.
 */
export class IdempotencyOwnerIndex1795582800001 implements MigrationInterface {
  name = 'IdempotencyOwnerIndex1795582800001';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await withoutStatementTimeout(queryRunner);
    await queryRunner.createIndex(
      'idempotency_keys',
      new TableIndex({
        name: 'idx_idempotency_keys_owner_created',
        columnNames: ['owner_id', 'created_at'],
      }),
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await withoutStatementTimeout(queryRunner);
    await queryRunner.dropIndex('idempotency_keys', 'idx_idempotency_keys_owner_created');
  }
}
