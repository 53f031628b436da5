import Redis from 'ioredis';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { promisify } from 'node:util';
import request from 'supertest';
import { ApiKeysService } from '../src/auth/api-keys.service';
import { AUTH_FAILURES_PER_MINUTE } from '../src/auth/auth-failures';
import { bearer } from './helpers/api';
import { freshDatabaseUrl, onPostgres } from './helpers/database-target';
import { rawRequest } from './helpers/raw-http';
import { startServer } from './helpers/server-process';
import { createTestApp, TestApp } from './helpers/test-app';

function expectRateHeaders(
  res: { headers: Record<string, unknown> },
  limit: number,
  remaining: number,
): void {
  expect(res.headers['ratelimit-limit']).toBe(String(limit));
  expect(res.headers['ratelimit-remaining']).toBe(String(remaining));
  expect(Number(res.headers['ratelimit-reset'])).toBeGreaterThan(0);
}

describe('Rate limits (e2e)', () => {
  describe('per client address with AUTH_MODE=none', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await createTestApp({ AUTH_MODE: 'none', RATE_LIMIT_PER_MINUTE: '5' });
    });
    afterAll(() => t.close());

    it('counts every route against one budget, then answers 429 with Retry-After', async () => {
      const paths = [
        '/api/v1/sessions',
        '/',
        '/api/v1/sessions',
        '/health/live',
        '/api/v1/sessions/x',
      ];
      for (const [i, path] of paths.entries()) {
        const res = await request(t.http).get(path);
        expect(res.status).not.toBe(429);
        expectRateHeaders(res, 5, 4 - i);
      }
      const limited = await request(t.http).post('/api/v1/sessions').send({});
      expect(limited.status).toBe(429);
      expect(limited.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(limited.body).toEqual({
        type: 'about:blank',
        title: 'Too Many Requests',
        status: 429,
        detail: expect.stringContaining('5 requests per minute'),
        instance: '/api/v1/sessions',
      });
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      expectRateHeaders(limited, 5, 0);
      // The refused write changed nothing.
      const rows: unknown[] = await t.db.read((m) => m.query('SELECT "id" FROM "sessions"'));
      expect(rows).toEqual([]);
    });
  });

  describe('per owner with AUTH_MODE=api-key', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await createTestApp({ AUTH_MODE: 'api-key', RATE_LIMIT_PER_MINUTE: '3' });
    });
    afterAll(() => t.close());

    it("limits one owner without touching another's budget", async () => {
      const keys = t.app.get(ApiKeysService);
      const alice = (await keys.create('alice')).key;
      const bob = (await keys.create('bob')).key;
      const get = (key: string) => request(t.http).get('/api/v1/sessions').set(bearer(key));
      for (let i = 0; i < 3; i++) expect((await get(alice)).status).toBe(200);
      expect((await get(alice)).status).toBe(429);
      const other = await get(bob);
      expect(other.status).toBe(200);
      expectRateHeaders(other, 3, 2);
    });
  });

  describe('failed authentications, per client address', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await createTestApp({ AUTH_MODE: 'api-key', RATE_LIMIT_PER_MINUTE: '600' });
    });
    afterAll(() => t.close());

    it('answers 401 with RateLimit headers, then 429 to anything but a valid key', async () => {
      const keys = t.app.get(ApiKeysService);
      const good = (await keys.create('alice')).key;
      const lookups = jest.spyOn(keys, 'authenticate');
      const bad = () => `csk_${randomBytes(8).toString('hex')}_${'A'.repeat(43)}`;
      const get = (key?: string) => {
        const call = request(t.http).get('/api/v1/sessions');
        return key === undefined ? call : call.set(bearer(key));
      };
      for (let i = 0; i < AUTH_FAILURES_PER_MINUTE; i++) {
        const res = await (i % 5 === 4 ? get() : get(bad()));
        expect(res.status).toBe(401);
        expectRateHeaders(res, AUTH_FAILURES_PER_MINUTE, AUTH_FAILURES_PER_MINUTE - 1 - i);
      }
      const limited = await get(bad());
      expect(limited.status).toBe(429);
      expect(limited.body).toEqual({
        type: 'about:blank',
        title: 'Too Many Requests',
        status: 429,
        detail: expect.stringContaining('failed authentications'),
        instance: '/api/v1/sessions',
      });
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      expectRateHeaders(limited, AUTH_FAILURES_PER_MINUTE, 0);
      const looked = lookups.mock.calls.length;
      // Over the limit, anything that is not shaped like a key costs no lookup…
      for (let i = 0; i < 30; i++) {
        expect((await (i % 2 ? get() : get('not-a-key'))).status).toBe(429);
      }
      expect(lookups.mock.calls.length).toBe(looked);
      // …a wrong key is still refused, uncounted, and a valid key from the same (perhaps shared)
      // address still gets in.
      expect((await get(bad())).status).toBe(429);
      expect((await get(good)).status).toBe(200);
      // Routes open to everyone stay open.
      expect((await request(t.http).get('/health/live')).status).toBe(200);
    });
  });

  describe('RATE_LIMIT_PER_MINUTE=0', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await createTestApp({ AUTH_MODE: 'none', RATE_LIMIT_PER_MINUTE: '0' });
    });
    afterAll(() => t.close());

    it('disables limiting and its headers', async () => {
      for (let i = 0; i < 20; i++) {
        const res = await request(t.http).get('/api/v1/sessions');
        expect(res.status).toBe(200);
        expect(res.headers['ratelimit-limit']).toBeUndefined();
      }
    });
  });

  describe('two processes sharing counters through Redis', () => {
    const limit = 10;
    let servers: Awaited<ReturnType<typeof startServer>>[] = [];
    let keys: string[] = [];
    // Jest may run this file on SQLite and on PostgreSQL at once, against the same Redis: each run
    // connects from a loopback address of its own, so their per-address counts never mix.
    const localAddress = onPostgres ? '127.0.0.3' : '127.0.0.2';
    const agent = new http.Agent({ keepAlive: true, localAddress });
    const get = (server: number, authorization: string) =>
      rawRequest(agent, Number(new URL(servers[server].base).port), {
        method: 'GET',
        path: '/api/v1/sessions',
        headers: { Authorization: authorization },
      });
    const badKey = `Bearer csk_0123456789abcdef_${'B'.repeat(43)}`;
    /** What the servers logged, shown when an assertion fails (a Redis warning says why). */
    const logs = () => servers.map((s, i) => `server ${i}: ${s.stderr()}`).join('\n');
    const clearFailures = async () => {
      const redis = new Redis('redis://127.0.0.1:6379');
      const stale = await redis.keys(`{auth-failures:${localAddress}:*`);
      if (stale.length > 0) await redis.del(...stale);
      redis.disconnect();
    };

    beforeAll(async () => {
      // Two processes need a database both can open: PostgreSQL, or on SQLite two files (the
      // limit lives in Redis, not in the database, so each process may have its own store).
      const env = (url: string) => ({
        DATABASE_URL: url,
        AUTH_MODE: 'api-key',
        RATE_LIMIT_PER_MINUTE: String(limit),
        REDIS_URL: 'redis://127.0.0.1:6379',
      });
      const urls = [await freshDatabaseUrl('redis-a'), await freshDatabaseUrl('redis-b')];
      servers = await Promise.all(urls.map((url) => startServer(env(url))));
      // A fresh owner per run: counters of earlier runs in the shared Redis cannot interfere.
      const owner = `limited-${randomBytes(4).toString('hex')}`;
      // Asynchronously: a spawnSync would block this process's event loop for seconds, so its HTTP
      // client could not notice that the servers closed the idle keep-alive connection of the
      // readiness probe, and would send the first request down it ("other side closed").
      const execFile = promisify((await import('node:child_process')).execFile);
      keys = await Promise.all(
        urls.map(async (url) => {
          const { stdout } = await execFile(
            process.execPath,
            [
              'node_modules/ts-node/dist/bin.js',
              '--transpile-only',
              'src/cli/apikey.ts',
              'create',
              '--owner',
              owner,
            ],
            { cwd: `${__dirname}/..`, env: { PATH: process.env.PATH ?? '', DATABASE_URL: url } },
          );
          return stdout.trim().split('\n').at(-1)!;
        }),
      );
    }, 60_000);
    afterAll(async () => {
      agent.destroy();
      await Promise.all(servers.map((s) => s.stop()));
    });

    it('keeps one count in Redis for both processes', async () => {
      await clearFailures();
      const remaining: unknown[] = [];
      for (const server of [0, 1])
        remaining.push((await get(server, badKey)).headers['ratelimit-remaining']);
      // Counted in Redis, one count shared by both (a process failing open would answer 20).
      expect({ remaining, logs: logs() }).toEqual({
        remaining: [String(AUTH_FAILURES_PER_MINUTE - 1), String(AUTH_FAILURES_PER_MINUTE - 2)],
        logs: expect.not.stringContaining('Redis unavailable'),
      });
    });

    it('enforces one budget across both processes', async () => {
      const statuses: number[] = [];
      for (let i = 0; i < limit + 4; i++) {
        const server = i % 2;
        statuses.push((await get(server, `Bearer ${keys[server]}`)).status);
      }
      expect({ statuses, logs: logs() }).toEqual({
        statuses: [...Array<number>(limit).fill(200), 429, 429, 429, 429],
        logs: expect.not.stringContaining('Redis unavailable'),
      });
    }, 30_000);

    it('counts failed authentications across both processes', async () => {
      // The count lives in the shared Redis: start from none for this address (an earlier run may
      // have counted some within the minute).
      await clearFailures();
      const statuses: number[] = [];
      for (let i = 0; i < AUTH_FAILURES_PER_MINUTE + 2; i++)
        statuses.push((await get(i % 2, badKey)).status);
      expect({ statuses, logs: logs() }).toEqual({
        statuses: [...Array<number>(AUTH_FAILURES_PER_MINUTE).fill(401), 429, 429],
        logs: expect.not.stringContaining('Redis unavailable'),
      });
      // Each process refuses the address on its own now, before looking any key up.
      for (const server of [0, 1])
        expect((await get(server, `Bearer ${keys[0]}`)).status).toBe(429);
    }, 30_000);
  });
});
