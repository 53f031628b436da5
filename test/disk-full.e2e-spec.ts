import request from 'supertest';
import { CONTENT_MAX_LENGTH } from '../src/messages/dto/chat-message.dto';
import { freshDatabaseUrl, onPostgres } from './helpers/database-target';
import { countRows, createTestApp, TestApp } from './helpers/test-app';

const HUGE = 'x'.repeat(CONTENT_MAX_LENGTH);

/**
 * Makes the database refuse to store a message as big as HUGE, the way a full disk does, until
 * `free` is called. SQLite: the main connection may grow by 20 pages only (80 KiB), room for small
 * writes but not for HUGE. PostgreSQL cannot be capped per connection, so a trigger raises the
 * error a full disk raises (disk_full, SQLSTATE 53100) for such a message.
 */
async function fillDisk(t: TestApp): Promise<{ free(): Promise<void> }> {
  if (!onPostgres) {
    const [{ page_count }]: { page_count: number }[] = await t.db.read((m) =>
      m.query('PRAGMA page_count'),
    );
    await t.db.dataSource.query(`PRAGMA max_page_count = ${page_count + 20}`);
    return { free: () => t.db.dataSource.query('PRAGMA max_page_count = 1073741823') };
  }
  await t.db.dataSource.query(`
    CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF length(NEW.content) >= ${CONTENT_MAX_LENGTH} THEN
        RAISE EXCEPTION 'could not extend file "base/16384/24576": No space left on device'
          USING ERRCODE = 'disk_full';
      END IF;
      RETURN NEW;
    END $$`);
  await t.db.dataSource.query(
    'CREATE TRIGGER disk_full BEFORE INSERT ON chat_messages FOR EACH ROW EXECUTE FUNCTION disk_full()',
  );
  return {
    free: async () => {
      await t.db.dataSource.query('DROP TRIGGER disk_full ON chat_messages');
      await t.db.dataSource.query('DROP FUNCTION disk_full()');
    },
  };
}

describe('A full disk (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    // A file, not :memory:, so the cap applies to real pages, as on a production disk.
    t = await createTestApp({ DATABASE_URL: await freshDatabaseUrl('disk-full') });
  });
  afterAll(() => t.close());

  it('fails only the write that does not fit, with a 507 problem; the others are stored; the service recovers', async () => {
    const sessionId = (await request(t.http).post('/api/v1/sessions').send({})).body.id as string;
    const messages = `/api/v1/sessions/${sessionId}/messages`;
    const disk = await fillDisk(t);

    const small = Array.from({ length: 8 }, (_, i) => `small ${i}`);
    const [huge, ...others] = await Promise.all([
      request(t.http).post(messages).send({ content: HUGE }),
      ...small.map((content) => request(t.http).post(messages).send({ content })),
      request(t.http).post('/api/v1/sessions').send({ name: 'alongside' }),
    ]);

    expect(huge.status).toBe(507);
    expect(huge.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(huge.body).toEqual({
      type: 'about:blank',
      title: 'Insufficient Storage',
      status: 507,
      detail: 'The server has run out of storage space; nothing was saved. Try again later.',
      instance: messages,
    });
    expect(others.map((r) => r.status)).toEqual([...small.map(() => 201), 201]);
    const stored = await request(t.http).get(messages).query({ limit: 100 });
    expect((stored.body as { content: string }[]).map((m) => m.content).sort()).toEqual(small);
    expect(await countRows(t.db, 'sessions')).toBe(2);

    await disk.free();
    const after = await request(t.http).post(messages).send({ content: HUGE });
    expect(after.status).toBe(201);
    expect(await countRows(t.db, 'chat_messages')).toBe(small.length + 1);
    const session = await request(t.http).get(`/api/v1/sessions/${sessionId}`);
    expect(session.body.message_count).toBe(small.length + 1);
  });
});
