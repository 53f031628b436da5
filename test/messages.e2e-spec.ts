import request from 'supertest';
import { createTestApp, resetDatabase, TestApp } from './helpers/test-app';

const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describe('Messages (e2e)', () => {
  let t: TestApp;
  let sessionId: string;

  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());
  beforeEach(async () => {
    await resetDatabase(t.db);
    sessionId = (await request(t.http).post('/api/v1/sessions').send({})).body.id;
  });

  const messagesOf = (id: string) => `/api/v1/sessions/${id}/messages`;

  describe('POST /api/v1/sessions/:id/messages', () => {
    it('stores a user message by default and moves last_updated_at to its timestamp', async () => {
      const before = (await request(t.http).get(`/api/v1/sessions/${sessionId}`)).body;
      const res = await request(t.http).post(messagesOf(sessionId)).send({ content: 'Hello' });
      expect({ status: res.status, body: res.body }).toEqual({
        status: 201,
        body: {
          id: expect.any(Number),
          session_id: sessionId,
          timestamp: expect.stringMatching(ISO_MS),
          role: 'user',
          content: 'Hello',
          metadata: null,
        },
      });
      const after = (await request(t.http).get(`/api/v1/sessions/${sessionId}`)).body;
      expect(after.last_updated_at).toBe(res.body.timestamp);
      expect(after.message_count).toBe(1);
      expect(Date.parse(after.last_updated_at)).toBeGreaterThan(Date.parse(before.last_updated_at));
      expect(after.created_at).toBe(before.created_at);
    });

    it.each(['user', 'assistant', 'system'])(
      'accepts role %s, and the trailing slash',
      async (role) => {
        const res = await request(t.http)
          .post(`${messagesOf(sessionId)}/`)
          .send({ content: 'x', role });
        expect(res.status).toBe(201);
        expect(res.body.role).toBe(role);
      },
    );

    it('stores content verbatim: emoji, RTL, SQL-looking text, whitespace, 100,000 characters', async () => {
      const contents = [
        '😀👩‍👩‍👧‍👦 emoji',
        'مرحبا بالعالم — שלום',
        "'); DROP TABLE chat_messages; --",
        '  leading and trailing spaces\n\ttabs  ',
        'a'.repeat(100_000),
        '😀'.repeat(100_000),
        '\u202e right-to-left override and zero\u200bwidth space',
      ];
      for (const content of contents) {
        const res = await request(t.http).post(messagesOf(sessionId)).send({ content });
        expect(res.status).toBe(201);
        expect(res.body.content).toBe(content);
      }
      const list = await request(t.http).get(messagesOf(sessionId));
      expect(list.body.map((m: { content: string }) => m.content)).toEqual(contents);
    });

    it('stores metadata objects exactly as sent', async () => {
      const metadata = {
        model: 'gpt',
        tokens: 12,
        ratio: 0.5,
        ok: true,
        none: null,
        list: [1, 'two', { three: 3 }],
        nested: { a: { b: { c: 'deep' } } },
        __proto__key: 'x',
        'key with spaces & ünïcödé': '✓',
      };
      const res = await request(t.http)
        .post(messagesOf(sessionId))
        .send({ content: 'x', metadata });
      expect(res.status).toBe(201);
      expect(res.body.metadata).toEqual(metadata);
      const [stored] = (await request(t.http).get(messagesOf(sessionId))).body;
      expect(stored.metadata).toEqual(metadata);
    });

    it('keeps a "__proto__" key inside metadata as data', async () => {
      const body = '{"content":"x","metadata":{"__proto__":{"polluted":true},"constructor":"c"}}';
      const res = await request(t.http)
        .post(messagesOf(sessionId))
        .set('Content-Type', 'application/json')
        .send(body);
      expect(res.status).toBe(201);
      expect(JSON.stringify(res.body.metadata)).toBe(
        '{"__proto__":{"polluted":true},"constructor":"c"}',
      );
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });

    it('accepts metadata 16 levels deep and 16 KiB serialized', async () => {
      let deep: object = { leaf: 1 };
      for (let i = 1; i < 16; i++) deep = { d: deep };
      const big = { blob: 'x'.repeat(16 * 1024 - '{"blob":""}'.length) };
      for (const metadata of [deep, big]) {
        const res = await request(t.http)
          .post(messagesOf(sessionId))
          .send({ content: 'x', metadata });
        expect(res.status).toBe(201);
        expect(res.body.metadata).toEqual(metadata);
      }
    });

    it.each([
      [{}, 'content'],
      [{ content: '' }, 'content'],
      [{ content: 'a'.repeat(100_001) }, 'content'],
      [{ content: 'nul \u0000 inside' }, 'content'],
      [{ content: 42 }, 'content'],
      [{ content: null }, 'content'],
      [{ content: ['a'] }, 'content'],
      [{ content: 'x', role: 'admin' }, 'role'],
      [{ content: 'x', role: 'USER' }, 'role'],
      [{ content: 'x', role: null }, 'role'],
      [{ content: 'x', metadata: 'text' }, 'metadata'],
      [{ content: 'x', metadata: [1, 2] }, 'metadata'],
      [{ content: 'x', metadata: 7 }, 'metadata'],
      [{ content: 'x', metadata: { blob: 'x'.repeat(16 * 1024) } }, 'metadata'],
      [{ content: 'x', session_id: 'other' }, 'session_id'],
      [{ content: 'x', timestamp: '2020-01-01T00:00:00.000Z' }, 'timestamp'],
      [{ content: 'x', id: 1 }, 'id'],
    ])('rejects %j with a 400 naming %s, and stores nothing', async (body, field) => {
      const res = await request(t.http).post(messagesOf(sessionId)).send(body);
      expect(res.status).toBe(400);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.body).toEqual({
        type: 'about:blank',
        title: 'Bad Request',
        status: 400,
        detail: expect.any(String),
        instance: messagesOf(sessionId),
        errors: [{ field, message: expect.any(String) }],
      });
      const session = (await request(t.http).get(`/api/v1/sessions/${sessionId}`)).body;
      expect(session.message_count).toBe(0);
    });

    it('rejects metadata 17 levels deep', async () => {
      let deep: object = { leaf: 1 };
      for (let i = 1; i < 17; i++) deep = { d: deep };
      const res = await request(t.http)
        .post(messagesOf(sessionId))
        .send({ content: 'x', metadata: deep });
      expect(res.status).toBe(400);
      expect(res.body.errors).toEqual([
        { field: 'metadata', message: expect.stringContaining('16 levels') },
      ]);
    });

    it('answers 404 for an unknown session and stores nothing', async () => {
      const res = await request(t.http)
        .post(messagesOf('00000000-0000-4000-8000-000000000000'))
        .send({ content: 'lost?' });
      expect(res.status).toBe(404);
      expect(res.body).toEqual({
        type: 'about:blank',
        title: 'Not Found',
        status: 404,
        detail: "Session with ID '00000000-0000-4000-8000-000000000000' not found.",
        instance: messagesOf('00000000-0000-4000-8000-000000000000'),
      });
      const rows: unknown[] = await t.db.read((m) => m.query('SELECT "id" FROM "chat_messages"'));
      expect(rows).toEqual([]);
    });

    it('gives ids unique across sessions', async () => {
      const other = (await request(t.http).post('/api/v1/sessions').send({})).body.id;
      const ids: number[] = [];
      for (const id of [sessionId, other, sessionId, other]) {
        ids.push((await request(t.http).post(messagesOf(id)).send({ content: 'x' })).body.id);
      }
      expect(new Set(ids).size).toBe(4);
    });
  });

  describe('GET /api/v1/sessions/:id/messages', () => {
    async function append(n: number): Promise<number[]> {
      const ids: number[] = [];
      for (let i = 0; i < n; i++) {
        const res = await request(t.http)
          .post(messagesOf(sessionId))
          .send({ content: `m${i}` });
        ids.push(res.body.id);
      }
      return ids;
    }

    it('lists oldest first with X-Total-Count', async () => {
      const ids = await append(3);
      const res = await request(t.http).get(messagesOf(sessionId));
      expect(res.status).toBe(200);
      expect(res.headers['x-total-count']).toBe('3');
      expect(res.body.map((m: { id: number }) => m.id)).toEqual(ids);
      expect(res.body.map((m: { content: string }) => m.content)).toEqual(['m0', 'm1', 'm2']);
    });

    it('orders messages with equal timestamps by id', async () => {
      const ids = await append(4);
      await t.db.write((m) => m.query('UPDATE "chat_messages" SET "timestamp" = 1000'));
      const res = await request(t.http).get(messagesOf(sessionId));
      expect(res.body.map((m: { id: number }) => m.id)).toEqual(ids);
    });

    it('pages with skip and limit; X-Total-Count ignores them', async () => {
      const ids = await append(5);
      const res = await request(t.http).get(`${messagesOf(sessionId)}/?skip=1&limit=3`);
      expect(res.headers['x-total-count']).toBe('5');
      expect(res.body.map((m: { id: number }) => m.id)).toEqual(ids.slice(1, 4));
    });

    it('defaults to 1000 per page', async () => {
      await t.db.write((m) =>
        m.query(
          t.db.sql(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1001)
           INSERT INTO "chat_messages" ("session_id", "timestamp", "role", "content")
           SELECT ?, i, 'user', 'x' FROM n`),
          [sessionId],
        ),
      );
      await t.db.write((m) => m.query('UPDATE "sessions" SET "message_count" = 1001'));
      const res = await request(t.http).get(messagesOf(sessionId));
      expect(res.body).toHaveLength(1000);
      expect(res.headers['x-total-count']).toBe('1001');
    });

    it('answers an empty list for a session without messages', async () => {
      const res = await request(t.http).get(messagesOf(sessionId));
      expect({ status: res.status, body: res.body, total: res.headers['x-total-count'] }).toEqual({
        status: 200,
        body: [],
        total: '0',
      });
    });

    it('answers 404 for an unknown session', async () => {
      const res = await request(t.http).get(messagesOf('nope'));
      expect(res.status).toBe(404);
      expect(res.body.detail).toBe("Session with ID 'nope' not found.");
    });

    it.each(['skip=-1', 'limit=0', 'limit=1001', 'limit=x', 'skip=0.5'])(
      'rejects %s with a 400',
      async (qs) => {
        const res = await request(t.http).get(`${messagesOf(sessionId)}?${qs}`);
        expect(res.status).toBe(400);
        expect(res.body.errors).toEqual([{ field: qs.split('=')[0], message: expect.any(String) }]);
      },
    );
  });
});
