import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { ApiKeysService } from '../src/auth/api-keys.service';
import { freshDatabaseUrl } from './helpers/database-target';
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
      const get = (key: string) =>
        request(t.http).get('/api/v1/sessions').set('Authorization', `Bearer ${key}`);
      for (let i = 0; i < 3; i++) expect((await get(alice)).status).toBe(200);
      expect((await get(alice)).status).toBe(429);
      const other = await get(bob);
      expect(other.status).toBe(200);
      expectRateHeaders(other, 3, 2);
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
      const { spawnSync } = await import('node:child_process');
      keys = urls.map((url) => {
        const out = spawnSync(
          process.execPath,
          [
            'node_modules/ts-node/dist/bin.js',
            '--transpile-only',
            'src/cli/apikey.ts',
            'create',
            '--owner',
            owner,
          ],
          {
            cwd: `${__dirname}/..`,
            env: { PATH: process.env.PATH ?? '', DATABASE_URL: url },
            encoding: 'utf8',
          },
        );
        return out.stdout.trim().split('\n').at(-1)!;
      });
    }, 60_000);
    afterAll(() => Promise.all(servers.map((s) => s.stop())));

    it('enforces one budget across both processes', async () => {
      const statuses: number[] = [];
      for (let i = 0; i < limit + 4; i++) {
        const server = i % 2;
        const res = await fetch(`${servers[server].base}/api/v1/sessions`, {
          headers: { Authorization: `Bearer ${keys[server]}` },
        });
        statuses.push(res.status);
      }
      expect(statuses.filter((s) => s === 200)).toHaveLength(limit);
      expect(statuses.slice(limit)).toEqual([429, 429, 429, 429]);
    }, 30_000);
  });
});
