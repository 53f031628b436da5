import { Logger } from '@nestjs/common';
import request from 'supertest';
import { onPostgres } from './helpers/database-target';
import { createTestApp, TestApp } from './helpers/test-app';

describe('Health (e2e)', () => {
  let t: TestApp;

  beforeEach(async () => {
    t = await createTestApp();
  });
  afterEach(async () => {
    // Closed even when a test destroyed its database, so every shutdown hook runs (timers, the
    // PostgreSQL LISTEN connection of replies); closing the database again then fails, harmlessly.
    await t.close().catch(() => undefined);
  });

  describe('GET /health/live', () => {
    it('answers 200 while the process runs', async () => {
      const res = await request(t.http).get('/health/live');
      expect({ status: res.status, body: res.body }).toEqual({
        status: 200,
        body: { status: 'ok' },
      });
    });
  });

  describe('GET /health/ready', () => {
    it('answers 200 when the database answers', async () => {
      const res = await request(t.http).get('/health/ready/');
      const database = {
        status: 'up',
        driver: onPostgres ? 'postgres' : 'sqlite',
        latency_ms: expect.any(Number),
      };
      expect({ status: res.status, body: res.body }).toEqual({
        status: 200,
        body: { status: 'ok', info: { database }, error: {}, details: { database } },
      });
    });

    it('answers a 503 problem when the database is gone', async () => {
      await t.db.dataSource.destroy();
      const res = await request(t.http).get('/health/ready');
      expect(res.status).toBe(503);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.body).toEqual({
        type: 'about:blank',
        title: 'Service Unavailable',
        status: 503,
        detail: 'Not ready (database: down).',
        instance: '/health/ready',
      });
      const live = await request(t.http).get('/health/live');
      expect(live.status).toBe(200);
    });

    it("keeps the driver's reason (hosts, ports, paths) out of the answer and puts it in the log", async () => {
      const reason = 'connect ECONNREFUSED 10.20.30.40:5432 (/var/lib/chat/sessions.sqlite)';
      jest.spyOn(t.db, 'read').mockRejectedValue(new Error(reason));
      const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
      try {
        const first = await request(t.http).get('/health/ready');
        const second = await request(t.http).get('/health/ready');
        for (const res of [first, second]) {
          expect({ status: res.status, body: res.body }).toEqual({
            status: 503,
            body: {
              type: 'about:blank',
              title: 'Service Unavailable',
              status: 503,
              detail: 'Not ready (database: down).',
              instance: '/health/ready',
            },
          });
          expect(res.text).not.toContain('10.20.30.40');
        }
        // Logged once: a probe polled every few seconds does not repeat the same reason each time.
        const logged = warn.mock.calls.filter(([message]) => String(message).includes(reason));
        expect(logged).toEqual([[`Not ready: database is down: ${reason}`]]);
      } finally {
        jest.restoreAllMocks();
      }
    });
  });
});

describe('A burst larger than the connection pool (e2e)', () => {
  // SQLite has one connection and no pool to wait for: PostgreSQL only.
  (onPostgres ? it : it.skip)(
    'answers 503 with Retry-After to a request that waited DB_CONNECT_TIMEOUT_MS for a connection, not 500',
    async () => {
      const t = await createTestApp({ DB_POOL_SIZE: '2', DB_CONNECT_TIMEOUT_MS: '100' });
      try {
        // Both of the pool's connections, held while the request waits.
        const runners = [t.db.dataSource.createQueryRunner(), t.db.dataSource.createQueryRunner()];
        for (const runner of runners) await runner.connect();
        const error = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
        const res = await request(t.http).get('/api/v1/sessions');
        for (const runner of runners) await runner.release();
        expect({ status: res.status, retryAfter: res.headers['retry-after'] }).toEqual({
          status: 503,
          retryAfter: '5',
        });
        error.mockRestore();
        // Once the connection is free again, the same request is served.
        expect((await request(t.http).get('/api/v1/sessions')).status).toBe(200);
      } finally {
        await t.close();
      }
    },
  );
});
