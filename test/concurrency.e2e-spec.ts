import type { DatabaseService } from '../src/database/database.service';
import { messageAt, messagesOf } from './helpers/api';
import { freshDatabaseUrl } from './helpers/database-target';
import { callJson, type JsonReply } from './helpers/http';
import { countRows, createTestApp, resetDatabase, TestApp } from './helpers/test-app';
import { invariantViolations } from './helpers/invariants';

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

/** Hundreds of real HTTP requests in flight at once against a listening server. */
describe('Concurrency (e2e)', () => {
  let t: TestApp;
  let base: string;

  beforeAll(async () => {
    t = await createTestApp({ DATABASE_URL: await freshDatabaseUrl('concurrency') });
    await t.app.listen(0, '127.0.0.1');
    base = await t.app.getUrl();
  });
  afterAll(() => t.close());
  beforeEach(() => resetDatabase(t.db));

  const call = (method: string, path: string, body?: unknown) => callJson(base, method, path, body);

  async function createSessions(n: number): Promise<string[]> {
    const replies = await Promise.all(
      Array.from({ length: n }, () => call('POST', '/api/v1/sessions', {})),
    );
    return replies.map((r) => String(r.body.id));
  }

  it('creates 200 sessions at once, each exactly once', async () => {
    const ids = await createSessions(200);
    expect(new Set(ids).size).toBe(200);
    expect(await countRows(t.db, 'sessions')).toBe(200);
  });

  it('stores every one of 400 concurrent appends, with exact counts and ordered timestamps', async () => {
    const sessions = await createSessions(4);
    const replies = await Promise.all(
      Array.from({ length: 400 }, (_, i) =>
        i % 10 === 0
          ? call('GET', `/api/v1/sessions/${sessions[i % 4]}/messages`)
          : call('POST', `/api/v1/sessions/${sessions[i % 4]}/messages`, {
              content: `m${i}`,
              role: 'assistant',
            }),
      ),
    );
    expect(replies.map((r) => r.status).filter((s) => s !== 200 && s !== 201)).toEqual([]);
    const appended = replies.filter((r) => r.status === 201);
    expect(appended).toHaveLength(360);
    expect(await countRows(t.db, 'chat_messages')).toBe(360);
    expect(await invariantViolations(t.db)).toEqual([]);

    for (const [n, id] of sessions.entries()) {
      const expected = Array.from({ length: 400 }, (_, i) => i).filter(
        (i) => i % 10 !== 0 && i % 4 === n,
      ).length;
      const session = await call('GET', `/api/v1/sessions/${id}`);
      const history = await call('GET', `/api/v1/sessions/${id}/messages`);
      const messages = history.body as unknown as { id: number; timestamp: string }[];
      expect(session.body.message_count).toBe(expected);
      expect(messages).toHaveLength(expected);
      // Oldest first, in insertion order, each strictly later than the one before.
      expect(messages.map((m) => m.id)).toEqual(
        [...messages.map((m) => m.id)].sort((a, b) => a - b),
      );
      for (let i = 1; i < messages.length; i++) {
        expect(Date.parse(messages[i].timestamp)).toBeGreaterThan(
          Date.parse(messages[i - 1].timestamp),
        );
      }
      expect(session.body).toMatchObject({ last_updated_at: messages[expected - 1].timestamp });
    }
  });

  it('races appends against deletes: every 201 is stored unless its session was deleted, never an orphan', async () => {
    const sessions = await createSessions(10);
    const doomed = new Set(sessions.slice(0, 5));
    const work: Promise<{ kind: 'append' | 'delete'; session: string; reply: JsonReply }>[] = [];
    for (let i = 0; i < 300; i++) {
      const session = sessions[i % 10];
      work.push(
        call('POST', `/api/v1/sessions/${session}/messages`, { content: `m${i}` }).then(
          (reply) => ({
            kind: 'append',
            session,
            reply,
          }),
        ),
      );
      if (i % 60 === 30) {
        const victim = sessions[(i / 30 - 1) / 2];
        work.push(
          call('DELETE', `/api/v1/sessions/${victim}`).then((reply) => ({
            kind: 'delete',
            session: victim,
            reply,
          })),
        );
      }
    }
    const results = await Promise.all(work);

    const deletes = results.filter((r) => r.kind === 'delete');
    expect(deletes.map((d) => d.reply.status)).toEqual([204, 204, 204, 204, 204]);
    expect(new Set(deletes.map((d) => d.session))).toEqual(doomed);

    const appends = results.filter((r) => r.kind === 'append');
    for (const a of appends) {
      expect([201, 404]).toContain(a.reply.status);
      if (a.reply.status === 404) expect(doomed.has(a.session)).toBe(true);
    }
    expect(appends.some((a) => a.reply.status === 404)).toBe(true); // the race really happened
    // Every acknowledged message of a surviving session is there; none of a deleted one is.
    const stored: { id: number; session_id: string }[] = await t.db.read((m) =>
      m.query('SELECT "id", "session_id" FROM "chat_messages"'),
    );
    const storedIds = new Set(stored.map((s) => Number(s.id)));
    const acknowledgedSurvivors = appends.filter(
      (a) => a.reply.status === 201 && !doomed.has(a.session),
    );
    expect(acknowledgedSurvivors).toHaveLength(150);
    for (const a of acknowledgedSurvivors)
      expect(storedIds.has(Number(a.reply.body.id))).toBe(true);
    expect(stored.filter((s) => doomed.has(s.session_id))).toEqual([]);
    expect(stored).toHaveLength(150);
    expect(await countRows(t.db, 'sessions')).toBe(5);
    expect(await invariantViolations(t.db)).toEqual([]);
  });

  it('keeps X-Total-Count exact under concurrent creates, deletes, archives and pins', async () => {
    const sessions = await createSessions(40);
    const work: Promise<JsonReply>[] = [];
    for (let i = 0; i < 200; i++) {
      const id = sessions[i % sessions.length];
      if (i % 10 === 3) work.push(call('DELETE', `/api/v1/sessions/${id}`));
      else if (i % 10 === 7)
        work.push(call('POST', '/api/v1/sessions', { archived: i % 3 === 0, pinned: i % 2 === 0 }));
      else
        work.push(
          call('PATCH', `/api/v1/sessions/${id}`, { archived: i % 3 === 0, pinned: i % 4 < 2 }),
        );
    }
    const replies = await Promise.all(work);
    expect(replies.filter((r) => ![200, 201, 204, 404].includes(r.status))).toEqual([]);
    expect(await invariantViolations(t.db)).toEqual([]);
    for (const query of [
      'archived=any',
      'archived=true',
      'archived=false',
      'archived=any&pinned=true',
      'pinned=false',
    ]) {
      const res = await fetch(`${base}/api/v1/sessions?${query}&limit=1000`);
      const listed = (await res.json()) as unknown[];
      expect({ query, total: res.headers.get('x-total-count') }).toEqual({
        query,
        total: String(listed.length),
      });
    }
  });

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
