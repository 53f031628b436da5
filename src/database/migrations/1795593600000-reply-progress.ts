import { MigrationInterface, QueryRunner } from 'typeorm';
import { withoutStatementTimeout } from './unbounded';

/**
 * v1.2 replies from a language model: `chat_messages.progress_at` (epoch ms), the last time the
 * process generating an `in_progress` reply stored its progress or said it is alive. Null for every
 * other message. A partial index over the replies in progress lets a process find the ones whose
 * owner died (no progress for a minute) without reading the table: there are few of them at once.
 * A plain ADD COLUMN of a nullable column: instant on both databases, whatever the table's size.
 */
export class ReplyProgress1795593600000 implements MigrationInterface {
  name = 'ReplyProgress1795593600000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await withoutStatementTimeout(queryRunner);
    await queryRunner.query(`ALTER TABLE "chat_messages" ADD COLUMN "progress_at" bigint`);
    await queryRunner.query(
      `CREATE INDEX "idx_chat_messages_in_progress" ON "chat_messages" ("progress_at")
       WHERE "status" = 'in_progress'`,
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await withoutStatementTimeout(queryRunner);
    await queryRunner.query(`DROP INDEX "idx_chat_messages_in_progress"`);
    await queryRunner.query(`ALTER TABLE "chat_messages" DROP COLUMN "progress_at"`);
  }
}
