import request from 'supertest';
import { callJson } from './helpers/http';
import { invariantViolations } from './helpers/invariants';
import type { DatabaseService } from '../src/database/database.service';
import { freshDatabaseUrl } from './helpers/database-target';
import { countRows, createTestApp, resetDatabase, TestApp } from './helpers/test-app';

const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const UNKNOWN_SESSION = '00000000-0000-4000-8000-000000000000';

interface MessageBody {
  id: number;
  session_id: string;
  timestamp: string;
  role: string;
  content: string;
  metadata: object | null;
}

const messagesOf = (sessionId: string) => `/api/v1/sessions/${sessionId}/messages`;
const messageAt = (sessionId: string, messageId: number | string) =>
  `${messagesOf(sessionId)}/${messageId}`;

function notFound(instance: string) {
  return {
    type: 'about:blank',
    title: 'Not Found',
    status: 404,
    detail: expect.stringContaining('not found'),
    instance,
  };
}

async function storedCounts(db: DatabaseService): Promise<Record<string, [number, number]>> {
  const rows: { id: string; message_count: number | string; real: number | string }[] =
    await db.read((m) =>
      m.query(
        `SELECT s."id", s."message_count",
           (SELECT COUNT(*) FROM "chat_messages" m WHERE m."session_id" = s."id") AS "real"
         FROM "sessions" s`,
      ),
    );
  return Object.fromEntries(rows.map((r) => [r.id, [Number(r.message_count), Number(r.real)]]));
}

describe('Message management, v1.1 (e2e)', () => {
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

  async function append(session: string, n: number): Promise<MessageBody[]> {
    const messages: MessageBody[] = [];
    for (let i = 0; i < n; i++) {
      const res = await request(t.http)
        .post(messagesOf(session))
        .send({ content: `m${i}`, role: i % 2 ? 'assistant' : 'user', metadata: { i } });
      expect(res.status).toBe(201);
      messages.push(res.body as MessageBody);
    }
    return messages;
  }

  async function session(id: string) {
    const res = await request(t.http).get(`/api/v1/sessions/${id}`);
    expect(res.status).toBe(200);
    return res.body as { message_count: number; last_updated_at: string; created_at: string };
  }

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

    it.each([UNKNOWN_SESSION, 'not-a-uuid'])(
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
      expect({ body: list.body, total: list.headers['x-total-count'] }).toEqual({
        body: [messages[0], messages[2]],
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

      // The newest message first: last_updated_at still does not move back.
      await request(t.http).delete(messageAt(sessionId, messages[2].id)).expect(204);
      expect(await session(sessionId)).toEqual({ ...before, message_count: 2 });
      await request(t.http).delete(messageAt(sessionId, messages[0].id)).expect(204);
      expect(await session(sessionId)).toEqual({ ...before, message_count: 1 });
      await request(t.http).delete(messageAt(sessionId, messages[1].id)).expect(204);
      expect(await session(sessionId)).toEqual({ ...before, message_count: 0 });

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

    it.each([UNKNOWN_SESSION, 'not-a-uuid'])(
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

/** Hundreds of real HTTP requests in flight at once against a listening server. */
describe('Message management under concurrency (e2e)', () => {
  jest.setTimeout(30_000);

  let t: TestApp;
  let base: string;

  beforeAll(async () => {
    t = await createTestApp({ DATABASE_URL: await freshDatabaseUrl('message-management') });
    await t.app.listen(0, '127.0.0.1');
    base = await t.app.getUrl();
  });
  afterAll(() => t.close());
  beforeEach(() => resetDatabase(t.db));

  const call = (method: string, path: string, body?: unknown) => callJson(base, method, path, body);

  async function seed(sessions: number, perSession: number): Promise<[string, number[]][]> {
    const ids = await Promise.all(
      Array.from({ length: sessions }, async () => {
        const reply = await call('POST', '/api/v1/sessions', {});
        return String(reply.body.id);
      }),
    );
    return Promise.all(
      ids.map(async (id): Promise<[string, number[]]> => {
        const replies = await Promise.all(
          Array.from({ length: perSession }, (_, i) =>
            call('POST', messagesOf(id), { content: `seed ${i}` }),
          ),
        );
        expect(replies.map((r) => r.status).filter((s) => s !== 201)).toEqual([]);
        return [id, replies.map((r) => Number(r.body.id))];
      }),
    );
  }

  it('keeps message_count exact under hundreds of concurrent appends and deletes', async () => {
    const seeded = await seed(4, 50);
    type Kind = 'append' | 'delete' | 'double-delete' | 'wrong-session' | 'read';
    const work: Promise<{ kind: Kind; session: string; status: number; id?: number }>[] = [];
    for (const [n, [session, messageIds]] of seeded.entries()) {
      const neighbour = seeded[(n + 1) % seeded.length][1];
      for (let i = 0; i < 60; i++) {
        work.push(
          call('POST', messagesOf(session), { content: `new ${i}` }).then((r) => ({
            kind: 'append' as const,
            session,
            status: r.status,
            id: Number(r.body.id),
          })),
        );
      }
      // The first 30 seeded messages go, the first 10 of them asked twice at once.
      for (const [i, id] of messageIds.slice(0, 30).entries()) {
        const kinds: Kind[] = i < 10 ? ['double-delete', 'double-delete'] : ['delete'];
        for (const kind of kinds) {
          work.push(
            call('DELETE', messageAt(session, id)).then((r) => ({
              kind,
              session,
              status: r.status,
              id,
            })),
          );
        }
      }
      // Deleting a neighbour's message through this session must not touch either session.
      for (const id of neighbour.slice(40, 45)) {
        work.push(
          call('DELETE', messageAt(session, id)).then((r) => ({
            kind: 'wrong-session' as const,
            session,
            status: r.status,
            id,
          })),
        );
      }
      for (let i = 0; i < 10; i++) {
        work.push(
          call('GET', `${messagesOf(session)}?order=desc&limit=5`).then((r) => ({
            kind: 'read' as const,
            session,
            status: r.status,
          })),
        );
      }
    }
    // Every request above is already in flight: appends, deletes and reads overlap.
    const results = await Promise.all(work);
    expect(results).toHaveLength(4 * (60 + 40 + 5 + 10));

    const statuses = (kind: Kind) => results.filter((r) => r.kind === kind).map((r) => r.status);
    expect(statuses('append').filter((s) => s !== 201)).toEqual([]);
    expect(statuses('delete').filter((s) => s !== 204)).toEqual([]);
    expect(statuses('wrong-session').filter((s) => s !== 404)).toEqual([]);
    expect(statuses('read').filter((s) => s !== 200)).toEqual([]);
    // Of two deletes of one message, exactly one wins.
    const doubles = new Map<number, number[]>();
    for (const r of results.filter((x) => x.kind === 'double-delete')) {
      doubles.set(r.id!, [...(doubles.get(r.id!) ?? []), r.status]);
    }
    expect(doubles.size).toBe(40);
    for (const pair of doubles.values()) expect(pair.sort()).toEqual([204, 404]);

    // Each session: 50 seeded + 60 appended - 30 deleted, counted straight in the database.
    const counts = await storedCounts(t.db);
    expect(counts).toEqual(Object.fromEntries(seeded.map(([id]) => [id, [80, 80]])));
    expect(await countRows(t.db, 'chat_messages')).toBe(320);
    const survivors: { id: number }[] = await t.db.read((m) =>
      m.query('SELECT "id" FROM "chat_messages"'),
    );
    const surviving = new Set(survivors.map((s) => Number(s.id)));
    for (const [, messageIds] of seeded) {
      expect(messageIds.slice(0, 30).filter((id) => surviving.has(id))).toEqual([]);
      expect(messageIds.slice(30).filter((id) => !surviving.has(id))).toEqual([]);
    }
    for (const r of results.filter((x) => x.kind === 'append')) {
      expect(surviving.has(r.id!)).toBe(true);
    }
    expect(await invariantViolations(t.db, { messagesDeleted: true })).toEqual([]);

    // The API agrees with the database.
    for (const [id] of seeded) {
      const s = await call('GET', `/api/v1/sessions/${id}`);
      expect((s.body as { message_count?: number }).message_count).toBe(80);
    }
  });

  it('races message deletes against a delete of their session: no 500, no orphan, exact counts', async () => {
    const seeded = await seed(6, 20);
    const doomed = new Set(seeded.slice(0, 3).map(([id]) => id));
    const work: Promise<{ session: string; status: number; kind: string }>[] = [];
    for (const [session, messageIds] of seeded) {
      for (const id of messageIds) {
        work.push(
          call('DELETE', messageAt(session, id)).then((r) => ({
            session,
            status: r.status,
            kind: 'message',
          })),
        );
        if (doomed.has(session) && id === messageIds[5]) {
          work.push(
            call('DELETE', `/api/v1/sessions/${session}`).then((r) => ({
              session,
              status: r.status,
              kind: 'session',
            })),
          );
        }
        work.push(
          call('POST', messagesOf(session), { content: 'racing' }).then((r) => ({
            session,
            status: r.status,
            kind: 'append',
          })),
        );
      }
    }
    const results = await Promise.all(work);
    expect(results.filter((r) => r.kind === 'session').map((r) => r.status)).toEqual([
      204, 204, 204,
    ]);
    for (const r of results.filter((x) => x.kind !== 'session')) {
      const allowed = doomed.has(r.session)
        ? [r.kind === 'append' ? 201 : 204, 404]
        : [r.kind === 'append' ? 201 : 204];
      expect(allowed).toContain(r.status);
    }
    expect(await countRows(t.db, 'sessions')).toBe(3);
    // Survivors: their 20 seeded messages deleted, their 20 racing appends kept.
    expect(await storedCounts(t.db)).toEqual(
      Object.fromEntries(seeded.filter(([id]) => !doomed.has(id)).map(([id]) => [id, [20, 20]])),
    );
    expect(await invariantViolations(t.db, { messagesDeleted: true })).toEqual([]);
  });
});
