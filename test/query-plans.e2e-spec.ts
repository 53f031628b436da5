import request from 'supertest';
import { createTestApp, TestApp } from './helpers/test-app';

interface Captured {
  sql: string;
  params: unknown[];
}

/**
 * The contract's hot queries must be served by indexes. The test records the SQL the services
 * really run for each list and lookup, then asks SQLite for the plan of each SELECT.
 */
describe('Query plans (e2e)', () => {
  let t: TestApp;
  let captured: Captured[] = [];

  beforeAll(async () => {
    t = await createTestApp();
    const runner = t.db.dataSource.driver.createQueryRunner('master');
    const query = runner.query.bind(runner) as (...args: unknown[]) => Promise<unknown>;
    jest
      .spyOn(runner, 'query')
      .mockImplementation((sql: string, params?: unknown[], ...rest: unknown[]) => {
        if (/^\s*SELECT/i.test(sql)) captured.push({ sql, params: params ?? [] });
        return query(sql, params, ...rest) as never;
      });
  });
  afterAll(() => t.close());

  async function plansOf(action: () => Promise<unknown>): Promise<Map<string, string[]>> {
    captured = [];
    await action();
    const plans = new Map<string, string[]>();
    for (const { sql, params } of captured) {
      const rows: { detail: string }[] = await t.db.read((m) =>
        m.query(`EXPLAIN QUERY PLAN ${sql}`, params),
      );
      plans.set(
        sql.replace(/\s+/g, ' '),
        rows.map((r) => r.detail),
      );
    }
    return plans;
  }

  function expectIndexed(plans: Map<string, string[]>): void {
    expect(plans.size).toBeGreaterThan(0);
    for (const [sql, steps] of plans) {
      for (const step of steps) {
        const table = /^(?:SCAN|SEARCH) (\w+)/.exec(step);
        if (table)
          expect({ sql, step }).toEqual({
            sql,
            step: expect.stringMatching(
              /USING (COVERING )?INDEX|USING INTEGER PRIMARY KEY|PRIMARY KEY/,
            ),
          });
        expect({ sql, step }).toEqual({ sql, step: expect.not.stringMatching(/TEMP B-TREE/) });
      }
    }
  }

  it('serves every list, filter and cursor query from an index, with no sort step', async () => {
    const session = (await request(t.http).post('/api/v1/sessions').send({ pinned: true })).body.id;
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push(
        (
          await request(t.http)
            .post(`/api/v1/sessions/${session}/messages`)
            .send({ content: `m${i}` })
        ).body.id,
      );
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
    ]) {
      const plans = await plansOf(async () =>
        expect((await request(t.http).get(path)).status).toBe(200),
      );
      expectIndexed(plans);
    }
  });
});
