/**
 * `npm run bench:large`: search latency and export/import memory on a large store.
 *
 * 1. Seeds LARGE_SESSIONS / 10 sessions with 10 messages each straight into a fresh database with
 *    bulk inserts (after the real migrations, so the search index is built by its triggers), starts
 *    the built server on it and streams `GET /api/v1/export?archived=any`, sampling the server's RSS.
 * 2. Seeds the rest, up to LARGE_SESSIONS sessions (default 100,000, i.e. 1,000,000 messages),
 *    measures search latency for a range of queries, and exports everything again on a freshly
 *    started server: flat memory means the same peak RSS at both sizes.
 * 3. Imports the first ~45 MiB of that export (NDJSON) into an empty database on a fresh server,
 *    measuring its peak RSS, its duration, and the longest wait of requests sent meanwhile.
 *
 * Options (environment): LARGE_SESSIONS (default 100000), LARGE_DATABASE_URL (default: a SQLite
 * file in a temporary directory; postgres://… runs on PostgreSQL in a schema of its own, dropped
 * at the end), LARGE_SEARCH_ROUNDS (default 20 per query).
 * Results go to stdout, progress to stderr. Not part of `npm test`: it takes minutes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { readFileSync } from 'node:fs';
import { SEARCHES, migrate, seed } from './large-seed';
import { benchSchema, dropBenchSchemas } from './postgres';
import { killAllNow, peakRssMiB, stop, stopAll } from './processes';
import { ensureBuilt, type Server, startOurServer } from './servers';

const PER_SESSION = 10;
const SESSIONS = Number(process.env.LARGE_SESSIONS ?? 100_000);
const ROUNDS = Number(process.env.LARGE_SEARCH_ROUNDS ?? 20);
const IMPORT_BYTES = 45 * 1024 * 1024;

const started = Date.now();
function progress(line: string): void {
  const seconds = ((Date.now() - started) / 1000).toFixed(0).padStart(4);
  process.stderr.write(`[${seconds} s] ${line}\n`);
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1] ?? 0) / 1024;
}

/** Our built server on `databaseUrl`; `heapMiB` caps V8's old generation (a leak would crash it). */
async function start(databaseUrl: string, heapMiB?: number): Promise<Server> {
  const options = process.env.NODE_OPTIONS;
  if (heapMiB) process.env.NODE_OPTIONS = `--max-old-space-size=${heapMiB}`;
  try {
    return await startOurServer(databaseUrl, {
      processes: 1,
      connections: 1,
      duration: 0,
      warmup: 0,
      databaseUrl,
    });
  } finally {
    if (options === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = options;
  }
}

const HEAP_CAP_MIB = 48;

interface Streamed {
  bytes: number;
  lines: number;
  seconds: number;
  rssBefore: number;
  /** Highest RSS sampled while the first tenth of the bytes was streamed, and afterwards. */
  rssFirstTenth: number;
  rssRest: number;
  rssPeak: number;
  head: Buffer;
}

/** Streams the whole bulk export, keeping its first `keep` bytes (whole lines), sampling RSS. */
async function exportAll(server: Server, keep = 0): Promise<Streamed> {
  const pid = server.child.pid!;
  const rssBefore = rssMiB(pid);
  const t0 = performance.now();
  const res = await fetch(`${server.url}/api/v1/export?archived=any`);
  if (res.status !== 200 || !res.body) throw new Error(`export answered ${res.status}`);
  let bytes = 0;
  let lines = 0;
  const kept: Buffer[] = [];
  let keptBytes = 0;
  // The total is only known at the end: samples are kept with the byte count they were taken at.
  const samples: [number, number][] = [];
  const sampler = setInterval(() => samples.push([bytes, rssMiB(pid)]), 100);
  for await (const chunk of res.body) {
    const buffer = Buffer.from(chunk as Uint8Array);
    bytes += buffer.length;
    for (const byte of buffer) if (byte === 10) lines++;
    if (keptBytes < keep) {
      kept.push(buffer);
      keptBytes += buffer.length;
    }
  }
  clearInterval(sampler);
  let head = Buffer.concat(kept);
  if (head.length > keep) head = head.subarray(0, head.lastIndexOf(10, keep) + 1);
  const peak = (part: [number, number][]) => Math.max(0, ...part.map(([, rss]) => rss));
  return {
    bytes,
    lines,
    seconds: (performance.now() - t0) / 1000,
    rssBefore,
    rssFirstTenth: peak(samples.filter(([at]) => at <= bytes / 10)),
    rssRest: peak(samples.filter(([at]) => at > bytes / 10)),
    rssPeak: peakRssMiB(pid) ?? NaN,
    head,
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function timed(url: string): Promise<{ ms: number; status: number; hits: number }> {
  const t0 = performance.now();
  const res = await fetch(url);
  const body = (await res.json()) as unknown[];
  return { ms: performance.now() - t0, status: res.status, hits: body.length };
}

async function searchLatency(server: Server): Promise<string[]> {
  const rows: string[] = [];
  const sessionId = (
    (await (await fetch(`${server.url}/api/v1/sessions?limit=1`)).json()) as { id: string }[]
  )[0].id;
  const queries: [string, string][] = [
    ...SEARCHES.map(([label, q]): [string, string] => [label, `q=${encodeURIComponent(q)}`]),
    [
      'common word, archived=any, limit=100',
      `q=${encodeURIComponent(SEARCHES[2][1])}&archived=any&limit=100`,
    ],
    [
      'common word in one session',
      `q=${encodeURIComponent(SEARCHES[2][1])}&session_id=${sessionId}`,
    ],
  ];
  for (const [label, query] of queries) {
    const url = `${server.url}/api/v1/search?${query}`;
    for (let i = 0; i < 3; i++) await timed(url);
    const times: number[] = [];
    let hits = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const result = await timed(url);
      if (result.status !== 200) throw new Error(`${url} answered ${result.status}`);
      times.push(result.ms);
      hits = result.hits;
    }
    times.sort((a, b) => a - b);
    rows.push(
      `| ${label} | ${hits} | ${percentile(times, 50).toFixed(1)} | ${percentile(times, 95).toFixed(1)} | ${times[times.length - 1].toFixed(1)} |`,
    );
    progress(rows[rows.length - 1]);
  }
  return rows;
}

/**
 * Imports `body` (NDJSON) while polling a read, a request that needs no database and a write;
 * reports RSS, duration and the longest wait of each.
 */
async function importWhileServing(server: Server, body: Buffer): Promise<string[]> {
  const pid = server.child.pid!;
  const session = (await (
    await fetch(`${server.url}/api/v1/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    })
  ).json()) as { id: string };
  const rssBefore = rssMiB(pid);
  let importing = true;
  const waits = { read: 0, none: 0, write: 0, answered: 0 };
  const poll = async (key: 'read' | 'none' | 'write', send: () => Promise<Response>) => {
    while (importing) {
      const t0 = performance.now();
      await (await send()).arrayBuffer();
      waits[key] = Math.max(waits[key], performance.now() - t0);
      waits.answered++;
      await sleep(20);
    }
  };
  const t0 = performance.now();
  const pollers = [
    poll('read', () => fetch(`${server.url}/api/v1/sessions?limit=1`)),
    poll('none', () => fetch(`${server.url}/health/live`)),
    poll('write', () =>
      fetch(`${server.url}/api/v1/sessions/${session.id}/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"content":"written during the import"}',
      }),
    ),
  ];
  const res = await fetch(`${server.url}/api/v1/import`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-ndjson' },
    body,
  });
  const seconds = (performance.now() - t0) / 1000;
  importing = false;
  await Promise.all(pollers);
  const result = (await res.json()) as { imported?: number };
  if (res.status !== 201) {
    throw new Error(`import answered ${res.status}: ${JSON.stringify(result)}`);
  }
  return [
    `Import of ${(body.length / 2 ** 20).toFixed(1)} MiB NDJSON (${result.imported} sessions) into an empty database: ${seconds.toFixed(1)} s`,
    `  server RSS before ${rssBefore.toFixed(0)} MiB, peak ${peakRssMiB(pid)?.toFixed(0)} MiB`,
    `  ${waits.answered} other requests answered meanwhile; longest wait: ${waits.read.toFixed(0)} ms for GET /api/v1/sessions, ` +
      `${waits.none.toFixed(0)} ms for GET /health/live, ${waits.write.toFixed(0)} ms for POST …/messages`,
  ];
}

async function freshDatabase(dir: string, name: string): Promise<string> {
  const base = process.env.LARGE_DATABASE_URL;
  if (base) return benchSchema(base);
  return `sqlite:${join(dir, `${name}.sqlite`)}`;
}

async function main(): Promise<void> {
  await ensureBuilt();
  const dir = mkdtempSync(join(tmpdir(), 'chat-large-'));
  const out: string[] = [];
  try {
    const url = await freshDatabase(dir, 'store');
    await migrate(url);
    const small = Math.max(1, Math.floor(SESSIONS / 10));
    const seeding = (total: number) => (done: number) => {
      if (done % 10_000 === 0 || done === total) progress(`seeded ${done} / ${total} sessions`);
    };
    let t0 = performance.now();
    await seed(url, 0, small, PER_SESSION, seeding(small));
    const smallSeed = (performance.now() - t0) / 1000;

    let server = await start(url);
    const smallExport = await exportAll(server);
    await stop(server.child);

    t0 = performance.now();
    await seed(url, small, SESSIONS, PER_SESSION, seeding(SESSIONS));
    const largeSeed = (performance.now() - t0) / 1000 + smallSeed;
    out.push(
      `Store: ${SESSIONS} sessions, ${SESSIONS * PER_SESSION} messages (seeded in ${largeSeed.toFixed(0)} s), ${url.startsWith('sqlite:') ? 'SQLite' : 'PostgreSQL'}`,
      '',
    );

    server = await start(url);
    out.push(
      `Search latency, ${ROUNDS} sequential requests per query (default limit 20 unless noted), ms:`,
      '',
      '| query | hits | p50 | p95 | max |',
      '| --- | --- | --- | --- | --- |',
      ...(await searchLatency(server)),
      '',
    );
    await stop(server.child);

    server = await start(url);
    const largeExport = await exportAll(server, IMPORT_BYTES);
    await stop(server.child);
    server = await start(url, HEAP_CAP_MIB);
    const cappedExport = await exportAll(server);
    await stop(server.child);
    out.push(
      'Bulk export (GET /api/v1/export?archived=any, streamed to a client that discards it):',
      '',
    );
    out.push(
      '| store | lines | MiB | seconds | RSS before | highest RSS, first tenth of the bytes | highest RSS, the rest | peak RSS (VmHWM) |',
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const [label, e] of [
      [`${small} sessions / ${small * PER_SESSION} messages`, smallExport],
      [`${SESSIONS} sessions / ${SESSIONS * PER_SESSION} messages`, largeExport],
      [`the same, V8 heap capped at ${HEAP_CAP_MIB} MiB (--max-old-space-size)`, cappedExport],
    ] as const) {
      out.push(
        `| ${label} | ${e.lines} | ${(e.bytes / 2 ** 20).toFixed(0)} | ${e.seconds.toFixed(1)} | ${e.rssBefore.toFixed(0)} MiB | ${e.rssFirstTenth.toFixed(0)} MiB | ${e.rssRest.toFixed(0)} MiB | ${e.rssPeak.toFixed(0)} MiB |`,
      );
    }
    out.push('');

    const empty = await freshDatabase(dir, 'import');
    server = await start(empty);
    out.push(...(await importWhileServing(server, largeExport.head)));
    await stop(server.child);
  } finally {
    await stopAll();
    await dropBenchSchemas();
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

process.once('exit', killAllNow);
main().catch((error: unknown) => {
  process.stderr.write(
    `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
});
