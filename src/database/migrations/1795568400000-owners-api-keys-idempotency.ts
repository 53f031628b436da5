import { MigrationInterface, QueryRunner, Table, TableIndex } from 'typeorm';
import { withoutStatementTimeout } from './unbounded';

/**
 * Owners, API keys and idempotency records. Every session gets an owner; sessions created before
 * this migration belong to `local`, the one owner of AUTH_MODE=none. The list indexes gain the
 * owner as their first column, since every list is an owner's list now.
 */
export class OwnersApiKeysIdempotency1795568400000 implements MigrationInterface {
  name = 'OwnersApiKeysIdempotency1795568400000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await withoutStatementTimeout(queryRunner);
    const postgres = queryRunner.connection.driver.options.type === 'postgres';
    const binary = postgres ? ' COLLATE "C"' : '';
    await queryRunner.query(
      `ALTER TABLE "sessions" ADD COLUMN "owner_id" varchar(200)${binary} NOT NULL DEFAULT 'local'`,
    );
    await queryRunner.dropIndex('sessions', 'idx_sessions_recency');
    await queryRunner.dropIndex('sessions', 'idx_sessions_archived_recency');
    await queryRunner.createIndices('sessions', [
      new TableIndex({
        name: 'idx_sessions_owner_recency',
        columnNames: ['owner_id', 'last_updated_at', 'created_at', 'id'],
      }),
      new TableIndex({
        name: 'idx_sessions_owner_archived_recency',
        columnNames: ['owner_id', 'archived', 'last_updated_at', 'created_at', 'id'],
      }),
    ]);

    await queryRunner.createTable(
      new Table({
        name: 'api_keys',
        columns: [
          { name: 'id', type: 'varchar', length: '32', isPrimary: true },
          { name: 'owner_id', type: 'varchar', length: '200' },
          // SHA-256 of the key's secret part: the key itself is shown once and never stored.
          { name: 'secret_hash', type: 'varchar', length: '64' },
          { name: 'created_at', type: 'bigint' },
          { name: 'last_used_at', type: 'bigint', isNullable: true },
          { name: 'revoked_at', type: 'bigint', isNullable: true },
        ],
      }),
    );

    await queryRunner.createTable(
      new Table({
        name: 'idempotency_keys',
        columns: [
          { name: 'owner_id', type: 'varchar', length: '200', isPrimary: true },
          { name: 'method', type: 'varchar', length: '10', isPrimary: true },
          { name: 'path', type: 'text', isPrimary: true },
          { name: 'key', type: 'varchar', length: '255', isPrimary: true },
          { name: 'request_hash', type: 'varchar', length: '64' },
          { name: 'status', type: 'integer' },
          { name: 'body', type: 'text' },
          { name: 'created_at', type: 'bigint' },
        ],
        indices: [
          new TableIndex({ name: 'idx_idempotency_keys_created', columnNames: ['created_at'] }),
        ],
      }),
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await withoutStatementTimeout(queryRunner);
    await queryRunner.dropTable('idempotency_keys');
    await queryRunner.dropTable('api_keys');
    await queryRunner.dropIndex('sessions', 'idx_sessions_owner_archived_recency');
    await queryRunner.dropIndex('sessions', 'idx_sessions_owner_recency');
    await queryRunner.createIndices('sessions', [
      new TableIndex({
        name: 'idx_sessions_recency',
        columnNames: ['last_updated_at', 'created_at', 'id'],
      }),
      new TableIndex({
        name: 'idx_sessions_archived_recency',
        columnNames: ['archived', 'last_updated_at', 'created_at', 'id'],
      }),
    ]);
    await queryRunner.dropColumn('sessions', 'owner_id');
  }
}
