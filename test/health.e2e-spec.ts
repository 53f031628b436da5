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
    if (t.db.dataSource.isInitialized) await t.close();
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
