import { MigrationInterface, QueryRunner } from 'typeorm';
import { withoutStatementTimeout } from './unbounded';

const STATUSES = `'complete', 'in_progress', 'cancelled', 'failed'`;
const STATUS_CHECK = `CONSTRAINT "chk_chat_messages_status" CHECK ("status" IN (${STATUSES}))`;
/** A message's parent is a message of the same session: the database itself refuses anything else. */
const PARENT_FK = `CONSTRAINT "fk_chat_messages_parent" FOREIGN KEY ("session_id", "parent_id") REFERENCES "chat_messages" ("session_id", "id") ON DELETE NO ACTION ON UPDATE NO ACTION`;
const ROLE_CHECK = `CONSTRAINT "chk_chat_messages_role" CHECK ("role" IN ('user', 'assistant', 'system'))`;

/** Each message's parent: the message before it in its session's (timestamp, id) order. */
const PREVIOUS = `LAG("id") OVER (PARTITION BY "session_id" ORDER BY "timestamp", "id")`;

/** The search migration's triggers on `chat_messages` (SQLite), copied: a migration must not change. */
const SQLITE_FTS_TRIGGERS = [
  `CREATE TRIGGER "chat_messages_fts_insert" AFTER INSERT ON "chat_messages" BEGIN
     INSERT INTO "chat_messages_fts" ("rowid", "content") VALUES (new."id", new."content");
   END`,
  `CREATE TRIGGER "chat_messages_fts_delete" AFTER DELETE ON "chat_messages" BEGIN
     INSERT INTO "chat_messages_fts" ("chat_messages_fts", "rowid", "content") VALUES ('delete', old."id", old."content");
   END`,
  `CREATE TRIGGER "chat_messages_fts_update" AFTER UPDATE OF "content" ON "chat_messages" BEGIN
     INSERT INTO "chat_messages_fts" ("chat_messages_fts", "rowid", "content") VALUES ('delete', old."id", old."content");
     INSERT INTO "chat_messages_fts" ("rowid", "content") VALUES (new."id", new."content");
   END`,
];

const V11_COLUMNS = `"id", "session_id", "timestamp", "role", "content", "metadata"`;

/**
 * v1.2 conversation trees (and the columns generated replies and retention will use):
 *
 * - `chat_messages.parent_id`: the message this one follows, null for a root. A composite foreign
 *   key (`session_id`, `parent_id`) → (`session_id`, `id`), over a unique index on those two, makes
 *   the database refuse a parent of another session, whoever writes. No ON DELETE action: deleting a
 *   message first moves its children up to its parent (MessagesService.remove); deleting a session
 *   removes all its messages in one statement, which leaves no child behind.
 * - `chat_messages.status` (`complete` for every message stored so far) and `generation` (JSON).
 * - `sessions.current_message_id`, `forked_from` (JSON) and `expires_at` (epoch ms, indexed for
 *   the sweep that will delete expired sessions).
 *
 * The messages that exist are chained in (timestamp, id) order per session, and each session's
 * current message is its newest: set-based, by a window function both databases have.
 *
 * SQLite cannot add a foreign key to a table, so `chat_messages` is rebuilt (SQLite's documented
 * procedure: new table, copy, drop, in one transaction). The copy keeps every id, and the
 * AUTOINCREMENT high-water mark is carried over, so no id is ever issued twice. The full-text index
 * (`chat_messages_fts`, external content keyed by id) stays valid as ids and contents are unchanged;
 * its triggers go with the old table and are created again on the new one, as are the indexes.
 */
export class ConversationTrees1795586400000 implements MigrationInterface {
  name = 'ConversationTrees1795586400000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await withoutStatementTimeout(queryRunner);
    const postgres = queryRunner.connection.driver.options.type === 'postgres';
    if (postgres) await this.upPostgresMessages(queryRunner);
    else await this.upSqliteMessages(queryRunner);

    const id = postgres ? 'bigint' : 'integer';
    await queryRunner.query(`ALTER TABLE "sessions" ADD COLUMN "current_message_id" ${id}`);
    await queryRunner.query(`ALTER TABLE "sessions" ADD COLUMN "forked_from" text`);
    await queryRunner.query(`ALTER TABLE "sessions" ADD COLUMN "expires_at" bigint`);
    await queryRunner.query(
      `UPDATE "sessions" SET "current_message_id" = (
         SELECT m."id" FROM "chat_messages" m WHERE m."session_id" = "sessions"."id"
         ORDER BY m."timestamp" DESC, m."id" DESC LIMIT 1)
       WHERE EXISTS (SELECT 1 FROM "chat_messages" m WHERE m."session_id" = "sessions"."id")`,
    );
    await queryRunner.query(`CREATE INDEX "idx_sessions_expires_at" ON "sessions" ("expires_at")`);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await withoutStatementTimeout(queryRunner);
    const postgres = queryRunner.connection.driver.options.type === 'postgres';
    await queryRunner.query(`DROP INDEX "idx_sessions_expires_at"`);
    // Plain DROP COLUMN (SQLite 3.35+), not TypeORM's dropColumn, which rebuilds the table on
    // SQLite and would lose the search migration's triggers on `sessions`.
    for (const column of ['expires_at', 'forked_from', 'current_message_id']) {
      await queryRunner.query(`ALTER TABLE "sessions" DROP COLUMN "${column}"`);
    }
    if (postgres) {
      await queryRunner.query(
        `ALTER TABLE "chat_messages" DROP CONSTRAINT "fk_chat_messages_parent"`,
      );
      await queryRunner.query(`DROP INDEX "idx_chat_messages_session_parent"`);
      await queryRunner.query(`DROP INDEX "uq_chat_messages_session_id"`);
      await queryRunner.query(
        `ALTER TABLE "chat_messages" DROP CONSTRAINT "chk_chat_messages_status"`,
      );
      for (const column of ['generation', 'status', 'parent_id']) {
        await queryRunner.query(`ALTER TABLE "chat_messages" DROP COLUMN "${column}"`);
      }
      return;
    }
    await this.rebuildSqlite(queryRunner, {
      columns: [],
      constraints: [],
      copy: V11_COLUMNS,
      from: V11_COLUMNS,
      indexes: [],
    });
  }

  private async upPostgresMessages(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "chat_messages" ADD COLUMN "parent_id" bigint`);
    await queryRunner.query(
      `ALTER TABLE "chat_messages" ADD COLUMN "status" varchar(16) NOT NULL DEFAULT 'complete'`,
    );
    await queryRunner.query(`ALTER TABLE "chat_messages" ADD COLUMN "generation" text`);
    await queryRunner.query(`ALTER TABLE "chat_messages" ADD ${STATUS_CHECK}`);
    // Before the new indexes exist, so the rewritten rows need no entry in them yet.
    await queryRunner.query(
      `UPDATE "chat_messages" SET "parent_id" = c."previous"
       FROM (SELECT "id", ${PREVIOUS} AS "previous" FROM "chat_messages") c
       WHERE "chat_messages"."id" = c."id" AND c."previous" IS NOT NULL`,
    );
    await queryRunner.query(
      `CREATE UNIQUE INDEX "uq_chat_messages_session_id" ON "chat_messages" ("session_id", "id")`,
    );
    await queryRunner.query(
      `CREATE INDEX "idx_chat_messages_session_parent" ON "chat_messages" ("session_id", "parent_id", "timestamp", "id")`,
    );
    await queryRunner.query(`ALTER TABLE "chat_messages" ADD ${PARENT_FK}`);
  }

  private async upSqliteMessages(queryRunner: QueryRunner): Promise<void> {
    await this.rebuildSqlite(queryRunner, {
      columns: [
        `"parent_id" integer`,
        `"status" varchar(16) NOT NULL DEFAULT 'complete'`,
        `"generation" text`,
      ],
      constraints: [STATUS_CHECK, PARENT_FK],
      copy: `${V11_COLUMNS}, "parent_id"`,
      from: `${V11_COLUMNS}, ${PREVIOUS}`,
      indexes: [
        `CREATE INDEX "idx_chat_messages_session_parent" ON "chat_messages" ("session_id", "parent_id", "timestamp", "id")`,
      ],
    });
  }

  /**
   * Rebuilds SQLite's `chat_messages` as the v1.1 table plus `columns` and `constraints`, copying
   * the `copy` columns from the old rows' `from` expressions (which may use window functions).
   * The unique (session_id, id) index, which the parent foreign key needs, exists exactly when that
   * key does.
   */
  private async rebuildSqlite(
    queryRunner: QueryRunner,
    shape: {
      columns: string[];
      constraints: string[];
      copy: string;
      from: string;
      indexes: string[];
    },
  ): Promise<void> {
    const table = await queryRunner.getTable('chat_messages');
    const sessionFk = table?.foreignKeys.find((fk) => fk.referencedTableName === 'sessions');
    if (!sessionFk?.name) throw new Error('chat_messages has no foreign key to sessions');
    const withParent = shape.constraints.includes(PARENT_FK);

    for (const trigger of ['insert', 'delete', 'update']) {
      await queryRunner.query(`DROP TRIGGER "chat_messages_fts_${trigger}"`);
    }
    for (const index of table!.indices) await queryRunner.query(`DROP INDEX "${index.name}"`);
    await queryRunner.query(`ALTER TABLE "chat_messages" RENAME TO "chat_messages_old"`);
    // One line, as TypeORM writes it: its schema reader parses the constraints out of this text.
    const definition = [
      `"id" integer PRIMARY KEY AUTOINCREMENT NOT NULL`,
      `"session_id" varchar(36) NOT NULL`,
      `"timestamp" bigint NOT NULL`,
      `"role" varchar(16) NOT NULL`,
      `"content" text NOT NULL`,
      `"metadata" text`,
      ...shape.columns,
      ROLE_CHECK,
      ...shape.constraints.filter((c) => c !== PARENT_FK),
      `CONSTRAINT "${sessionFk.name}" FOREIGN KEY ("session_id") REFERENCES "sessions" ("id") ON DELETE CASCADE ON UPDATE NO ACTION`,
      ...(withParent ? [PARENT_FK] : []),
    ].join(', ');
    await queryRunner.query(`CREATE TABLE "chat_messages" (${definition})`);
    if (withParent) {
      await queryRunner.query(
        `CREATE UNIQUE INDEX "uq_chat_messages_session_id" ON "chat_messages" ("session_id", "id")`,
      );
    }
    // One statement: the foreign keys are checked at its end, when every parent is in.
    await queryRunner.query(
      `INSERT INTO "chat_messages" (${shape.copy}) SELECT ${shape.from} FROM "chat_messages_old"`,
    );
    await queryRunner.query(`DELETE FROM "sqlite_sequence" WHERE "name" = 'chat_messages'`);
    await queryRunner.query(
      `INSERT INTO "sqlite_sequence" ("name", "seq")
       SELECT 'chat_messages', "seq" FROM "sqlite_sequence" WHERE "name" = 'chat_messages_old'`,
    );
    await queryRunner.query(`DROP TABLE "chat_messages_old"`);
    await queryRunner.query(
      `CREATE INDEX "idx_chat_messages_session_order" ON "chat_messages" ("session_id", "timestamp", "id")`,
    );
    for (const index of shape.indexes) await queryRunner.query(index);
    for (const trigger of SQLITE_FTS_TRIGGERS) await queryRunner.query(trigger);
  }
}
