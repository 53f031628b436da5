import { Logger } from '@nestjs/common';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { REDIS_COMMAND_TIMEOUT_MS } from '../src/auth/resilient-storage';
import { type FakeRedis, type FakeRedisMode, startFakeRedis } from './helpers/fake-redis';
import { createTestApp, type TestApp } from './helpers/test-app';

/** Every answer must come well within this, whatever Redis does. */
const BOUND_MS = 1500;
const LIMIT = 5;

interface Timed {
  status: number;
  ms: number;
  limit: string | null;
  remaining: string | null;
}

describe('An unresponsive Redis (e2e)', () => {
  let redis: FakeRedis;
  let t: TestApp;
  let base: string;

  async function start(
    mode: FakeRedisMode,
    env: Record<string, string> = {},
    { waitForHandshake = true } = {},
  ): Promise<void> {
    redis = await startFakeRedis(mode);
    t = await createTestApp({
      AUTH_MODE: 'none',
      RATE_LIMIT_PER_MINUTE: String(LIMIT),
      REDIS_URL: redis.url,
      ...env,
    });
    await t.app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(t.http.address() as AddressInfo).port}`;
    // Let ioredis connect and, where the fake answers, finish its handshake (two round trips):
    // counts asked for before that fail open at once.
    if (waitForHandshake) await sleep(200 + (mode.kind === 'slow' ? 3 * mode.delayMs : 0));
  }
  afterEach(async () => {
    await t.close();
    await redis.close();
  });

  async function timed(method: string, path: string): Promise<Timed> {
    const started = Date.now();
    const res = await fetch(`${base}${path}`, {
      method,
      headers: method === 'POST' ? { 'Content-Type': 'application/json' } : {},
      body: method === 'POST' ? '{}' : undefined,
      // Without the fix these never answer; fail the test rather than hang it.
      signal: AbortSignal.timeout(5000),
    });
    await res.arrayBuffer();
    return {
      status: res.status,
      ms: Date.now() - started,
      limit: res.headers.get('ratelimit-limit'),
      remaining: res.headers.get('ratelimit-remaining'),
    };
  }

  const routes: [string, string, number][] = [
    ['GET', '/', 200],
    ['GET', '/health/live', 200],
    ['GET', '/health/ready', 200],
    ['GET', '/api/v1/sessions', 200],
    ['POST', '/api/v1/sessions', 201],
    ['GET', '/api/v1/sessions', 200],
    ['GET', '/', 200],
    ['GET', '/health/live', 200],
  ];

  for (const mode of [{ kind: 'silent' }, { kind: 'stalls' }] as const) {
    it(`answers every route within ${BOUND_MS} ms, unlimited, when Redis ${mode.kind === 'silent' ? 'accepts connections but never answers' : 'stops answering after the handshake'}`, async () => {
      await start(mode);
      const warn = jest.spyOn(Logger.prototype, 'warn');
      const results: Timed[] = [];
      for (const [method, path] of routes) results.push(await timed(method, path));

      expect(results.map((r) => r.status)).toEqual(routes.map(([, , status]) => status));
      for (const r of results) expect(r.ms).toBeLessThan(BOUND_MS);
      // Failing open: more requests than the limit pass, and none of them was counted.
      expect(results.length).toBeGreaterThan(LIMIT);
      expect(results.map((r) => [r.limit, r.remaining])).toEqual(
        results.map(() => [String(LIMIT), String(LIMIT)]),
      );
      // One warning, not one per request.
      const warnings = warn.mock.calls.filter(([m]) => String(m).startsWith('Redis unavailable'));
      expect(warnings).toHaveLength(1);
      if (mode.kind === 'stalls') expect(redis.commands).toContain('eval');
      warn.mockRestore();
    });
  }

  it('counts through a slow Redis that still answers within the timeout', async () => {
    await start({ kind: 'slow', delayMs: REDIS_COMMAND_TIMEOUT_MS / 2 });
    const results: Timed[] = [];
    for (let i = 0; i < LIMIT + 1; i++) results.push(await timed('GET', '/api/v1/sessions'));

    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 429]);
    expect(results.map((r) => r.remaining)).toEqual(['4', '3', '2', '1', '0', '0']);
    for (const r of results) {
      expect(r.ms).toBeGreaterThanOrEqual(REDIS_COMMAND_TIMEOUT_MS / 2 - 10);
      expect(r.ms).toBeLessThan(BOUND_MS);
    }
  });

  it('counts the requests that arrive while the connection to Redis is still being made', async () => {
    // Each reply is late, so ioredis's handshake is still under way when the first request comes:
    // it waits for the connection (within the timeout) rather than passing uncounted.
    await start(
      { kind: 'slow', delayMs: REDIS_COMMAND_TIMEOUT_MS / 5 },
      {},
      { waitForHandshake: false },
    );
    const results = await Promise.all([timed('GET', '/api/v1/sessions'), timed('GET', '/')]);
    expect(results.map((r) => r.remaining).sort()).toEqual([String(LIMIT - 2), String(LIMIT - 1)]);
    for (const r of results) expect(r.ms).toBeLessThan(BOUND_MS);
    expect(redis.commands.filter((c) => c === 'eval')).toHaveLength(2);
  });

  it('logs a request whose client went away before the answer as aborted, with no status', async () => {
    // Each answer waits for the slow Redis, so the client can leave before anything is sent.
    // Request lines are logged at `info` (the tests' default, `warn`, drops them unbuilt).
    await start({ kind: 'slow', delayMs: 300 }, { LOG_LEVEL: 'info' });
    const log = jest.spyOn(Logger.prototype, 'log');
    const lines = () =>
      log.mock.calls.map(([m]) => String(m)).filter((m) => m.includes(' /api/v1/sessions '));

    await expect(
      fetch(`${base}/api/v1/sessions`, { signal: AbortSignal.timeout(50) }),
    ).rejects.toThrow();
    await sleep(100);
    expect(lines()).toEqual([
      expect.stringMatching(/^GET \/api\/v1\/sessions - [\d.]+ms id=[\w-]+ \(aborted\)$/),
    ]);

    // Control: one that waits gets its real status logged.
    expect((await timed('GET', '/api/v1/sessions')).status).toBe(200);
    expect(lines()[1]).toMatch(/^GET \/api\/v1\/sessions 200 [\d.]+ms id=[\w-]+$/);
    log.mockRestore();
  });
});
