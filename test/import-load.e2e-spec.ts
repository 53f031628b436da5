import { spawnSync } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import request from 'supertest';
import { ApiKeysService } from '../src/auth/api-keys.service';
import { IMPORT_IDLE_MS, IMPORT_RETRY_AFTER_S } from '../src/import/import-intake';
import { freshDatabaseUrl, onPostgres } from './helpers/database-target';
import { memoryOf, worstLatency } from './helpers/probes';
import { RunningServer, startServer } from './helpers/server-process';
import { createTestApp, TestApp } from './helpers/test-app';

const SESSIONS = 3000;
const MESSAGES = 20;

/** NDJSON of `sessions` sessions with MESSAGES messages of about 250 characters each (~8 KB each). */
function largeExport(sessions = SESSIONS): string {
  const words = ['harbour', 'tram', 'pastel', 'tile', 'river', 'castle', 'fado', 'sardine'];
  const lines: string[] = [];
  let id = 10_000_000;
  for (let s = 0; s < sessions; s++) {
    const sessionId = `00000000-0000-4000-8000-${String(s).padStart(12, '0')}`;
    const start = Date.UTC(2024, 0, 1) + s * 3_600_000;
    const messages = Array.from({ length: MESSAGES }, (_, m) => ({
      id: id++,
      session_id: sessionId,
      timestamp: new Date(start + m * 1000).toISOString(),
      role: m % 2 ? 'assistant' : 'user',
      content: Array.from({ length: 40 }, (_, w) => words[(s + m + w) % words.length]).join(' '),
      metadata: null,
    }));
    lines.push(
      JSON.stringify({
        session: {
          id: sessionId,
          name: `Imported conversation ${s}`,
          created_at: new Date(start).toISOString(),
          last_updated_at: messages[MESSAGES - 1].timestamp,
          llm_model_name: 'gpt-x',
          rag_document_ids: null,
          metadata_tags: null,
          message_count: MESSAGES,
          archived: false,
          pinned: false,
        },
        messages,
      }),
    );
  }
  return `${lines.join('\n')}\n`;
}

interface Sample {
  start: number;
  ms: number;
  end: number;
  total?: number;
}

/**
 * While a ~24 MB import runs (in one transaction), other requests keep being answered: reads at
 * once (on SQLite they run on the main connection while the import writes on its own; PostgreSQL
 * runs them side by side), and they never see the import half done. On SQLite, writes wait for the
 * import's commit: SQLite has a single writer.
 */
describe('A large import does not block other requests (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    // A database file: an in-memory SQLite database cannot be opened by a second connection.
    t = await createTestApp({ DATABASE_URL: await freshDatabaseUrl('import-load') });
  });
  afterAll(() => t.close());

  it('answers reads throughout, shows all or nothing of the import, and stores every write', async () => {
    const existing = (await request(t.http).post('/api/v1/sessions').send({ name: 'existing' }))
      .body.id as string;
    await request(t.http)
      .post(`/api/v1/sessions/${existing}/messages`)
      .send({ content: 'tram ride' });
    const body = largeExport();

    let finished = 0;
    const started = performance.now();
    const importing = request(t.http)
      .post('/api/v1/import')
      .set('Content-Type', 'application/x-ndjson')
      .send(body)
      .then((res) => {
        finished = performance.now();
        return res;
      });

    const reads: Sample[] = [];
    const writes: { status: number }[] = [];
    const timed = async (path: string): Promise<Sample> => {
      const t0 = performance.now();
      const res = await request(t.http).get(path);
      expect(res.status).toBe(200);
      const total = res.headers['x-total-count'] as string | undefined;
      return {
        start: t0,
        ms: performance.now() - t0,
        end: performance.now(),
        total: total ? Number(total) : undefined,
      };
    };
    const reader = async () => {
      while (!finished) {
        reads.push(await timed('/api/v1/sessions?archived=any&limit=1'));
        reads.push(await timed('/api/v1/search?q=tram'));
        await sleep(5);
      }
    };
    const writer = async () => {
      while (!finished) {
        const res = await request(t.http)
          .post(`/api/v1/sessions/${existing}/messages`)
          .send({ content: 'written during the import' });
        writes.push({ status: res.status });
        await sleep(20);
      }
    };
    await Promise.all([reader(), writer()]);
    const res = await importing;
    const duration = finished - started;

    // Every read sent while the import ran, and the longest any of them waited.
    const during = reads.filter((r) => r.start < finished);
    const longest = Math.max(...during.map((r) => r.ms));
    process.stdout.write(
      `import of ${(body.length / 2 ** 20).toFixed(1)} MiB on ${onPostgres ? 'PostgreSQL' : 'SQLite'}: ${duration.toFixed(0)} ms; ` +
        `${during.length} reads answered meanwhile, the longest in ${longest.toFixed(0)} ms; ${writes.length} writes\n`,
    );
    expect({ status: res.status, imported: res.body.imported }).toEqual({
      status: 201,
      imported: SESSIONS,
    });
    // Reads were answered all along, none held up for anything like the import's duration.
    expect(during.length).toBeGreaterThanOrEqual(5);
    expect(longest).toBeLessThan(duration / 3);
    // All or nothing: the session count is the one before the import or the one after it.
    const totals = new Set(reads.flatMap((r) => (r.total === undefined ? [] : [r.total])));
    expect([...totals].every((n) => n === 1 || n === 1 + SESSIONS)).toBe(true);
    // Every write made during the import is stored.
    expect(writes.length).toBeGreaterThan(0);
    expect(writes.every((w) => w.status === 201)).toBe(true);
    const count = await request(t.http).get(`/api/v1/sessions/${existing}`);
    expect(count.body.message_count).toBe(1 + writes.length);
    const found = await request(t.http).get('/api/v1/search').query({ q: 'castle', limit: 1 });
    expect(found.body).toHaveLength(1);
  }, 60_000);
});

/**
 * A 45 MB (inflated) gzip import against the built server: refused unauthenticated without being
 * read, and imported when authenticated, while `GET /` keeps being answered. Figures are printed;
 * the bounds asserted are generous (a shared CI machine), the figures are the point.
 */
describe('A 45 MB gzip import, refused and accepted (e2e, built server)', () => {
  let server: RunningServer;
  let key: string;
  const sessions = 5600;
  const file = largeExport(sessions);
  const gzipped = gzipSync(file);

  beforeAll(async () => {
    const url = await freshDatabaseUrl('import-gzip');
    // No rate limit: the probe sends GET / far more often than 600 times a minute.
    server = await startServer({
      DATABASE_URL: url,
      AUTH_MODE: 'api-key',
      RATE_LIMIT_PER_MINUTE: '0',
    });
    const out = spawnSync(
      process.execPath,
      [
        'node_modules/ts-node/dist/bin.js',
        '--transpile-only',
        'src/cli/apikey.ts',
        'create',
        '--owner',
        'big',
      ],
      {
        cwd: `${__dirname}/..`,
        env: { PATH: process.env.PATH ?? '', DATABASE_URL: url },
        encoding: 'utf8',
      },
    );
    key = out.stdout.trim().split('\n').at(-1)!;
  }, 60_000);
  afterAll(() => server.stop());

  const post = (headers: Record<string, string>) =>
    fetch(`${server.base}/api/v1/import`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-ndjson', 'Content-Encoding': 'gzip', ...headers },
      body: gzipped,
    });

  it('answers an unauthenticated one 401 at once, reading nothing', async () => {
    const pid = server.child.pid!;
    const before = memoryOf(pid);
    const t0 = performance.now();
    const refused = post({});
    const worst = await worstLatency(server.base, refused);
    const res = await refused;
    const ms = performance.now() - t0;
    const after = memoryOf(pid);
    process.stdout.write(
      `unauthenticated ${(file.length / 2 ** 20).toFixed(1)} MiB gzip import (${(gzipped.length / 2 ** 20).toFixed(2)} MiB sent): ` +
        `${res.status} in ${ms.toFixed(0)} ms; worst GET / ${worst.toFixed(0)} ms; ` +
        `RSS ${before.rss.toFixed(0)} → ${after.rss.toFixed(0)} MiB (peak ${after.peak.toFixed(0)})\n`,
    );
    expect(res.status).toBe(401);
    expect(ms).toBeLessThan(2000);
    expect(worst).toBeLessThan(500);
    expect(after.peak - before.peak).toBeLessThan(50);
  }, 60_000);

  it('imports an authenticated one while GET / keeps being answered', async () => {
    const pid = server.child.pid!;
    const before = memoryOf(pid);
    const t0 = performance.now();
    const accepted = post({ Authorization: `Bearer ${key}` });
    const worst = await worstLatency(server.base, accepted);
    const res = await accepted;
    const ms = performance.now() - t0;
    const after = memoryOf(pid);
    process.stdout.write(
      `authenticated ${(file.length / 2 ** 20).toFixed(1)} MiB gzip import on ${onPostgres ? 'PostgreSQL' : 'SQLite'}: ` +
        `${res.status} in ${ms.toFixed(0)} ms; worst GET / ${worst.toFixed(0)} ms; ` +
        `RSS ${before.rss.toFixed(0)} → ${after.rss.toFixed(0)} MiB (peak ${after.peak.toFixed(0)})\n`,
    );
    expect({
      status: res.status,
      imported: ((await res.json()) as { imported: number }).imported,
    }).toEqual({
      status: 201,
      imported: sessions,
    });
    expect(worst).toBeLessThan(1000);
    expect(after.peak - before.peak).toBeLessThan(1500);
  }, 180_000);

  it('answers 413 once more than 50 MiB has come out of the decompression', async () => {
    const bomb = gzipSync(Buffer.alloc(60 * 1024 * 1024, 0x20));
    const res = await fetch(`${server.base}/api/v1/import`, {
      method: 'POST',
      headers: {
        Authorization: `Bearer ${key}`,
        'Content-Type': 'application/json',
        'Content-Encoding': 'gzip',
      },
      body: bomb,
    });
    expect({
      status: res.status,
      detail: ((await res.json()) as { detail: string }).detail,
    }).toEqual({
      status: 413,
      detail: 'Request body exceeds the 52428800 byte limit.',
    });
  }, 60_000);
});

/** A request whose body is sent in parts, so a test decides when an import finishes arriving. */
function slowImport(port: number, key: string) {
  const req = http.request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: '/api/v1/import',
    headers: {
      Authorization: `Bearer ${key}`,
      'Content-Type': 'application/x-ndjson',
      'Transfer-Encoding': 'chunked',
    },
  });
  const answer = new Promise<{ status: number; body: string; retryAfter?: string }>(
    (resolve, reject) => {
      req.on('response', (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body, retryAfter: res.headers['retry-after'] }),
        );
      });
      req.on('error', reject);
    },
  );
  req.flushHeaders();
  return { answer, finish: () => req.end('\n') };
}

describe('Concurrent imports (e2e)', () => {
  let t: TestApp;
  let port: number;
  const keys: Record<string, string> = {};

  beforeAll(async () => {
    t = await createTestApp({ AUTH_MODE: 'api-key', RATE_LIMIT_PER_MINUTE: '0' });
    await new Promise<void>((resolve) => t.http.listen(0, '127.0.0.1', resolve));
    port = (t.http.address() as AddressInfo).port;
    for (const owner of ['alice', 'bob', 'carol']) {
      keys[owner] = (await t.app.get(ApiKeysService).create(owner)).key;
    }
  });
  afterAll(() => t.close());

  const importNow = (owner: string) =>
    request(t.http)
      .post('/api/v1/import')
      .set('Authorization', `Bearer ${keys[owner]}`)
      .set('Content-Type', 'application/x-ndjson')
      .send('\n');

  it('runs one import per owner and two in all, answering 429 / 503 with Retry-After meanwhile', async () => {
    const alice = slowImport(port, keys.alice);
    await sleep(200);
    const again = await importNow('alice');
    expect({ status: again.status, retryAfter: again.headers['retry-after'] }).toEqual({
      status: 429,
      retryAfter: String(IMPORT_RETRY_AFTER_S),
    });
    expect(again.body.detail).toMatch(/Another import of yours is still running/);

    const bob = slowImport(port, keys.bob);
    await sleep(200);
    const third = await importNow('carol');
    expect({ status: third.status, retryAfter: third.headers['retry-after'] }).toEqual({
      status: 503,
      retryAfter: String(IMPORT_RETRY_AFTER_S),
    });

    alice.finish();
    bob.finish();
    expect((await alice.answer).status).toBe(201);
    expect((await bob.answer).status).toBe(201);
    // The slots are free again once the imports have answered.
    for (const owner of ['alice', 'carol']) expect((await importNow(owner)).status).toBe(201);
  }, 30_000);

  it(
    'cuts off an upload that stops sending, and frees its slot',
    async () => {
      const stalled = slowImport(port, keys.alice);
      await sleep(200);
      expect((await importNow('alice')).status).toBe(429);
      const started = Date.now();
      const outcome = await stalled.answer.then(
        (answer) => answer.status,
        () => 'connection cut',
      );
      // The answer cannot reach a client whose connection was cut; what matters is that it ends.
      expect(['connection cut', 408]).toContain(outcome);
      expect(Date.now() - started).toBeLessThan(IMPORT_IDLE_MS + 3000);
      expect((await importNow('alice')).status).toBe(201);
    },
    IMPORT_IDLE_MS + 20_000,
  );
});
