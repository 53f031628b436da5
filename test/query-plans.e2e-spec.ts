import request from 'supertest';
import type { EntityManager } from 'typeorm';
import { FIXTURE_NAMES, seedLarge } from '../bench/seed-large';
import * as database from '../src/database/database.service';
import { freshDatabaseUrl, onPostgres } from './helpers/database-target';
import { invariantViolations } from './helpers/invariants';
import { countRows, createTestApp, TestApp } from './helpers/test-app';

interface Captured {
  sql: string;
  params: unknown[];
}

const { queryRows } = database;

/** Records the SELECTs the services run (every statement of theirs goes through queryRows). */
function captureSelects(): { take(): Captured[] } {
  let captured: Captured[] = [];
  jest
    .spyOn(database, 'queryRows')
    .mockImplementation((manager: EntityManager, sql: string, params: unknown[] = []) => {
      if (/^\s*SELECT/i.test(sql)) captured.push({ sql, params });
      return queryRows(manager, sql, params);
    });
  return {
    take: () => {
      const taken = captured;
      captured = [];
      return taken;
    },
  };
}

/**
 * The plan of one statement: SQLite's EXPLAIN QUERY PLAN, or PostgreSQL's EXPLAIN. With
 * `forceIndexes`, PostgreSQL prices sequential scans, bitmap scans and sorts out: on a table this
 * small the planner would rightly prefer them, and the question is whether an index *can* serve
 * the query in order.
 */
async function planOf(
  t: TestApp,
  { sql, params }: Captured,
  forceIndexes: boolean,
): Promise<string[]> {
  if (!onPostgres) {
    const rows: { detail: string }[] = await t.db.read((m) =>
      m.query(`EXPLAIN QUERY PLAN ${sql}`, params),
    );
    return rows.map((r) => r.detail);
  }
  return t.db.write(async (m) => {
    if (forceIndexes) {
      for (const method of ['seqscan', 'bitmapscan', 'sort'])
        await m.query(`SET LOCAL enable_${method} = off`);
    }
    const rows: { 'QUERY PLAN': string }[] = await m.query(`EXPLAIN ${sql}`, params);
    return rows.map((r) => r['QUERY PLAN']);
  });
}

async function plansOf(
  t: TestApp,
  capture: { take(): Captured[] },
  path: string,
  forceIndexes: boolean,
): Promise<Map<string, string[]>> {
  capture.take();
  expect((await request(t.http).get(path)).status).toBe(200);
  const plans = new Map<string, string[]>();
  for (const statement of capture.take())
    plans.set(statement.sql.replace(/\s+/g, ' '), await planOf(t, statement, forceIndexes));
  return plans;
}

/**
 * Every statement reads through an index and never scans a table. `sortAllowed` admits a sort of
 * rows an index found (PostgreSQL's bitmap scan + sort for a whole short history, which it prices
 * below walking the index in order): its cost is bounded by the one session's messages.
 */
function expectIndexed(plans: Map<string, string[]>, sortAllowed = false): void {
  expect(plans.size).toBeGreaterThan(0);
  for (const [sql, steps] of plans) {
    const plan = steps.join('\n');
    if (onPostgres) {
      expect({ sql, plan }).toEqual({ sql, plan: expect.stringMatching(/Index (Only )?Scan/) });
      expect({ sql, plan }).toEqual({
        sql,
        plan: expect.not.stringMatching(sortAllowed ? /Seq Scan/ : /Seq Scan|Sort/),
      });
      continue;
    }
    for (const step of steps) {
      if (/^(SCAN|SEARCH) /.test(step)) {
        expect({ sql, step }).toEqual({
          sql,
          step: expect.stringMatching(/USING (COVERING )?INDEX|PRIMARY KEY/),
        });
      }
    }
    expect({ sql, plan }).toEqual({ sql, plan: expect.not.stringMatching(/TEMP B-TREE/) });
  }
}

/**
 * The contract's hot queries must be served by indexes, with no sort step. The test records the
 * SQL the services really run for each list and lookup, then asks the database for each SELECT's
 * plan.
 */
describe('Query plans (e2e)', () => {
  let t: TestApp;
  let capture: { take(): Captured[] };

  beforeAll(async () => {
    // With retention on, so the owner rule's retention condition and the totals' correction for
    // expired sessions are planned too.
    t = await createTestApp({ RETENTION_DAYS: '30', RETENTION_SWEEP_INTERVAL_MS: '0' });
    capture = captureSelects();
  });
  afterAll(async () => {
    await t.close();
    process.env.RETENTION_DAYS = '0';
  });

  it('serves every list, filter, cursor, lookup and export query from an index, with no sort step', async () => {
    const session = (await request(t.http).post('/api/v1/sessions').send({ pinned: true })).body.id;
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await request(t.http)
        .post(`/api/v1/sessions/${session}/messages`)
        .send({ content: `m${i}` });
      ids.push(res.body.id);
    }
    const page = await request(t.http).get('/api/v1/sessions?limit=1');
    const cursor = /cursor=([^&>]+)/.exec(page.headers.link)![1];
    const base = `/api/v1/sessions/${session}/messages`;

    for (const path of [
      base,
      `${base}?skip=2&limit=2`,
      `${base}?after=${ids[1]}&limit=2`,
      `${base}?before=${ids[3]}&limit=2`,
      `${base}?after=${ids[0]}&before=${ids[4]}`,
      `${base}?order=desc&after=${ids[3]}`,
      `${base}/${ids[2]}`,
      `${base}?branch=current`,
      `${base}?branch=${ids[3]}&after=${ids[1]}&limit=1`,
      '/api/v1/sessions',
      '/api/v1/sessions?archived=any',
      '/api/v1/sessions?archived=true&pinned=true',
      `/api/v1/sessions?cursor=${cursor}`,
      `/api/v1/sessions?cursor=${cursor}&archived=any`,
      `/api/v1/sessions/${session}`,
      `/api/v1/sessions/${session}/export`,
      '/api/v1/export',
      '/api/v1/export?archived=any',
    ]) {
      expectIndexed(await plansOf(t, capture, path, true));
    }
  });
});

/**
 * The same on a database filled like a real one (bench/seed-large.ts at a reduced scale, with
 * PostgreSQL's statistics gathered), asking the planner without any hints: with real statistics it
 * must still choose the indexes. The COUNT behind the session list's X-Total-Count is left out:
 * whatever its plan, it reads every matching row (see the README, "Large data").
 */
describe('Query plans on a seeded database (e2e)', () => {
  let t: TestApp;
  let capture: { take(): Captured[] };

  beforeAll(async () => {
    const url = await freshDatabaseUrl('plans_seeded');
    // A 1,000-message branch in 36,000 messages: a session as big a part of the table as the
    // bench's 10,000-message one is of a store of a few hundred thousand.
    await seedLarge(url, {
      sessions: 3_000,
      messages: 30_000,
      deepMessages: 5_000,
      branchMessages: 1_000,
      seed: 3,
    });
    t = await createTestApp({ DATABASE_URL: url });
    capture = captureSelects();
  }, 60_000);
  afterAll(() => t.close());

  it('keeps the seeded data consistent', async () => {
    expect(await invariantViolations(t.db)).toEqual([]);
    expect(await countRows(t.db, 'chat_messages')).toBe(30_000 + 5_000 + 200 + 1_000);
  });

  it('serves the hot queries from indexes when the planner has real statistics', async () => {
    const sessions: { id: string; name: string }[] = await t.db.read((m) =>
      m.query(`SELECT "id", "name" FROM "sessions" WHERE "name" LIKE 'Benchmark:%'`),
    );
    const deep = sessions.find((s) => s.name === FIXTURE_NAMES.deep)!.id;
    const history = sessions.find((s) => s.name === FIXTURE_NAMES.history)!.id;
    const branch = sessions.find((s) => s.name === FIXTURE_NAMES.branch)!.id;
    const ids: { id: number | string }[] = await t.db.read((m) =>
      m.query(
        t.db.sql(
          `SELECT "id" FROM "chat_messages" WHERE "session_id" = ? ORDER BY "timestamp", "id"`,
        ),
        [deep],
      ),
    );
    const at = (n: number) => Number(ids[n].id);
    const page = await request(t.http).get('/api/v1/sessions?limit=50');
    const cursor = /cursor=([^&>]+)/.exec(page.headers.link)![1];
    const base = `/api/v1/sessions/${deep}/messages`;

    // A whole 200-message history, and the 199 messages between two cursors (limit 1000): the
    // planner may sort what the index found; that is bounded by those few rows.
    for (const path of [
      `/api/v1/sessions/${history}/messages`,
      `${base}?after=${at(100)}&before=${at(300)}`,
    ]) {
      expectIndexed(await plansOf(t, capture, path, false), true);
    }
    for (const path of [
      `${base}?limit=100`,
      `${base}?after=${at(4_500)}&limit=100`,
      `${base}?before=${at(4_500)}&limit=100`,
      `${base}?order=desc&limit=50`,
      `${base}/${at(2_000)}`,
      '/api/v1/sessions',
      '/api/v1/sessions?archived=true',
      `/api/v1/sessions?cursor=${cursor}`,
      `/api/v1/sessions/${deep}`,
      // The branch: its tree in one index scan, then the page by id.
      `/api/v1/sessions/${branch}/messages?branch=current&limit=50`,
    ]) {
      const plans = await plansOf(t, capture, path, false);
      for (const sql of plans.keys()) if (/COUNT\(\*\)/.test(sql)) plans.delete(sql);
      expectIndexed(plans);
    }
  });

  /** The pinned list, and its count (from session_counts), each straight from an index. */
  it('serves the pinned filter, page and count, from an index', async () => {
    const plans = await plansOf(t, capture, '/api/v1/sessions?pinned=true', false);
    expect(plans.size).toBe(2);
    for (const [sql, steps] of plans) {
      expect({ sql, plan: steps.join('\n') }).toEqual({
        sql,
        plan: expect.stringMatching(
          onPostgres
            ? /Index (Only )?Scan[^]*Index Cond: .*pinned/
            : /USING (COVERING )?INDEX \S+ \(owner_id=\? AND archived=\? AND pinned=\?/,
        ),
      });
    }
  });
});
