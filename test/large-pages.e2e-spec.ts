import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http, { type IncomingHttpHeaders } from 'node:http';
import request from 'supertest';
import { isoTimestamp } from '../src/common/fields/timestamps';
import { MessageBody as Message, messagesOf } from './helpers/api';
import { freshDatabaseUrl, onPostgres } from './helpers/database-target';
import { memoryOf, worstLatency } from './helpers/probes';
import { RunningServer, startServer } from './helpers/server-process';
import { createTestApp, resetDatabase, TestApp } from './helpers/test-app';

interface ListQuery {
  limit: number;
  skip?: number;
  after?: number;
  before?: number;
  order?: 'asc' | 'desc';
}

/** Text that needs every kind of JSON escape, several UTF-8 widths, and the line separators. */
function text(seed: number, length: number): string {
  const piece = `${seed}: "quoted" back\\slash\ttab\r\n</script> ü € 😀 \u2028\u2029\u0001 `;
  return piece.repeat(Math.ceil(length / piece.length)).slice(0, length);
}

/** The page the contract describes, worked out from the whole history (oldest first). */
function expectedPage(
  sessionId: string,
  all: Message[],
  query: ListQuery,
): { body: string; total: string; link: string | undefined } {
  const order = query.order ?? 'asc';
  const list = order === 'desc' ? [...all].reverse() : all;
  const start = query.after === undefined ? 0 : list.findIndex((m) => m.id === query.after) + 1;
  const end =
    query.before === undefined ? list.length : list.findIndex((m) => m.id === query.before);
  const between = list.slice(start, end);
  const items =
    query.before !== undefined && query.after === undefined
      ? between.slice(Math.max(0, between.length - query.limit))
      : between.slice(query.skip ?? 0, (query.skip ?? 0) + query.limit);
  const next = new URLSearchParams({
    after: String(items.at(-1)?.id),
    ...(query.before === undefined ? {} : { before: String(query.before) }),
    limit: String(query.limit),
    order,
  });
  return {
    body: JSON.stringify(items),
    total: String(all.length),
    link:
      items.length === query.limit
        ? `<${messagesOf(sessionId)}?${next.toString()}>; rel="next"`
        : undefined,
  };
}

const queryString = (query: ListQuery) =>
  new URLSearchParams(
    Object.entries(query).map(([k, v]): [string, string] => [k, String(v)]),
  ).toString();

/** A GET read by hand: the status and headers, then the body as far as it came. */
function rawGet(
  port: number,
  path: string,
  onData?: (received: number, abort: () => void) => void,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string; complete: boolean }> {
  return new Promise((resolve, reject) => {
    let responded = false;
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      responded = true;
      const chunks: Buffer[] = [];
      let received = 0;
      const done = () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
          complete: res.complete,
        });
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        received += chunk.length;
        onData?.(received, () => req.destroy());
      });
      res.on('error', () => undefined);
      res.on('close', done);
    });
    req.on('error', (error) => {
      if (!responded) reject(error);
    });
  });
}

/**
 * A page whose messages are too large to hold at once is streamed (chunked, no Content-Length):
 * these prove it is byte for byte what `JSON.stringify` of the page would be, with the contract's
 * headers, for every way of paging; that a failure after the first byte cuts the connection; and
 * that a client leaving early stops the reading.
 */
describe('Large message pages (e2e)', () => {
  let t: TestApp;
  let port: number;
  let sessionId: string;
  let all: Message[];

  async function history(id: string): Promise<Message[]> {
    const rows: Record<string, unknown>[] = await t.db.read((m) =>
      m.query(
        t.db.sql(
          `SELECT "id", "session_id", "timestamp", "role", "content", "metadata", "parent_id", "status", "generation"
           FROM "chat_messages" WHERE "session_id" = ? ORDER BY "timestamp", "id"`,
        ),
        [id],
      ),
    );
    return rows.map((row) => ({
      id: Number(row.id),
      session_id: row.session_id as string,
      timestamp: isoTimestamp(Number(row.timestamp)),
      role: row.role as string,
      content: row.content as string,
      metadata: row.metadata === null ? null : (JSON.parse(row.metadata as string) as object),
      parent_id: row.parent_id === null ? null : Number(row.parent_id),
      status: row.status as string,
      generation: row.generation === null ? null : (JSON.parse(row.generation as string) as object),
    }));
  }

  beforeAll(async () => {
    t = await createTestApp();
    await new Promise<void>((resolve) => t.http.listen(0, '127.0.0.1', resolve));
    port = (t.http.address() as { port: number }).port;
    await resetDatabase(t.db);
    sessionId = (await request(t.http).post('/api/v1/sessions').send({})).body.id;
    // 40 messages, 2.4 MB: 100,000 characters, 3-byte emoji text, small and medium ones with
    // metadata that needs escaping (a lone surrogate and a NUL are allowed in JSON strings).
    for (let i = 0; i < 40; i++) {
      const content = [text(i, 100_000), `short ${i}`, '😀'.repeat(30_000), text(i, 3_000)][i % 4];
      const metadata =
        i % 4 === 3
          ? { i, lone: '\ud800', nul: '\u0000', html: '</script>', deep: { a: [1] } }
          : null;
      const res = await request(t.http)
        .post(messagesOf(sessionId))
        .send({ content, metadata, role: i % 2 ? 'assistant' : 'user' });
      expect(res.status).toBe(201);
    }
    all = await history(sessionId);
    expect(all).toHaveLength(40);
  }, 60_000);
  afterAll(() => t.close());
  afterEach(() => jest.restoreAllMocks());

  const at = (n: number) => all[n].id;

  it.each<[string, () => ListQuery]>([
    ['the first page', () => ({ limit: 25 })],
    ['the whole history', () => ({ limit: 1000 })],
    ['newest first', () => ({ limit: 25, order: 'desc' })],
    ['a skip', () => ({ limit: 25, skip: 7 })],
    ['a short last page by skip', () => ({ limit: 25, skip: 20 })],
    ['after a cursor', () => ({ limit: 25, after: at(5) })],
    ['before a cursor', () => ({ limit: 25, before: at(35) })],
    ['between two cursors', () => ({ limit: 25, after: at(3), before: at(38) })],
    ['newest first after a cursor', () => ({ limit: 25, order: 'desc', after: at(36) })],
    ['newest first before a cursor', () => ({ limit: 25, order: 'desc', before: at(4) })],
    [
      'newest first between cursors',
      () => ({ limit: 20, order: 'desc', after: at(30), before: at(2) }),
    ],
  ])('streams %s byte for byte, with X-Total-Count and Link', async (_, makeQuery) => {
    const query = makeQuery();
    const res = await request(t.http).get(`${messagesOf(sessionId)}?${queryString(query)}`);
    const expected = expectedPage(sessionId, all, query);
    expect({
      status: res.status,
      type: res.headers['content-type'],
      length: res.headers['content-length'],
      encoding: res.headers['transfer-encoding'],
      total: res.headers['x-total-count'],
      link: res.headers.link,
    }).toEqual({
      status: 200,
      type: 'application/json; charset=utf-8',
      length: undefined,
      encoding: 'chunked',
      total: expected.total,
      link: expected.link,
    });
    expect(res.text.length).toBe(expected.body.length);
    expect(res.text === expected.body).toBe(true);
  });

  it('answers a page of small messages whole, as before (one piece with a Content-Length)', async () => {
    const query = { limit: 1, skip: 1 };
    const res = await request(t.http).get(`${messagesOf(sessionId)}?${queryString(query)}`);
    const expected = expectedPage(sessionId, all, query);
    expect({
      status: res.status,
      length: res.headers['content-length'],
      link: res.headers.link,
      body: res.text,
    }).toEqual({
      status: 200,
      length: String(Buffer.byteLength(expected.body)),
      link: expected.link,
      body: expected.body,
    });
  });

  it('answers a page that fits in one chunk whole, read by its range (Content-Length, no chunks)', async () => {
    const reads = jest.spyOn(t.db, 'read');
    const query = { limit: 25, skip: 30 };
    const res = await request(t.http).get(`${messagesOf(sessionId)}?${queryString(query)}`);
    const expected = expectedPage(sessionId, all, query);
    expect({
      status: res.status,
      length: res.headers['content-length'],
      total: res.headers['x-total-count'],
      link: res.headers.link,
      reads: reads.mock.calls.length,
    }).toEqual({
      status: 200,
      length: String(Buffer.byteLength(expected.body)),
      total: '40',
      link: undefined,
      reads: 1,
    });
    expect(res.text.length).toBeGreaterThan(400_000);
    expect(res.text === expected.body).toBe(true);
  });

  it('serves 700 small messages from the outline and the 2 large ones around them by range', async () => {
    const other = (await request(t.http).post('/api/v1/sessions').send({})).body.id as string;
    await t.db.write(async (m) => {
      await m.query(
        t.db.sql(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 700)
           INSERT INTO "chat_messages" ("session_id", "timestamp", "role", "content")
           SELECT ?, i, 'assistant', ? || CAST(i AS TEXT) FROM n`),
        [other, text(0, 1_700)],
      );
      await m.query(t.db.sql(`UPDATE "sessions" SET "message_count" = 700 WHERE "id" = ?`), [
        other,
      ]);
    });
    for (const content of [text(1, 100_000), text(2, 90_000)]) {
      expect((await request(t.http).post(messagesOf(other)).send({ content })).status).toBe(201);
    }
    const whole = await history(other);
    const reads = jest.spyOn(t.db, 'read');
    for (const query of [{ limit: 1000 }, { limit: 1000, order: 'desc' as const }]) {
      reads.mockClear();
      const res = await request(t.http).get(`${messagesOf(other)}?${queryString(query)}`);
      const expected = expectedPage(other, whole, query);
      expect({
        status: res.status,
        total: res.headers['x-total-count'],
        link: res.headers.link,
      }).toEqual({ status: 200, total: '702', link: undefined });
      expect(res.headers['transfer-encoding']).toBe('chunked');
      expect(res.text === expected.body).toBe(true);
      // The page read, then one range: the other ~1 MiB chunk came whole from the outline.
      expect(reads).toHaveBeenCalledTimes(2);
    }
  });

  it('cuts the connection when a read fails after the first byte: never a short body that looks whole', async () => {
    const read = t.db.read.bind(t.db);
    let reads = 0;
    jest.spyOn(t.db, 'read').mockImplementation((work) => {
      // 1: the page's outline; 2: its first chunk; 3: the second chunk.
      if (++reads === 3) return Promise.reject(new Error('injected failure'));
      return read(work);
    });
    const expected = expectedPage(sessionId, all, { limit: 1000 });
    const res = await rawGet(port, `${messagesOf(sessionId)}?limit=1000`);
    expect({ status: res.status, complete: res.complete }).toEqual({
      status: 200,
      complete: false,
    });
    expect(res.body.length).toBeGreaterThan(0);
    expect(res.body.length).toBeLessThan(expected.body.length);
    expect(expected.body.startsWith(res.body)).toBe(true);
    expect(() => JSON.parse(res.body) as unknown).toThrow();
  });

  it('answers a problem document, without the page headers, when the first chunk cannot be read', async () => {
    const read = t.db.read.bind(t.db);
    let reads = 0;
    jest.spyOn(t.db, 'read').mockImplementation((work) => {
      if (++reads === 2) return Promise.reject(new Error('injected failure'));
      return read(work);
    });
    const res = await request(t.http).get(`${messagesOf(sessionId)}?limit=1000`);
    expect({ status: res.status, body: res.body, total: res.headers['x-total-count'] }).toEqual({
      status: 500,
      body: {
        type: 'about:blank',
        title: 'Internal Server Error',
        status: 500,
        detail: 'An unexpected error occurred.',
        instance: messagesOf(sessionId),
      },
      total: undefined,
    });
  });

  it('stops reading when the client goes away, and serves the next requests', async () => {
    const reads = jest.spyOn(t.db, 'read');
    const path = `${messagesOf(sessionId)}?limit=1000`;
    expect((await rawGet(port, path)).complete).toBe(true);
    const whole = reads.mock.calls.length;
    reads.mockClear();
    const res = await rawGet(port, path, (received, abort) => abort());
    expect(res.complete).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 200));
    // The outline and a chunk or so, not every chunk of the 2.4 MB page.
    expect({ whole, aborted: reads.mock.calls.length }).toEqual({
      whole: expect.any(Number),
      aborted: expect.any(Number),
    });
    expect(whole).toBeGreaterThanOrEqual(4);
    expect(reads.mock.calls.length).toBeLessThan(whole);
    reads.mockRestore();
    // Nothing is held: a write and the whole page go through.
    const posted = await request(t.http).post(messagesOf(sessionId)).send({ content: 'after' });
    expect(posted.status).toBe(201);
    const page = await request(t.http).get(`${messagesOf(sessionId)}?limit=40`);
    expect(page.text === expectedPage(sessionId, all, { limit: 40 }).body).toBe(true);
    expect(page.headers['x-total-count']).toBe('41');
    expect(
      (await request(t.http).delete(`${messagesOf(sessionId)}/${posted.body.id}`)).status,
    ).toBe(204);
  });
});

/**
 * The case that used to take the process down: 1000 messages of 100,000 characters asked for in one
 * page (~95 MiB of JSON; it used to grow the built server's RSS by ~350 MiB per request and stall
 * the event loop for a second). Figures are printed; the bounds asserted are generous.
 */
describe('Large message pages: 1000 x 100,000 characters (e2e, built server)', () => {
  const COUNT = 1000;
  const LENGTH = 100_000;
  let server: RunningServer;
  let path: string;
  /** The messages as stored, in the page's order; `seed` names each one's content. */
  let stored: { id: number; timestamp: string; seed: number }[] = [];
  let sessionId: string;

  // Each message its own: a hex run (incompressible for PostgreSQL's TOAST, one long word for the
  // search index, quick to seed) around a piece that needs escaping.
  const contentOf = (i: number) =>
    `${i} "é😀"\n ${createHash('sha512')
      .update(String(i))
      .digest('hex')
      .repeat(LENGTH / 128)}`.slice(0, LENGTH);

  /** The SHA-256 of the body the page must be: `JSON.stringify` of the 1000 messages. */
  function expectedDigest(): string {
    const hash = createHash('sha256');
    stored.forEach(({ id, timestamp, seed }, i) =>
      hash.update(
        (i === 0 ? '[' : ',') +
          JSON.stringify({
            id,
            session_id: sessionId,
            timestamp,
            role: 'user',
            content: contentOf(seed),
            metadata: null,
            // Appends to one session queue on its row: each follows the one stored before it.
            parent_id: i === 0 ? null : stored[i - 1].id,
            status: 'complete',
            generation: null,
          }),
      ),
    );
    return hash.update(']').digest('hex');
  }

  async function fetchPage(abortAfter?: number) {
    const controller = new AbortController();
    const res = await fetch(`${server.base}${path}`, { signal: controller.signal });
    const hash = createHash('sha256');
    let bytes = 0;
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        hash.update(chunk);
        bytes += chunk.length;
        if (abortAfter !== undefined && bytes > abortAfter) controller.abort();
      }
    } catch (error) {
      if (abortAfter === undefined) throw error;
    }
    return {
      status: res.status,
      total: res.headers.get('x-total-count'),
      link: res.headers.get('link'),
      bytes,
      digest: hash.digest('hex'),
    };
  }

  beforeAll(async () => {
    server = await startServer({ DATABASE_URL: await freshDatabaseUrl('history-large') });
    const created = await fetch(`${server.base}/api/v1/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    sessionId = ((await created.json()) as { id: string }).id;
    path = `${messagesOf(sessionId)}?limit=${COUNT}`;
    let next = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < COUNT) {
          const seed = next++;
          const res = await fetch(`${server.base}${messagesOf(sessionId)}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ content: contentOf(seed) }),
          });
          expect(res.status).toBe(201);
          const { id, timestamp } = (await res.json()) as { id: number; timestamp: string };
          stored.push({ id, timestamp, seed });
        }
      }),
    );
    // The appends raced: the page is in (timestamp, id) order (ISO strings sort as times do).
    stored = stored.sort((a, b) =>
      a.timestamp === b.timestamp ? a.id - b.id : a.timestamp < b.timestamp ? -1 : 1,
    );
  }, 180_000);
  afterAll(() => server.stop());

  it("streams it whole and correct while the server's memory stays flat and GET / keeps answering", async () => {
    const pid = server.child.pid!;
    await fetchPage(); // warm-up
    const before = memoryOf(pid);
    // Resets VmHWM to the current RSS, so the peak read afterwards is this request's.
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    const t0 = performance.now();
    const page = fetchPage();
    const worst = await worstLatency(server.base, page);
    const res = await page;
    const ms = performance.now() - t0;
    const after = memoryOf(pid);
    process.stdout.write(
      `GET ${COUNT} x ${LENGTH} characters (${(res.bytes / 2 ** 20).toFixed(1)} MiB) on ${onPostgres ? 'PostgreSQL' : 'SQLite'}: ` +
        `${ms.toFixed(0)} ms; worst GET / ${worst.toFixed(0)} ms; RSS ${before.rss.toFixed(0)} MiB, ` +
        `peak ${after.peak.toFixed(0)} MiB (+${(after.peak - before.rss).toFixed(0)})\n`,
    );
    expect(res).toEqual({
      status: 200,
      total: String(COUNT),
      link: `<${messagesOf(sessionId)}?after=${stored[COUNT - 1].id}&limit=${COUNT}&order=asc>; rel="next"`,
      bytes: expect.any(Number),
      digest: expectedDigest(),
    });
    expect(after.peak - before.rss).toBeLessThan(128);
    expect(worst).toBeLessThan(500);
  }, 120_000);

  it('survives clients that leave mid-stream, and holds nothing for them', async () => {
    const pid = server.child.pid!;
    const left = await Promise.all([1, 2, 3, 4].map((n) => fetchPage(n * 5 * 2 ** 20)));
    for (const res of left) expect(res.bytes).toBeLessThan(50 * 2 ** 20);
    const before = memoryOf(pid);
    const posted = await fetch(`${server.base}${messagesOf(sessionId)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ content: 'one more' }),
    });
    expect(posted.status).toBe(201);
    const { id } = (await posted.json()) as { id: number };
    const res = await fetchPage();
    expect({ status: res.status, digest: res.digest }).toEqual({
      status: 200,
      digest: expectedDigest(),
    });
    expect(
      (await fetch(`${server.base}${messagesOf(sessionId)}/${id}`, { method: 'DELETE' })).status,
    ).toBe(204);
    expect(memoryOf(pid).rss - before.rss).toBeLessThan(128);
  }, 120_000);
});
