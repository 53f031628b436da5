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
        detail: expect.stringMatching(/^Not ready \(database: /),
        instance: '/health/ready',
      });
      const live = await request(t.http).get('/health/live');
      expect(live.status).toBe(200);
    });
  });
});
