import { randomBytes } from 'node:crypto';
import { MigrationInterface, QueryRunner, Table, TableIndex } from 'typeorm';
import { withoutStatementTimeout } from './unbounded';

/**
 * v1.1 sessions: `metadata_tags`, `archived`, `pinned`; an index for the default (unarchived) list;
 * and a `settings` table holding the key that signs list cursors, so every process that shares the
 * database accepts the cursors of the others. Plain ALTER TABLE … ADD COLUMN runs the same on SQLite
 * and PostgreSQL and keeps existing rows (they read as not archived, not pinned, no tags).
 */
export class SessionTagsArchivePin1795564800000 implements MigrationInterface {
  name = 'SessionTagsArchivePin1795564800000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await withoutStatementTimeout(queryRunner);
    await queryRunner.query(`ALTER TABLE "sessions" ADD COLUMN "metadata_tags" text`);
    await queryRunner.query(
      `ALTER TABLE "sessions" ADD COLUMN "archived" boolean NOT NULL DEFAULT false`,
    );
    await queryRunner.query(
      `ALTER TABLE "sessions" ADD COLUMN "pinned" boolean NOT NULL DEFAULT false`,
    );
    await queryRunner.createIndex(
      'sessions',
      new TableIndex({
        name: 'idx_sessions_archived_recency',
        columnNames: ['archived', 'last_updated_at', 'created_at', 'id'],
      }),
    );
    await queryRunner.createTable(
      new Table({
        name: 'settings',
        columns: [
          { name: 'key', type: 'varchar', length: '64', isPrimary: true },
          { name: 'value', type: 'text' },
        ],
      }),
    );
    // base64url text needs no escaping, and inlining it avoids the drivers' different placeholders.
    const key = randomBytes(32).toString('base64url');
    await queryRunner.query(
      `INSERT INTO "settings" ("key", "value") VALUES ('cursor_signing_key', '${key}')`,
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await withoutStatementTimeout(queryRunner);
    await queryRunner.dropTable('settings');
    await queryRunner.dropIndex('sessions', 'idx_sessions_archived_recency');
    await queryRunner.dropColumn('sessions', 'pinned');
    await queryRunner.dropColumn('sessions', 'archived');
    await queryRunner.dropColumn('sessions', 'metadata_tags');
  }
}
