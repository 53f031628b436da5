import { freshDatabaseUrl } from './helpers/database-target';
import { callJson, type JsonReply } from './helpers/http';
import { countRows, createTestApp, resetDatabase, TestApp } from './helpers/test-app';
import { invariantViolations } from './helpers/invariants';

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
});
