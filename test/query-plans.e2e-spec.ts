import request from 'supertest';
import { onPostgres } from './helpers/database-target';
import { createTestApp, TestApp } from './helpers/test-app';

interface Captured {
  sql: string;
  params: unknown[];
}

/**
 * The contract's hot queries must be served by indexes, with no sort step. The test records the
 * SQL the services really run for each list and lookup, then asks the database for each SELECT's
 * plan: SQLite's EXPLAIN QUERY PLAN, or PostgreSQL's EXPLAIN with sequential scans, bitmap scans
 * and sorts priced out (on a table this small the planner would rightly prefer them; the question
 * is whether an index *can* serve the query in order).
 */
describe('Query plans (e2e)', () => {
  let t: TestApp;
  let captured: Captured[] = [];

  beforeAll(async () => {
    t = await createTestApp();
    const { dataSource } = t.db;
    const query = dataSource.query.bind(dataSource) as (...args: unknown[]) => Promise<unknown>;
    jest
      .spyOn(dataSource, 'query')
      .mockImplementation((sql: string, params?: unknown, ...rest: unknown[]) => {
        if (/^\s*SELECT/i.test(sql)) captured.push({ sql, params: (params as unknown[]) ?? [] });
        return query(sql, params, ...rest);
      });
  });
  afterAll(() => t.close());

  async function planOf({ sql, params }: Captured): Promise<string[]> {
    if (!onPostgres) {
      const rows: { detail: string }[] = await t.db.read((m) =>
        m.query(`EXPLAIN QUERY PLAN ${sql}`, params),
      );
      return rows.map((r) => r.detail);
    }
    return t.db.write(async (m) => {
      for (const method of ['seqscan', 'bitmapscan', 'sort'])
        await m.query(`SET LOCAL enable_${method} = off`);
      const rows: { 'QUERY PLAN': string }[] = await m.query(`EXPLAIN ${sql}`, params);
      return rows.map((r) => r['QUERY PLAN']);
    });
  }

  async function plansOf(path: string): Promise<Map<string, string[]>> {
    captured = [];
    expect((await request(t.http).get(path)).status).toBe(200);
    const plans = new Map<string, string[]>();
    for (const statement of captured)
      plans.set(statement.sql.replace(/\s+/g, ' '), await planOf(statement));
    return plans;
  }

  function expectIndexed(plans: Map<string, string[]>): void {
    expect(plans.size).toBeGreaterThan(0);
    for (const [sql, steps] of plans) {
      const plan = steps.join('\n');
      if (onPostgres) {
        expect({ sql, plan }).toEqual({ sql, plan: expect.stringMatching(/Index (Only )?Scan/) });
        expect({ sql, plan }).toEqual({ sql, plan: expect.not.stringMatching(/Seq Scan|Sort/) });
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
      expectIndexed(await plansOf(path));
    }
  });
});
