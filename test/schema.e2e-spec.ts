import { ChatMessage } from '../src/messages/chat-message.entity';
import { entities } from '../src/database/entities';
import { SessionCount } from '../src/sessions/session-count.entity';
import { Session } from '../src/sessions/session.entity';
import { onPostgres } from './helpers/database-target';
import { createTestApp, type TestApp } from './helpers/test-app';

/**
 * What the entities do not describe, by design: PostgreSQL's full-text search vectors, kept by the
 * search migration's triggers. They exist on PostgreSQL only, and TypeORM has no column of one
 * database alone, so its schema builder would drop them. (SQLite's search tables are not entity
 * tables, so the builder never looks at them.)
 */
const UNDESCRIBED = onPostgres
  ? [
      /^DROP INDEX "[^"]+"\."idx_sessions_name_search"$/,
      /^DROP INDEX "[^"]+"\."idx_chat_messages_search"$/,
      /^ALTER TABLE "sessions" DROP COLUMN "name_search"$/,
      /^ALTER TABLE "chat_messages" DROP COLUMN "search"$/,
    ]
  : [];

describe('Entities and migrations (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp();
  });

  afterAll(async () => {
    await t.close();
  });

  it('agree: after the migrations, TypeORM would change nothing in the schema', async () => {
    const { upQueries } = await t.db.dataSource.driver.createSchemaBuilder().log();
    const queries = upQueries.map((q) => q.query.trim());
    expect(queries.filter((query) => !UNDESCRIBED.some((known) => known.test(query)))).toEqual([]);
    expect(queries).toHaveLength(UNDESCRIBED.length);
  });

  it('are all registered by the app, as listed for the CLIs', () => {
    const registered = t.db.dataSource.entityMetadatas.map((m) => m.target);
    expect(new Set(registered)).toEqual(new Set(entities));
  });

  it('read BIGINT columns back as numbers on both databases', async () => {
    const id = '44444444-4444-4444-8444-444444444444';
    await t.db.write(async (m) => {
      await m.insert(Session, { id, owner_id: 'local', created_at: 1000, last_updated_at: 2000 });
      await m.insert(SessionCount, { owner_id: 'local', archived: false, pinned: false, n: 1 });
      await m.insert(ChatMessage, { session_id: id, timestamp: 2000, role: 'user', content: 'x' });
    });
    const [session, count, message] = await t.db.read((m) =>
      Promise.all([
        m.findOneByOrFail(Session, { id }),
        m.findOneByOrFail(SessionCount, { owner_id: 'local' }),
        m.findOneByOrFail(ChatMessage, { session_id: id }),
      ]),
    );
    expect([session.created_at, session.last_updated_at, count.n]).toEqual([1000, 2000, 1]);
    expect(message).toEqual({
      id: expect.any(Number),
      session_id: id,
      timestamp: 2000,
      role: 'user',
      content: 'x',
      metadata: null,
      parent_id: null,
      status: 'complete',
      generation: null,
    });
  });
});
