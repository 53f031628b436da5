import request from 'supertest';
import { setTimeout as sleep } from 'node:timers/promises';
import { freshDatabaseUrl, onPostgres } from './helpers/database-target';
import { createTestApp, TestApp } from './helpers/test-app';

const SESSIONS = 3000;
const MESSAGES = 20;

/** NDJSON of SESSIONS sessions with MESSAGES messages of about 250 characters each (~24 MB). */
function largeExport(): string {
  const words = ['harbour', 'tram', 'pastel', 'tile', 'river', 'castle', 'fado', 'sardine'];
  const lines: string[] = [];
  let id = 10_000_000;
  for (let s = 0; s < SESSIONS; s++) {
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
