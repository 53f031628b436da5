import { MigrationInterface, QueryRunner, Table, TableForeignKey, TableIndex } from 'typeorm';

/**
 * The v1 schema: the original design's `sessions` and `chat_messages` tables. Written with TypeORM's
 * schema builder so the same migration runs on SQLite and PostgreSQL.
 */
export class CreateSessionsAndMessages1795557600000 implements MigrationInterface {
  name = 'CreateSessionsAndMessages1795557600000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(
      new Table({
        name: 'sessions',
        columns: [
          { name: 'id', type: 'varchar', length: '36', isPrimary: true },
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
            type: 'integer',
            isPrimary: true,
            isGenerated: true,
            generationStrategy: 'increment',
          },
          { name: 'session_id', type: 'varchar', length: '36' },
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
    await queryRunner.dropTable('chat_messages');
    await queryRunner.dropTable('sessions');
  }
}
