import { Client } from 'pg';
import request from 'supertest';
import {
  appendMessages,
  ISO_MS,
  messageAt,
  messagesOf,
  notFound,
  readSession,
  UNKNOWN_ID,
} from './helpers/api';
import { onPostgres } from './helpers/database-target';
import { invariantViolations } from './helpers/invariants';
import { countRows, createTestApp, resetDatabase, TestApp } from './helpers/test-app';

describe('Messages (e2e)', () => {
  let t: TestApp;
  let sessionId: string;
  let otherId: string;

  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());
  beforeEach(async () => {
    await resetDatabase(t.db);
    sessionId = (await request(t.http).post('/api/v1/sessions').send({})).body.id;
    otherId = (await request(t.http).post('/api/v1/sessions').send({})).body.id;
  });

  const append = (session: string, n: number) => appendMessages(t.http, session, n);
  const session = (id: string) => readSession(t.http, id);

  describe('POST /api/v1/sessions/:id/messages', () => {
    // PostgreSQL answers each statement in a round trip: an append is one statement (the session's
    // touch, its new current message and the insert as one WITH … INSERT, atomic by itself, no
    // BEGIN/COMMIT); with an Idempotency-Key it is a lookup, then a transaction of six (lock, check,
    // append, stored response).
    (onPostgres ? it : it.skip)(
      'takes one round trip on PostgreSQL, seven with a key',
      async () => {
        const spy = jest.spyOn(Client.prototype, 'query');
        const statements = () =>
          spy.mock.calls.map(([query]) =>
            (typeof query === 'string' ? query : (query as { text: string }).text)
              .replace(/\s+/g, ' ')
              .slice(0, 40),
          );
        try {
          const plain = await request(t.http).post(messagesOf(sessionId)).send({ content: 'one' });
          expect(plain.status).toBe(201);
          expect(statements()).toEqual([
            expect.stringMatching(/^WITH "locked" AS \( ?SELECT "id"/),
          ]);
          spy.mockClear();
          const keyed = await request(t.http)
            .post(messagesOf(sessionId))
            .set('Idempotency-Key', 'round-trips')
            .send({ content: 'two' });
          expect(keyed.status).toBe(201);
          expect(statements()).toEqual([
            expect.stringMatching(/^SELECT "request_hash"/),
            'START TRANSACTION',
            expect.stringContaining('pg_try_advisory_xact_lock'),
            expect.stringMatching(/^WITH "expired" AS \(DELETE/),
            expect.stringMatching(/^WITH "locked" AS/),
            expect.stringMatching(/^WITH "stored" AS \( ?INSERT/),
            'COMMIT',
          ]);
        } finally {
          spy.mockRestore();
        }
        // Both stored, counted and in order.
        expect((await session(sessionId)).message_count).toBe(2);
      },
    );

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
          parent_id: null,
          status: 'complete',
          generation: null,
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
      const res = await request(t.http).post(messagesOf(UNKNOWN_ID)).send({ content: 'lost?' });
      expect(res.status).toBe(404);
      expect(res.body).toEqual({
        type: 'about:blank',
        title: 'Not Found',
        status: 404,
        detail: `Session with ID '${UNKNOWN_ID}' not found.`,
        instance: messagesOf(UNKNOWN_ID),
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

  describe('GET /api/v1/sessions/:id/messages/:message_id', () => {
    it('returns the message exactly as the POST answered it', async () => {
      const [, second] = await append(sessionId, 3);
      const res = await request(t.http).get(messageAt(sessionId, second.id));
      expect({ status: res.status, body: res.body }).toEqual({
        status: 200,
        body: {
          id: second.id,
          session_id: sessionId,
          timestamp: expect.stringMatching(ISO_MS),
          role: 'assistant',
          content: 'm1',
          metadata: { i: 1 },
          parent_id: expect.any(Number),
          status: 'complete',
          generation: null,
        },
      });
      expect(res.body).toEqual(second);
    });

    it('works with a trailing slash', async () => {
      const [message] = await append(sessionId, 1);
      const res = await request(t.http).get(`${messageAt(sessionId, message.id)}/`);
      expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: message });
    });

    it.each(['999999', '0', 'abc', '1.5', '-1', '1e3', '0x1', '99999999999999999999', '%20'])(
      'answers 404 for message id %s',
      async (messageId) => {
        await append(sessionId, 2);
        const res = await request(t.http).get(messageAt(sessionId, messageId));
        expect({ status: res.status, body: res.body }).toEqual({
          status: 404,
          body: notFound(expect.stringMatching(new RegExp(`^${messagesOf(sessionId)}/`))),
        });
        expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      },
    );

    it('answers 404 for a message of another session', async () => {
      const [foreign] = await append(otherId, 1);
      await append(sessionId, 1);
      const res = await request(t.http).get(messageAt(sessionId, foreign.id));
      expect({ status: res.status, body: res.body }).toEqual({
        status: 404,
        body: notFound(messageAt(sessionId, foreign.id)),
      });
      // It is still there under its own session.
      const own = await request(t.http).get(messageAt(otherId, foreign.id));
      expect({ status: own.status, body: own.body }).toEqual({ status: 200, body: foreign });
    });

    it.each([UNKNOWN_ID, 'not-a-uuid'])(
      'answers 404 for unknown session %s, even with a real message id',
      async (unknown) => {
        const [message] = await append(sessionId, 1);
        const res = await request(t.http).get(messageAt(unknown, message.id));
        expect({ status: res.status, body: res.body }).toEqual({
          status: 404,
          body: notFound(messageAt(unknown, message.id)),
        });
      },
    );
  });

  describe('DELETE /api/v1/sessions/:id/messages/:message_id', () => {
    it('answers 204 with an empty body; the message is gone from GET and from the list', async () => {
      const messages = await append(sessionId, 3);
      const res = await request(t.http).delete(messageAt(sessionId, messages[1].id));
      expect({ status: res.status, text: res.text }).toEqual({ status: 204, text: '' });

      const gone = await request(t.http).get(messageAt(sessionId, messages[1].id));
      expect({ status: gone.status, body: gone.body }).toEqual({
        status: 404,
        body: notFound(messageAt(sessionId, messages[1].id)),
      });
      const list = await request(t.http).get(messagesOf(sessionId));
      // The deleted message's child now follows its parent.
      expect({ body: list.body, total: list.headers['x-total-count'] }).toEqual({
        body: [messages[0], { ...messages[2], parent_id: messages[0].id }],
        total: '2',
      });
      const rows: unknown[] = await t.db.read((m) =>
        m.query(t.db.sql('SELECT "id" FROM "chat_messages" WHERE "id" = ?'), [messages[1].id]),
      );
      expect(rows).toEqual([]);
    });

    it('drops message_count and leaves last_updated_at and created_at where they were', async () => {
      const messages = await append(sessionId, 3);
      const before = await session(sessionId);
      expect(before.message_count).toBe(3);
      expect(before.last_updated_at).toBe(messages[2].timestamp);

      // The newest message first: last_updated_at still does not move back. (The current message
      // moves to what is left: see test/branches.e2e-spec.ts.)
      const current = (id: number | null) => ({ current_message_id: id });
      await request(t.http).delete(messageAt(sessionId, messages[2].id)).expect(204);
      expect(await session(sessionId)).toEqual({
        ...before,
        message_count: 2,
        ...current(messages[1].id),
      });
      await request(t.http).delete(messageAt(sessionId, messages[0].id)).expect(204);
      expect(await session(sessionId)).toEqual({
        ...before,
        message_count: 1,
        ...current(messages[1].id),
      });
      await request(t.http).delete(messageAt(sessionId, messages[1].id)).expect(204);
      expect(await session(sessionId)).toEqual({ ...before, message_count: 0, ...current(null) });

      const list = await request(t.http).get(messagesOf(sessionId));
      expect({ body: list.body, total: list.headers['x-total-count'] }).toEqual({
        body: [],
        total: '0',
      });
      expect(await invariantViolations(t.db, { messagesDeleted: true })).toEqual([]);
    });

    it('leaves the session list order alone', async () => {
      const [message] = await append(sessionId, 1);
      await append(otherId, 1);
      const order = (await request(t.http).get('/api/v1/sessions')).body.map(
        (s: { id: string }) => s.id,
      );
      expect(order).toEqual([otherId, sessionId]);
      await request(t.http).delete(messageAt(sessionId, message.id)).expect(204);
      const after = (await request(t.http).get('/api/v1/sessions')).body.map(
        (s: { id: string }) => s.id,
      );
      expect(after).toEqual(order);
    });

    it('keeps new messages later than the deleted newest one', async () => {
      const messages = await append(sessionId, 2);
      await request(t.http).delete(messageAt(sessionId, messages[1].id)).expect(204);
      const [next] = await append(sessionId, 1);
      expect(next.id).toBeGreaterThan(messages[1].id);
      expect(Date.parse(next.timestamp)).toBeGreaterThan(Date.parse(messages[1].timestamp));
      const state = await session(sessionId);
      expect({ count: state.message_count, last: state.last_updated_at }).toEqual({
        count: 2,
        last: next.timestamp,
      });
      const list = await request(t.http).get(messagesOf(sessionId));
      expect(list.body).toEqual([messages[0], next]);
    });

    it('answers 404 the second time', async () => {
      const [message] = await append(sessionId, 1);
      await request(t.http).delete(messageAt(sessionId, message.id)).expect(204);
      const again = await request(t.http).delete(messageAt(sessionId, message.id));
      expect({ status: again.status, body: again.body }).toEqual({
        status: 404,
        body: notFound(messageAt(sessionId, message.id)),
      });
      expect((await session(sessionId)).message_count).toBe(0);
    });

    it('works with a trailing slash', async () => {
      const [message] = await append(sessionId, 1);
      const res = await request(t.http).delete(`${messageAt(sessionId, message.id)}/`);
      expect(res.status).toBe(204);
      expect((await session(sessionId)).message_count).toBe(0);
    });

    it.each(['999999', '0', 'abc', '1.5', '-1', '1e3', '0x1', '99999999999999999999', '%20'])(
      'answers 404 for message id %s and changes nothing',
      async (messageId) => {
        const messages = await append(sessionId, 2);
        const before = await session(sessionId);
        const res = await request(t.http).delete(messageAt(sessionId, messageId));
        expect({ status: res.status, body: res.body }).toEqual({
          status: 404,
          body: notFound(expect.stringMatching(new RegExp(`^${messagesOf(sessionId)}/`))),
        });
        expect(await session(sessionId)).toEqual(before);
        expect((await request(t.http).get(messagesOf(sessionId))).body).toEqual(messages);
      },
    );

    it('answers 404 for a message of another session, and leaves it and both counts alone', async () => {
      const [foreign] = await append(otherId, 1);
      await append(sessionId, 1);
      const res = await request(t.http).delete(messageAt(sessionId, foreign.id));
      expect({ status: res.status, body: res.body }).toEqual({
        status: 404,
        body: notFound(messageAt(sessionId, foreign.id)),
      });
      expect((await session(sessionId)).message_count).toBe(1);
      expect((await session(otherId)).message_count).toBe(1);
      const own = await request(t.http).get(messageAt(otherId, foreign.id));
      expect(own.body).toEqual(foreign);
      expect(await invariantViolations(t.db, { messagesDeleted: true })).toEqual([]);
    });

    it.each([UNKNOWN_ID, 'not-a-uuid'])(
      'answers 404 for unknown session %s, even with a real message id',
      async (unknown) => {
        const [message] = await append(sessionId, 1);
        const res = await request(t.http).delete(messageAt(unknown, message.id));
        expect({ status: res.status, body: res.body }).toEqual({
          status: 404,
          body: notFound(messageAt(unknown, message.id)),
        });
        expect(await countRows(t.db, 'chat_messages')).toBe(1);
        expect((await session(sessionId)).message_count).toBe(1);
      },
    );

    it('answers 404 for the messages of a deleted session', async () => {
      const [message] = await append(sessionId, 1);
      await request(t.http).delete(`/api/v1/sessions/${sessionId}`).expect(204);
      const get = await request(t.http).get(messageAt(sessionId, message.id));
      const del = await request(t.http).delete(messageAt(sessionId, message.id));
      expect([get.status, del.status]).toEqual([404, 404]);
    });
  });
});
