import { MigrationInterface, QueryRunner, Table, TableForeignKey, TableIndex } from 'typeorm';
import { withoutStatementTimeout } from './unbounded';

/**
 * The v1 schema: the original design's `sessions` and `chat_messages` tables. Written with TypeORM's
 * schema builder so the same migration runs on SQLite and PostgreSQL.
 */
export class CreateSessionsAndMessages1795557600000 implements MigrationInterface {
  name = 'CreateSessionsAndMessages1795557600000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await withoutStatementTimeout(queryRunner);
    const postgres = queryRunner.connection.driver.options.type === 'postgres';
    // Ids compare byte by byte on both databases (ORDER BY id, cursors), whatever the server locale.
    const binary = postgres ? { collation: 'C' } : {};
    await queryRunner.createTable(
      new Table({
        name: 'sessions',
        columns: [
          { name: 'id', type: 'varchar', length: '36', isPrimary: true, ...binary },
          { name: 'name', type: 'text', isNullable: true },
          { name: 'created_at', type: 'bigint' },
          { name: 'last_updated_at', type: 'bigint' },
          { name: 'llm_model_name', type: 'text', isNullable: true },
          { name: 'rag_document_ids', type: 'text', isNullable: true },
          { name: 'message_count', type: 'integer', default: 0 },
        ],
        indices: [
          new TableIndex({
            name: 'idx_sessions_recency',
            columnNames: ['last_updated_at', 'created_at', 'id'],
          }),
        ],
      }),
    );
    await queryRunner.createTable(
      new Table({
        name: 'chat_messages',
        columns: [
          {
            name: 'id',
            // SQLite only auto-increments an INTEGER PRIMARY KEY (64-bit there); PostgreSQL's
            // INTEGER would run out at 2^31 messages, so it gets BIGINT (BIGSERIAL).
            type: postgres ? 'bigint' : 'integer',
            isPrimary: true,
            isGenerated: true,
            generationStrategy: 'increment',
          },
          { name: 'session_id', type: 'varchar', length: '36', ...binary },
          { name: 'timestamp', type: 'bigint' },
          { name: 'role', type: 'varchar', length: '16' },
          { name: 'content', type: 'text' },
          { name: 'metadata', type: 'text', isNullable: true },
        ],
        checks: [
          {
            name: 'chk_chat_messages_role',
            expression: `"role" IN ('user', 'assistant', 'system')`,
          },
        ],
        foreignKeys: [
          new TableForeignKey({
            columnNames: ['session_id'],
            referencedTableName: 'sessions',
            referencedColumnNames: ['id'],
            onDelete: 'CASCADE',
          }),
        ],
        indices: [
          new TableIndex({
            name: 'idx_chat_messages_session_order',
            columnNames: ['session_id', 'timestamp', 'id'],
          }),
        ],
      }),
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await withoutStatementTimeout(queryRunner);
    await queryRunner.dropTable('chat_messages');
    await queryRunner.dropTable('sessions');
  }
}
