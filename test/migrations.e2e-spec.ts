import request from 'supertest';
import { DataSource } from 'typeorm';
import { validateEnv } from '../src/config/env.validation';
import { buildDataSourceOptions } from '../src/database/database.options';
import { migrations } from '../src/database/migrations';
import { freshDatabaseUrl } from './helpers/database-target';
import { invariantViolations } from './helpers/invariants';
import { createTestApp } from './helpers/test-app';

/** A database built by an older migration set (the first `count` migrations). */
async function databaseAtMigration(url: string, count: number): Promise<DataSource> {
  const options = buildDataSourceOptions(validateEnv({ DATABASE_URL: url }));
  const dataSource = new DataSource({ ...options, migrations: migrations.slice(0, count) });
  await dataSource.initialize();
  await dataSource.runMigrations();
  return dataSource;
}

/** Every table and column, as `table.column`, sorted. */
async function schemaOf(dataSource: DataSource): Promise<string[]> {
  const runner = dataSource.createQueryRunner();
  try {
    const names = [
      'sessions',
      'chat_messages',
      'settings',
      'api_keys',
      'idempotency_keys',
      'session_counts',
    ];
    const tables = await runner.getTables(names);
    return tables.flatMap((t) => t.columns.map((c) => `${t.name}.${c.name}`)).sort();
  } finally {
    await runner.release();
  }
}

describe('Migrations (e2e)', () => {
  let url: string;
  beforeEach(async () => {
    url = await freshDatabaseUrl('migrations');
  });

  it('upgrades a v1 database in place without losing data', async () => {
    const v1 = await databaseAtMigration(url, 1);
    await v1.query(
      `INSERT INTO "sessions" ("id", "name", "created_at", "last_updated_at", "llm_model_name", "rag_document_ids", "message_count")
       VALUES ('11111111-1111-4111-8111-111111111111', 'old', 1000, 3000, 'm', '["d1"]', 2)`,
    );
    await v1.query(
      `INSERT INTO "chat_messages" ("session_id", "timestamp", "role", "content", "metadata")
       VALUES ('11111111-1111-4111-8111-111111111111', 2000, 'user', 'hello', NULL),
              ('11111111-1111-4111-8111-111111111111', 3000, 'assistant', 'hi', '{"k":1}')`,
    );
    await v1.destroy();

    const t = await createTestApp({ DATABASE_URL: url });
    try {
      const id = '11111111-1111-4111-8111-111111111111';
      const session = await request(t.http).get(`/api/v1/sessions/${id}`);
      expect(session.body).toEqual({
        id,
        name: 'old',
        created_at: '1970-01-01T00:00:01.000Z',
        last_updated_at: '1970-01-01T00:00:03.000Z',
        llm_model_name: 'm',
        rag_document_ids: ['d1'],
        metadata_tags: null,
        message_count: 2,
        archived: false,
        pinned: false,
      });
      const history = await request(t.http).get(`/api/v1/sessions/${id}/messages`);
      expect(
        history.body.map((m: { content: string; metadata: unknown }) => [m.content, m.metadata]),
      ).toEqual([
        ['hello', null],
        ['hi', { k: 1 }],
      ]);
      // The new columns work on the upgraded rows.
      const patched = await request(t.http)
        .patch(`/api/v1/sessions/${id}`)
        .send({ archived: true, metadata_tags: { a: 'b' } });
      expect(patched.body).toMatchObject({
        archived: true,
        metadata_tags: { a: 'b' },
        last_updated_at: '1970-01-01T00:00:03.000Z',
      });
      expect(await invariantViolations(t.db)).toEqual([]);
    } finally {
      await t.close();
    }
  });

  it('reverts the newest migration and applies it again, keeping the data', async () => {
    const db = await databaseAtMigration(url, migrations.length);
    await db.query(
      `INSERT INTO "sessions" ("id", "created_at", "last_updated_at", "message_count") VALUES ('s', 1, 1, 0)`,
    );
    const before = await schemaOf(db);
    await db.undoLastMigration();
    expect(await schemaOf(db)).not.toEqual(before);
    await db.runMigrations();
    expect(await schemaOf(db)).toEqual(before);
    const rows: { id: string; message_count: unknown }[] = await db.query(
      `SELECT "id", "message_count" FROM "sessions"`,
    );
    expect(rows.map((r) => [r.id, Number(r.message_count)])).toEqual([['s', 0]]);
    await db.destroy();
  });

  it('records every migration, so a restart runs none again', async () => {
    const db = await databaseAtMigration(url, migrations.length);
    expect(await db.showMigrations()).toBe(false);
    const executed: { name: string }[] = await db.query(
      `SELECT "name" FROM "migrations" ORDER BY "id"`,
    );
    expect(executed.map((m) => m.name)).toEqual(migrations.map((m) => m.name));
    await db.destroy();
  });
});
