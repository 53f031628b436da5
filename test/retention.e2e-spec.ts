import request from 'supertest';
import { Client } from 'pg';
import { seedExpiredSessions } from '../bench/seed-expired';
import { RetentionSweep, SWEEP_LOCK_KEY } from '../src/sessions/retention-sweep';
import {
  appendMessages,
  badRequest,
  createSession,
  ISO_MS,
  messageAt,
  messagesOf,
  rawText,
  readSession,
  SESSIONS,
  sessionNotFound,
} from './helpers/api';
import { freshDatabaseUrl, onPostgres } from './helpers/database-target';
import { invariantViolations } from './helpers/invariants';
import { ageSession, DAY_MS, expireSession } from './helpers/retention';
import { countRows, createTestApp, resetDatabase, TestApp } from './helpers/test-app';

/** No background sweep: each test sweeps when it means to, so "before the sweep" is certain. */
const NO_SWEEP = { RETENTION_DAYS: '0', RETENTION_SWEEP_INTERVAL_MS: '0' };

const expiresAtProblem = badRequest(expect.any(String), [
  { field: 'expires_at', message: expect.stringContaining('expires_at') },
]);

async function listed(t: TestApp, query = '') {
  const res = await request(t.http).get(`${SESSIONS}${query}`);
  expect(res.status).toBe(200);
  return {
    ids: (res.body as { id: string }[]).map((s) => s.id).sort(),
    total: Number(res.headers['x-total-count']),
  };
}

async function searched(t: TestApp, q: string): Promise<string[]> {
  const res = await request(t.http).get('/api/v1/search').query({ q, archived: 'any' });
  expect(res.status).toBe(200);
  return (res.body as { session: { id: string } }[]).map((hit) => hit.session.id).sort();
}

async function exportedIds(t: TestApp): Promise<string[]> {
  const res = await rawText(request(t.http).get('/api/v1/export?archived=any'));
  expect(res.status).toBe(200);
  return (res.body as string)
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => (JSON.parse(line) as { session: { id: string } }).session.id)
    .sort();
}

describe('Retention (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp(NO_SWEEP);
  });
  afterAll(() => t.close());
  beforeEach(() => resetDatabase(t.db));

  describe('POST /api/v1/sessions with expires_at', () => {
    it('stores a future time and answers it as ISO 8601 in UTC with milliseconds', async () => {
      const a = await createSession(t.http, { expires_at: '2030-01-01T02:00:00+02:00' });
      expect(a.expires_at).toBe('2030-01-01T00:00:00.000Z');
      const b = await createSession(t.http, { expires_at: '2031-06-30T12:34:56.789Z' });
      expect(await readSession(t.http, b.id)).toEqual(
        expect.objectContaining({ expires_at: '2031-06-30T12:34:56.789Z' }),
      );
      expect(ISO_MS.test(b.expires_at as string)).toBe(true);
    });

    it('keeps the session when expires_at is null or left out', async () => {
      expect((await createSession(t.http, { expires_at: null })).expires_at).toBeNull();
      expect((await createSession(t.http)).expires_at).toBeNull();
    });

    it.each([
      ['a time in the past', '2020-01-01T00:00:00.000Z'],
      ['the present', new Date(Date.now() - 1).toISOString()],
      ['a date that is not on the calendar', '2030-02-30T00:00:00Z'],
      ['a string that is not ISO 8601', 'tomorrow'],
      ['a date without a time', '2030-01-01'],
      ['a number', 1_900_000_000_000],
      ['a time after the year 9999', '9999-12-31T23:59:59.999-01:00'],
      ['a five-digit year', '10000-01-01T00:00:00Z'],
      ['a boolean', true],
    ])('refuses %s with a 400 naming expires_at', async (_, value) => {
      const res = await request(t.http).post(SESSIONS).send({ expires_at: value });
      expect({ status: res.status, body: res.body }).toEqual({
        status: 400,
        body: { ...expiresAtProblem, instance: SESSIONS },
      });
      expect(await countRows(t.db, 'sessions')).toBe(0);
    });
  });

  describe('PATCH /api/v1/sessions/{id} with expires_at', () => {
    it('sets, replaces and clears it, leaving the other fields', async () => {
      const s = await createSession(t.http, { name: 'Temp', pinned: true });
      const set = await request(t.http)
        .patch(`${SESSIONS}/${s.id}`)
        .send({ expires_at: '2032-03-04T05:06:07.008Z' });
      expect({ status: set.status, body: set.body }).toEqual({
        status: 200,
        body: { ...s, expires_at: '2032-03-04T05:06:07.008Z' },
      });
      const cleared = await request(t.http).patch(`${SESSIONS}/${s.id}`).send({ expires_at: null });
      expect({ status: cleared.status, body: cleared.body }).toEqual({ status: 200, body: s });
      expect(await readSession(t.http, s.id)).toEqual(s);
    });

    it('refuses a past time with a 400 naming expires_at and changes nothing', async () => {
      const s = await createSession(t.http, { expires_at: '2033-01-01T00:00:00.000Z' });
      const path = `${SESSIONS}/${s.id}`;
      const res = await request(t.http)
        .patch(path)
        .send({ name: 'new', expires_at: '2001-01-01T00:00:00Z' });
      expect({ status: res.status, body: res.body }).toEqual({
        status: 400,
        body: { ...expiresAtProblem, instance: path },
      });
      expect(await readSession(t.http, s.id)).toEqual(s);
    });
  });

  describe('an expired session, before any sweep', () => {
    it('is 404 for every endpoint, and not listed, counted, searched or exported', async () => {
      const gone = await createSession(t.http, { name: 'lisbon trip', archived: true });
      const kept = await createSession(t.http, { name: 'lisbon notes' });
      const [first] = await appendMessages(t.http, gone.id, 2);
      await appendMessages(t.http, kept.id, 1);
      await request(t.http).post(messagesOf(gone.id)).send({ content: 'lisbon in May' });
      await request(t.http).post(messagesOf(kept.id)).send({ content: 'lisbon in June' });
      expect((await listed(t, '?archived=any')).total).toBe(2);

      await expireSession(t.db, gone.id);

      const s = `${SESSIONS}/${gone.id}`;
      const responses = await Promise.all([
        request(t.http).get(s),
        request(t.http).patch(s).send({ name: 'x' }),
        request(t.http).patch(s).send({ expires_at: null }),
        request(t.http).get(messagesOf(gone.id)),
        request(t.http).get(`${messagesOf(gone.id)}?branch=current`),
        request(t.http).get(`${messagesOf(gone.id)}?branch=${first.id}`),
        request(t.http).get(messageAt(gone.id, first.id)),
        request(t.http).post(messagesOf(gone.id)).send({ content: 'more' }),
        request(t.http).delete(messageAt(gone.id, first.id)),
        request(t.http).post(`${s}/fork`).send({}),
        request(t.http).get(`${s}/export`),
        request(t.http).get('/api/v1/search').query({ q: 'lisbon', session_id: gone.id }),
      ]);
      for (const res of responses) {
        expect({ path: res.request.url, status: res.status }).toEqual({
          path: res.request.url,
          status: 404,
        });
      }
      expect(responses[0].body).toEqual(sessionNotFound(gone.id, s));

      for (const query of ['', '?archived=any', '?archived=true', '?pinned=false']) {
        const expected = query === '?archived=true' ? [] : [kept.id];
        expect(await listed(t, query)).toEqual({ ids: expected, total: expected.length });
      }
      expect(await searched(t, 'lisbon')).toEqual([kept.id, kept.id]);
      expect(await exportedIds(t)).toEqual([kept.id]);

      const deleted = await request(t.http).delete(s);
      expect(deleted.status).toBe(404);
      // Still stored: only the sweep removes the rows.
      expect(await countRows(t.db, 'sessions')).toBe(2);
      expect(await invariantViolations(t.db)).toEqual([]);
    });

    it('goes at its expires_at without anything else happening', async () => {
      const s = await createSession(t.http, {
        expires_at: new Date(Date.now() + 1500).toISOString(),
      });
      expect((await request(t.http).get(`${SESSIONS}/${s.id}`)).status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 1700));
      expect((await request(t.http).get(`${SESSIONS}/${s.id}`)).status).toBe(404);
      expect(await listed(t)).toEqual({ ids: [], total: 0 });
    });
  });

  describe('RetentionSweep', () => {
    it('deletes expired sessions with their messages in batches and keeps the counts right', async () => {
      const buckets = [{}, { archived: true }, { pinned: true }, { archived: true, pinned: true }];
      const expired: string[] = [];
      const live: string[] = [];
      for (const bucket of buckets) {
        for (let i = 0; i < 3; i++) {
          const s = await createSession(t.http, bucket);
          await appendMessages(t.http, s.id, 2);
          (i === 0 ? live : expired).push(s.id);
        }
      }
      for (const id of expired) await expireSession(t.db, id);
      const before = await listed(t, '?archived=any');

      const result = await t.app.get(RetentionSweep).sweep(3);
      expect(result).toEqual({
        deleted: 8,
        skipped: false,
        batches: 3,
        longestBatchMs: expect.any(Number),
      });
      expect(await countRows(t.db, 'sessions')).toBe(4);
      expect(await countRows(t.db, 'chat_messages')).toBe(8);
      expect(await invariantViolations(t.db)).toEqual([]);
      expect(await listed(t, '?archived=any')).toEqual(before);
      expect(before).toEqual({ ids: [...live].sort(), total: 4 });
      for (const query of ['?archived=true', '?pinned=true', '?archived=true&pinned=false']) {
        const { ids, total } = await listed(t, query);
        expect(total).toBe(ids.length);
      }
      expect(await t.app.get(RetentionSweep).sweep()).toEqual(
        expect.objectContaining({ deleted: 0, batches: 1 }),
      );
    });
  });
});

describe('Retention with RETENTION_DAYS (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp({ ...NO_SWEEP, RETENTION_DAYS: '30' });
  });
  afterAll(async () => {
    await t.close();
    process.env.RETENTION_DAYS = '0';
  });
  beforeEach(() => resetDatabase(t.db));

  it('hides unpinned sessions idle longer than RETENTION_DAYS, keeps pinned ones unless they expire themselves', async () => {
    const idle = await createSession(t.http, { name: 'idle' });
    const idleArchived = await createSession(t.http, { archived: true });
    const pinned = await createSession(t.http, { pinned: true });
    const pinnedExpiring = await createSession(t.http, { pinned: true });
    const recent = await createSession(t.http);
    const almost = await createSession(t.http);
    for (const s of [idle, idleArchived, pinned, pinnedExpiring]) {
      await appendMessages(t.http, s.id, 1);
      await ageSession(t.db, s.id, 31 * DAY_MS);
    }
    await ageSession(t.db, almost.id, 29 * DAY_MS);
    await expireSession(t.db, pinnedExpiring.id);

    const keptIds = [pinned.id, recent.id, almost.id].sort();
    expect(await listed(t, '?archived=any')).toEqual({ ids: keptIds, total: 3 });
    expect(await listed(t, '?pinned=true')).toEqual({ ids: [pinned.id], total: 1 });
    expect(await listed(t, '?archived=true')).toEqual({ ids: [], total: 0 });
    for (const s of [idle, idleArchived, pinnedExpiring]) {
      expect((await request(t.http).get(`${SESSIONS}/${s.id}`)).status).toBe(404);
      expect((await request(t.http).get(messagesOf(s.id))).status).toBe(404);
      // Pinning a session that has gone does not bring it back.
      expect(
        (await request(t.http).patch(`${SESSIONS}/${s.id}`).send({ pinned: true })).status,
      ).toBe(404);
    }
    expect(await exportedIds(t)).toEqual(keptIds);
    expect((await request(t.http).get(`${SESSIONS}/${pinned.id}`)).status).toBe(200);

    expect(await t.app.get(RetentionSweep).sweep()).toEqual(
      expect.objectContaining({ deleted: 3, skipped: false }),
    );
    expect(await countRows(t.db, 'sessions')).toBe(3);
    expect(await invariantViolations(t.db)).toEqual([]);
    expect(await listed(t, '?archived=any')).toEqual({ ids: keptIds, total: 3 });
  });

  it('deletes a pinned session that stops being pinned', async () => {
    const s = await createSession(t.http, { pinned: true });
    await ageSession(t.db, s.id, 40 * DAY_MS);
    expect((await request(t.http).get(`${SESSIONS}/${s.id}`)).status).toBe(200);
    const unpinned = await request(t.http).patch(`${SESSIONS}/${s.id}`).send({ pinned: false });
    expect(unpinned.status).toBe(200);
    expect((await request(t.http).get(`${SESSIONS}/${s.id}`)).status).toBe(404);
    expect(await listed(t)).toEqual({ ids: [], total: 0 });
    expect((await t.app.get(RetentionSweep).sweep()).deleted).toBe(1);
    expect(await invariantViolations(t.db)).toEqual([]);
  });
});

describe('The background sweep (e2e)', () => {
  it('runs shortly after start-up and every interval, and stops on shutdown', async () => {
    const t = await createTestApp({ RETENTION_DAYS: '0', RETENTION_SWEEP_INTERVAL_MS: '200' });
    try {
      const s = await createSession(t.http);
      await appendMessages(t.http, s.id, 1);
      await expireSession(t.db, s.id);
      const deadline = Date.now() + 5000;
      while ((await countRows(t.db, 'sessions')) > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(await countRows(t.db, 'sessions')).toBe(0);
      expect(await countRows(t.db, 'chat_messages')).toBe(0);
      expect(await invariantViolations(t.db)).toEqual([]);
    } finally {
      await t.close();
      process.env.RETENTION_SWEEP_INTERVAL_MS = '0';
    }
  });
});

(onPostgres ? describe : describe.skip)(
  'Retention sweeps of several processes (e2e, PostgreSQL)',
  () => {
    let a: TestApp;
    let b: TestApp;
    let url: string;

    beforeAll(async () => {
      url = await freshDatabaseUrl('retention');
      a = await createTestApp({ ...NO_SWEEP, DATABASE_URL: url });
      b = await createTestApp({ ...NO_SWEEP, DATABASE_URL: url });
    });
    afterAll(async () => {
      await a?.close();
      await b?.close();
    });
    beforeEach(() => resetDatabase(a.db));

    it('skips the round while another process holds the sweep lock', async () => {
      await a.db.write((m) =>
        seedExpiredSessions(m, { count: 10, owner: 'local', messagesEach: 1 }),
      );
      const other = new Client({ connectionString: url });
      await other.connect();
      try {
        await other.query('SELECT pg_advisory_lock($1)', [SWEEP_LOCK_KEY]);
        expect(await a.app.get(RetentionSweep).sweep()).toEqual({
          deleted: 0,
          skipped: true,
          batches: 0,
          longestBatchMs: 0,
        });
        expect(await countRows(a.db, 'sessions')).toBe(10);
      } finally {
        await other.end();
      }
      expect((await a.app.get(RetentionSweep).sweep()).deleted).toBe(10);
    });

    it('lets one of two processes sweeping at once delete, the other skip', async () => {
      await a.db.write((m) =>
        seedExpiredSessions(m, { count: 1200, owner: 'local', messagesEach: 1 }),
      );
      const results = await Promise.all([
        a.app.get(RetentionSweep).sweep(100),
        b.app.get(RetentionSweep).sweep(100),
      ]);
      expect(results.map((r) => r.skipped).sort()).toEqual([false, true]);
      expect(results.map((r) => r.deleted).sort((x, y) => x - y)).toEqual([0, 1200]);
      expect(await countRows(a.db, 'sessions')).toBe(0);
      expect(await countRows(a.db, 'chat_messages')).toBe(0);
      expect(await invariantViolations(a.db)).toEqual([]);
    });
  },
);
