import request from 'supertest';
import { DataSource } from 'typeorm';
import { validateEnv } from '../src/config/env.validation';
import { buildDataSourceOptions } from '../src/database/database.options';
import { migrations } from '../src/database/migrations';
import { freshDatabaseUrl, onPostgres } from './helpers/database-target';
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

async function columnsOf(dataSource: DataSource, table: string): Promise<string[]> {
  const runner = dataSource.createQueryRunner();
  try {
    return ((await runner.getTable(table))?.columns ?? []).map((c) => c.name);
  } finally {
    await runner.release();
  }
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
        current_message_id: expect.any(Number),
        forked_from: null,
        expires_at: null,
      });
      const history = await request(t.http).get(`/api/v1/sessions/${id}/messages`);
      expect(
        history.body.map((m: { content: string; metadata: unknown }) => [m.content, m.metadata]),
      ).toEqual([
        ['hello', null],
        ['hi', { k: 1 }],
      ]);
      expect(session.body.current_message_id).toBe(history.body[1].id);
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

  it('reverts every migration after the first and applies them again, keeping the v1 data', async () => {
    const db = await databaseAtMigration(url, migrations.length);
    await db.query(
      `INSERT INTO "sessions" ("id", "created_at", "last_updated_at", "message_count") VALUES ('s', 1, 1, 0)`,
    );
    const before = await schemaOf(db);
    for (let i = 1; i < migrations.length; i++) await db.undoLastMigration();
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

  describe('the conversation trees migration', () => {
    const upToTrees = migrations.findIndex((m) => m.name === 'ConversationTrees1795586400000') + 1;
    const [chained, empty, single] = [
      '55555555-5555-4555-8555-555555555555',
      '66666666-6666-4666-8666-666666666666',
      '77777777-7777-4777-8777-777777777777',
    ];

    /** A v1.1 database with messages whose ids are not in time order, and a deleted newest id. */
    async function seedV11(): Promise<void> {
      const db = await databaseAtMigration(url, upToTrees - 1);
      await db.query(
        `INSERT INTO "sessions" ("id", "name", "created_at", "last_updated_at", "message_count") VALUES
           ('${chained}', 'chained', 500, 3000, 4), ('${empty}', 'empty', 600, 600, 0),
           ('${single}', 'single', 700, 5000, 1)`,
      );
      await db.query(
        `INSERT INTO "session_counts" ("owner_id", "archived", "pinned", "n") VALUES ('local', false, false, 3)`,
      );
      // Ids 1–6; 6 is deleted below, so the next id must be 7, not 6.
      await db.query(
        `INSERT INTO "chat_messages" ("session_id", "timestamp", "role", "content") VALUES
           ('${chained}', 3000, 'user', 'third, by time'),
           ('${chained}', 1000, 'user', 'first, by time'),
           ('${chained}', 2000, 'assistant', 'second, by time'),
           ('${single}', 5000, 'user', 'alone'),
           ('${chained}', 3000, 'assistant', 'fourth: same time, later id'),
           ('${single}', 5000, 'user', 'deleted')`,
      );
      await db.query(`DELETE FROM "chat_messages" WHERE "content" = 'deleted'`);
      await db.destroy();
    }

    type SearchHit = { message: { content: string } | null };

    const contents = (messages: { content: string; parent_id: number | null; id: number }[]) => {
      const byId = new Map(messages.map((m) => [m.id, m.content]));
      return messages.map((m) => [m.content, m.parent_id === null ? null : byId.get(m.parent_id)]);
    };

    it("chains each session's messages in (timestamp, id) order and sets its current message", async () => {
      await seedV11();
      const t = await createTestApp({ DATABASE_URL: url });
      try {
        const history = await request(t.http).get(`/api/v1/sessions/${chained}/messages`);
        expect(contents(history.body)).toEqual([
          ['first, by time', null],
          ['second, by time', 'first, by time'],
          ['third, by time', 'second, by time'],
          ['fourth: same time, later id', 'third, by time'],
        ]);
        expect(history.body.map((m: { status: string }) => m.status)).toEqual(
          Array(4).fill('complete'),
        );
        const session = async (id: string) =>
          (await request(t.http).get(`/api/v1/sessions/${id}`)).body as Record<string, unknown>;
        expect(await session(chained)).toMatchObject({
          current_message_id: history.body[3].id,
          forked_from: null,
          expires_at: null,
          message_count: 4,
        });
        expect(await session(empty)).toMatchObject({ current_message_id: null, message_count: 0 });
        const [alone] = (await request(t.http).get(`/api/v1/sessions/${single}/messages`)).body;
        expect(alone).toMatchObject({ id: 4, parent_id: null, generation: null });
        expect((await session(single)).current_message_id).toBe(4);

        // Ids are never issued twice (SQLite's AUTOINCREMENT high-water mark survived the rebuild).
        const next = await request(t.http)
          .post(`/api/v1/sessions/${single}/messages`)
          .send({ content: 'after the upgrade' });
        expect(next.body).toMatchObject({ id: 7, parent_id: 4 });
        // The search index still covers the old messages, and follows new ones and deletes.
        const hits = async (q: string) =>
          ((await request(t.http).get('/api/v1/search').query({ q })).body as SearchHit[]).map(
            (hit) => hit.message?.content ?? null,
          );
        await expect(hits('alone')).resolves.toEqual(['alone']);
        await expect(hits('upgrade')).resolves.toEqual(['after the upgrade']);
        await request(t.http).delete(`/api/v1/sessions/${single}/messages/4`).expect(204);
        await expect(hits('alone')).resolves.toEqual([]);
        expect((await session(single)).current_message_id).toBe(7);
        expect(
          (await request(t.http).get(`/api/v1/sessions/${single}/messages/7`)).body.parent_id,
        ).toBeNull();
        expect(await invariantViolations(t.db, { messagesDeleted: true })).toEqual([]);
      } finally {
        await t.close();
      }
    });

    // PostgreSQL only: SQLite has no statement timeout.
    (onPostgres ? it : it.skip)(
      'upgrades a store whose statements take longer than DB_STATEMENT_TIMEOUT_MS',
      async () => {
        const db = await databaseAtMigration(url, upToTrees - 1);
        const n = 100_000;
        await db.query(
          `INSERT INTO "sessions" ("id", "name", "created_at", "last_updated_at", "message_count")
           VALUES ('${chained}', 'long', 0, ${n}, ${n})`,
        );
        await db.query(
          `INSERT INTO "session_counts" ("owner_id", "archived", "pinned", "n") VALUES ('local', false, false, 1)`,
        );
        await db.query(
          `INSERT INTO "chat_messages" ("session_id", "timestamp", "role", "content")
           SELECT '${chained}', g, 'user', 'message ' || g FROM generate_series(1, ${n}) g`,
        );
        await db.destroy();
        // Start-up runs the migration; chaining 100,000 messages takes far more than 50 ms.
        const t = await createTestApp({ DATABASE_URL: url, DB_STATEMENT_TIMEOUT_MS: '50' });
        const session = await request(t.http).get(`/api/v1/sessions/${chained}`);
        await t.close();
        const after = await databaseAtMigration(url, upToTrees);
        try {
          const [chain] = await after.query(
            `SELECT COUNT(*) FILTER (WHERE "parent_id" IS NULL) AS "roots", MAX("id") AS "newest"
             FROM "chat_messages"`,
          );
          expect({ roots: Number(chain.roots), current: session.body.current_message_id }).toEqual({
            roots: 1,
            current: Number(chain.newest),
          });
        } finally {
          await after.destroy();
        }
      },
      60_000,
    );

    it('reverts to the v1.1 tables with their data and search index, and applies again', async () => {
      await seedV11();
      const db = await databaseAtMigration(url, upToTrees);
      const before = await schemaOf(db);
      await db.undoLastMigration();
      expect(await columnsOf(db, 'chat_messages')).toEqual([
        'id',
        'session_id',
        'timestamp',
        'role',
        'content',
        'metadata',
        ...(onPostgres ? ['search'] : []),
      ]);
      await db.runMigrations();
      expect(await schemaOf(db)).toEqual(before);
      await db.destroy();
      const t = await createTestApp({ DATABASE_URL: url });
      try {
        const res = await request(t.http).get('/api/v1/search').query({ q: 'alone' });
        expect(res.body).toHaveLength(1);
        expect(await invariantViolations(t.db, { messagesDeleted: true })).toEqual([]);
      } finally {
        await t.close();
      }
    });
  });

  describe('the search index migration', () => {
    const upToSearch = migrations.findIndex((m) => m.name === 'SearchIndex1795575600000') + 1;
    const id = '22222222-2222-4222-8222-222222222222';

    async function insertConversation(db: DataSource, name: string, content: string) {
      await db.query(
        `INSERT INTO "sessions" ("id", "name", "created_at", "last_updated_at", "message_count") VALUES ('${id}', '${name}', 1000, 2000, 1)`,
      );
      await db.query(
        `INSERT INTO "chat_messages" ("session_id", "timestamp", "role", "content") VALUES ('${id}', 2000, 'user', '${content}')`,
      );
    }

    async function searchHits(q: string): Promise<[string | null, string][]> {
      const t = await createTestApp({ DATABASE_URL: url });
      try {
        const res = await request(t.http).get('/api/v1/search').query({ q });
        expect(res.status).toBe(200);
        const hits = res.body as { message: { content: string } | null; snippet: string }[];
        return hits.map((hit) => [hit.message?.content ?? null, hit.snippet]);
      } finally {
        await t.close();
      }
    }

    async function searchObjects(db: DataSource): Promise<string[]> {
      if (onPostgres) {
        return [
          ...(await columnsOf(db, 'chat_messages')),
          ...(await columnsOf(db, 'sessions')),
        ].filter((column) => column.includes('search'));
      }
      const rows: { name: string }[] = await db.query(
        `SELECT "name" FROM "sqlite_master" WHERE "name" LIKE '%fts%' OR "name" LIKE '%names%' ORDER BY "name"`,
      );
      return rows.map((r) => r.name);
    }

    it('indexes the names and messages that exist before it runs', async () => {
      const old = await databaseAtMigration(url, upToSearch - 1);
      await insertConversation(old, 'Café planning', 'Où est le café ?');
      await old.destroy();
      await expect(searchHits('CAFE')).resolves.toEqual([
        [null, '[Café] planning'],
        ['Où est le café ?', 'Où est le [café] ?'],
      ]);
    });

    it('reverts cleanly, and applying it again indexes what was written meanwhile', async () => {
      const db = await databaseAtMigration(url, upToSearch);
      expect(await searchObjects(db)).not.toEqual([]);
      await db.undoLastMigration();
      expect(await searchObjects(db)).toEqual([]);
      await insertConversation(db, 'Written while unindexed', 'naïve question');
      await db.runMigrations();
      await db.destroy();
      await expect(searchHits('naive')).resolves.toEqual([['naïve question', '[naïve] question']]);
      await expect(searchHits('unindexed')).resolves.toEqual([[null, 'Written while [unindexed]']]);
    });
  });

  describe('the search index cap migration', () => {
    const id = '33333333-3333-4333-8333-333333333333';
    // Distinct 100-character runs of squared katakana: over 1 MiB of lexemes once expanded.
    let seed = 11;
    let content = '';
    while (content.length + 101 <= 100_000) {
      for (let i = 0; i < 100; i++) {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        content += String.fromCharCode(0x3300 + (seed % 0x58));
      }
      content += ' ';
    }

    async function append(db: DataSource): Promise<void> {
      await db.query(
        db.driver.options.type === 'postgres'
          ? `INSERT INTO "chat_messages" ("session_id", "timestamp", "role", "content") VALUES ($1, 2000, 'user', $2)`
          : `INSERT INTO "chat_messages" ("session_id", "timestamp", "role", "content") VALUES (?, 2000, 'user', ?)`,
        [id, content],
      );
    }

    it('lets PostgreSQL index any text; reverting brings back the limit, reapplying lifts it', async () => {
      const upToCap = migrations.findIndex((m) => m.name === 'SearchIndexCap1795582800000') + 1;
      const db = await databaseAtMigration(url, upToCap);
      await db.query(
        `INSERT INTO "sessions" ("id", "created_at", "last_updated_at", "message_count") VALUES ('${id}', 1, 1, 0)`,
      );
      await append(db);
      await db.undoLastMigration();
      if (onPostgres) {
        await expect(append(db)).rejects.toThrow(/string is too long for tsvector/);
      } else {
        await append(db);
      }
      await db.runMigrations();
      await append(db);
      await db.destroy();
    });
  });
});
