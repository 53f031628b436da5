import { MigrationInterface, QueryRunner } from 'typeorm';
import { withoutStatementTimeout } from './unbounded';

/**
 * v1.2 replies from a language model:
 *
 * - `chat_messages.progress_at` (epoch ms), the last time the process generating an `in_progress`
 *   reply stored its progress or said it is alive. Null for every other message. A partial index over
 *   the replies in progress lets a process find the ones whose owner died (no progress for a minute)
 *   without reading the table: there are few of them at once. A plain ADD COLUMN of a nullable
 *   column: instant on both databases, whatever the table's size.
 * - A trigger refusing a message whose parent is a reply in progress, whoever inserts it. In the
 *   database, not in the append's statement: on PostgreSQL a check there reads the statement's
 *   snapshot, taken before the append waited for the session's row lock, so a reply committed
 *   meanwhile (say, a double-clicked "regenerate") was invisible to it and 27 of 40 racing appends
 *   got an in-progress parent. A PL/pgSQL function is VOLATILE, so its query takes a fresh snapshot
 *   after that wait. SQLite runs one write at a time; its trigger only keeps both databases alike.
 *   Only a parent of the same session counts: another session's message is refused by the foreign
 *   key (400), whatever its state, so the answer tells nothing about other sessions.
 */
const BUSY_PARENT = 'the parent message is a reply in progress';
export const BUSY_PARENT_SQLSTATE = 'CS409';
export class ReplyProgress1795593600000 implements MigrationInterface {
  name = 'ReplyProgress1795593600000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await withoutStatementTimeout(queryRunner);
    await queryRunner.query(`ALTER TABLE "chat_messages" ADD COLUMN "progress_at" bigint`);
    await queryRunner.query(
      `CREATE INDEX "idx_chat_messages_in_progress" ON "chat_messages" ("progress_at")
       WHERE "status" = 'in_progress'`,
    );
    const busy = `NEW."parent_id" IS NOT NULL AND EXISTS (
      SELECT 1 FROM "chat_messages" p WHERE p."id" = NEW."parent_id"
        AND p."session_id" = NEW."session_id" AND p."status" = 'in_progress')`;
    if (queryRunner.connection.driver.options.type === 'postgres') {
      await queryRunner.query(
        `CREATE FUNCTION "chat_messages_refuse_busy_parent"() RETURNS trigger
         LANGUAGE plpgsql VOLATILE AS $$
         BEGIN
           IF ${busy} THEN
             RAISE EXCEPTION '${BUSY_PARENT}' USING ERRCODE = '${BUSY_PARENT_SQLSTATE}';
           END IF;
           RETURN NEW;
         END $$`,
      );
      await queryRunner.query(
        `CREATE TRIGGER "chat_messages_busy_parent" BEFORE INSERT ON "chat_messages"
         FOR EACH ROW EXECUTE FUNCTION "chat_messages_refuse_busy_parent"()`,
      );
      return;
    }
    await queryRunner.query(
      `CREATE TRIGGER "chat_messages_busy_parent" BEFORE INSERT ON "chat_messages"
       WHEN ${busy} BEGIN SELECT RAISE(ABORT, '${BUSY_PARENT}'); END`,
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await withoutStatementTimeout(queryRunner);
    if (queryRunner.connection.driver.options.type === 'postgres') {
      await queryRunner.query(`DROP TRIGGER "chat_messages_busy_parent" ON "chat_messages"`);
      await queryRunner.query(`DROP FUNCTION "chat_messages_refuse_busy_parent"()`);
    } else {
      await queryRunner.query(`DROP TRIGGER "chat_messages_busy_parent"`);
    }
    await queryRunner.query(`DROP INDEX "idx_chat_messages_in_progress"`);
    await queryRunner.query(`ALTER TABLE "chat_messages" DROP COLUMN "progress_at"`);
  }
}
