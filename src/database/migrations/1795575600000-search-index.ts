import { MigrationInterface, QueryRunner } from 'typeorm';
import { withoutStatementTimeout } from './unbounded';

/**
 * Full-text search over message contents and session names, indexing every existing row.
 *
 * This migration branches on the driver, because full-text search is not portable: each database
 * gets its own engine, and both are kept up to date by the database itself inside the writing
 * statement's transaction, so a message is searchable the moment its INSERT commits and gone the
 * moment its DELETE (or its session's cascading DELETE) commits, whoever writes the row.
 *
 * - SQLite: FTS5 tables with the `unicode61 remove_diacritics 2` tokenizer (case- and
 *   accent-insensitive), kept in sync by triggers. Messages use an external-content table over
 *   `chat_messages` (its INTEGER PRIMARY KEY is a stable rowid, so the text is not stored twice).
 *   Sessions have no stable integer rowid (VACUUM may renumber the rowids of a table with a text
 *   key), so names are mirrored into `session_names`, which has one, and indexed from there.
 * - PostgreSQL: a `tsvector` column with a GIN index on each table, filled by a trigger. Words are
 *   folded by `chat_search_vector()`: compatibility decomposition (NFKD), combining diacritics
 *   removed, and ASCII and common Unicode punctuation turned into spaces, so the `simple`
 *   configuration sees plain words (its parser would otherwise keep `e-mail@host.com` or
 *   `1.2.3` as single tokens). No extension is needed (`unaccent` needs privileges that managed
 *   databases often withhold, and lives in one schema per database). Lower-casing is the `simple`
 *   dictionary's, which follows the database's LC_CTYPE: use a UTF-8 locale.
 *
 * The folding rules are copied here rather than imported: a migration must not change after it
 * has run. `src/search/search-text.ts` folds search terms the same way.
 */
export class SearchIndex1795575600000 implements MigrationInterface {
  name = 'SearchIndex1795575600000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await withoutStatementTimeout(queryRunner);
    if (queryRunner.connection.driver.options.type === 'postgres')
      await this.upPostgres(queryRunner);
    else await this.upSqlite(queryRunner);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await withoutStatementTimeout(queryRunner);
    if (queryRunner.connection.driver.options.type === 'postgres') {
      for (const [table, column] of [
        ['chat_messages', 'search'],
        ['sessions', 'name_search'],
      ]) {
        await queryRunner.query(`DROP TRIGGER "${table}_${column}" ON "${table}"`);
        await queryRunner.query(`DROP FUNCTION "${table}_${column}_update"()`);
        await queryRunner.query(`DROP INDEX "idx_${table}_${column}"`);
        await queryRunner.query(`ALTER TABLE "${table}" DROP COLUMN "${column}"`);
      }
      await queryRunner.query(`DROP FUNCTION "chat_search_vector"(text)`);
      return;
    }
    for (const trigger of [
      'chat_messages_fts_insert',
      'chat_messages_fts_delete',
      'chat_messages_fts_update',
      'sessions_names_insert',
      'sessions_names_update',
      'sessions_names_delete',
      'session_names_fts_insert',
      'session_names_fts_delete',
    ]) {
      await queryRunner.query(`DROP TRIGGER "${trigger}"`);
    }
    await queryRunner.query(`DROP TABLE "session_names_fts"`);
    await queryRunner.query(`DROP TABLE "session_names"`);
    await queryRunner.query(`DROP TABLE "chat_messages_fts"`);
  }

  private async upSqlite(queryRunner: QueryRunner): Promise<void> {
    const tokenize = `tokenize = 'unicode61 remove_diacritics 2'`;
    await queryRunner.query(
      `CREATE VIRTUAL TABLE "chat_messages_fts" USING fts5("content", content = 'chat_messages', content_rowid = 'id', ${tokenize})`,
    );
    await queryRunner.query(
      `CREATE TRIGGER "chat_messages_fts_insert" AFTER INSERT ON "chat_messages" BEGIN
         INSERT INTO "chat_messages_fts" ("rowid", "content") VALUES (new."id", new."content");
       END`,
    );
    await queryRunner.query(
      `CREATE TRIGGER "chat_messages_fts_delete" AFTER DELETE ON "chat_messages" BEGIN
         INSERT INTO "chat_messages_fts" ("chat_messages_fts", "rowid", "content") VALUES ('delete', old."id", old."content");
       END`,
    );
    await queryRunner.query(
      `CREATE TRIGGER "chat_messages_fts_update" AFTER UPDATE OF "content" ON "chat_messages" BEGIN
         INSERT INTO "chat_messages_fts" ("chat_messages_fts", "rowid", "content") VALUES ('delete', old."id", old."content");
         INSERT INTO "chat_messages_fts" ("rowid", "content") VALUES (new."id", new."content");
       END`,
    );
    await queryRunner.query(
      `INSERT INTO "chat_messages_fts" ("chat_messages_fts") VALUES ('rebuild')`,
    );

    await queryRunner.query(
      `CREATE TABLE "session_names" (
         "id" INTEGER PRIMARY KEY,
         "session_id" varchar(36) NOT NULL UNIQUE,
         "name" text NOT NULL
       )`,
    );
    await queryRunner.query(
      `CREATE VIRTUAL TABLE "session_names_fts" USING fts5("name", content = 'session_names', content_rowid = 'id', ${tokenize})`,
    );
    await queryRunner.query(
      `CREATE TRIGGER "session_names_fts_insert" AFTER INSERT ON "session_names" BEGIN
         INSERT INTO "session_names_fts" ("rowid", "name") VALUES (new."id", new."name");
       END`,
    );
    await queryRunner.query(
      `CREATE TRIGGER "session_names_fts_delete" AFTER DELETE ON "session_names" BEGIN
         INSERT INTO "session_names_fts" ("session_names_fts", "rowid", "name") VALUES ('delete', old."id", old."name");
       END`,
    );
    await queryRunner.query(
      `CREATE TRIGGER "sessions_names_insert" AFTER INSERT ON "sessions" WHEN new."name" IS NOT NULL BEGIN
         INSERT INTO "session_names" ("session_id", "name") VALUES (new."id", new."name");
       END`,
    );
    // PATCH names every column in its SET list; only a real change of name touches the index.
    await queryRunner.query(
      `CREATE TRIGGER "sessions_names_update" AFTER UPDATE OF "name" ON "sessions" WHEN old."name" IS NOT new."name" BEGIN
         DELETE FROM "session_names" WHERE "session_id" = old."id";
         INSERT INTO "session_names" ("session_id", "name") SELECT new."id", new."name" WHERE new."name" IS NOT NULL;
       END`,
    );
    await queryRunner.query(
      `CREATE TRIGGER "sessions_names_delete" AFTER DELETE ON "sessions" BEGIN
         DELETE FROM "session_names" WHERE "session_id" = old."id";
       END`,
    );
    await queryRunner.query(
      `INSERT INTO "session_names" ("session_id", "name") SELECT "id", "name" FROM "sessions" WHERE "name" IS NOT NULL`,
    );
  }

  private async upPostgres(queryRunner: QueryRunner): Promise<void> {
    const diacritics = String.raw`[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]`;
    const punctuation = String.raw`[\u0001-\u002f\u003a-\u0040\u005b-\u0060\u007b-\u00bf\u00d7\u00f7\u2000-\u206f\u2e00-\u2e7f\u3000-\u303f]`;
    await queryRunner.query(
      `CREATE FUNCTION "chat_search_vector"(input text) RETURNS tsvector
       LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
       AS $$ SELECT to_tsvector('simple'::regconfig,
         regexp_replace(regexp_replace(normalize(input, NFKD), '${diacritics}', '', 'g'), '${punctuation}', ' ', 'g')) $$`,
    );
    // Plain columns filled by triggers rather than generated columns: TypeORM's schema reader
    // (getTable, used by addColumn & co. in later migrations) cannot describe generated columns it
    // did not create itself. The trigger pins the search_path it was created with, so any client
    // writing the tables finds the function.
    for (const [table, column, source] of [
      ['chat_messages', 'search', 'NEW."content"'],
      ['sessions', 'name_search', `coalesce(NEW."name", '')`],
    ]) {
      const watched = table === 'sessions' ? 'name' : 'content';
      await queryRunner.query(`ALTER TABLE "${table}" ADD COLUMN "${column}" tsvector`);
      await queryRunner.query(
        `CREATE FUNCTION "${table}_${column}_update"() RETURNS trigger
         LANGUAGE plpgsql SET search_path FROM CURRENT
         AS $$ BEGIN NEW."${column}" := "chat_search_vector"(${source}); RETURN NEW; END $$`,
      );
      await queryRunner.query(
        `CREATE TRIGGER "${table}_${column}" BEFORE INSERT OR UPDATE OF "${watched}" ON "${table}"
         FOR EACH ROW EXECUTE FUNCTION "${table}_${column}_update"()`,
      );
      // The initial indexing of the rows that exist already.
      await queryRunner.query(
        `UPDATE "${table}" SET "${column}" = "chat_search_vector"(${source.replace('NEW.', '')})`,
      );
      await queryRunner.query(
        `CREATE INDEX "idx_${table}_${column}" ON "${table}" USING GIN ("${column}")`,
      );
    }
  }
}
