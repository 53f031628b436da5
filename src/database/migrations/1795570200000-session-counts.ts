import { MigrationInterface, QueryRunner, Table } from 'typeorm';
import { withoutStatementTimeout } from './unbounded';

/**
 * How many sessions each owner has, per (archived, pinned): the list's X-Total-Count becomes a sum
 * over at most four rows instead of a COUNT(*) that walks every session of the owner. Kept exact by
 * the same transactions that create, delete, archive or pin sessions; filled here from what exists.
 */
export class SessionCounts1795570200000 implements MigrationInterface {
  name = 'SessionCounts1795570200000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await withoutStatementTimeout(queryRunner);
    const postgres = queryRunner.connection.driver.options.type === 'postgres';
    await queryRunner.createTable(
      new Table({
        name: 'session_counts',
        columns: [
          {
            name: 'owner_id',
            type: 'varchar',
            length: '200',
            isPrimary: true,
            ...(postgres ? { collation: 'C' } : {}),
          },
          { name: 'archived', type: 'boolean', isPrimary: true },
          { name: 'pinned', type: 'boolean', isPrimary: true },
          { name: 'n', type: 'bigint' },
        ],
      }),
    );
    await queryRunner.query(
      `INSERT INTO "session_counts" ("owner_id", "archived", "pinned", "n")
       SELECT "owner_id", "archived", "pinned", COUNT(*) FROM "sessions"
       GROUP BY "owner_id", "archived", "pinned"`,
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await withoutStatementTimeout(queryRunner);
    await queryRunner.dropTable('session_counts');
  }
}
