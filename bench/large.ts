/**
 * `npm run bench:large`: the built server on a large database, by the one seeder (seed-large.ts):
 *
 * 1. Data volume: the same scenarios on a small database (1,000 sessions, 10,000 messages) and a
 *    large one, side by side, taking turns round after round — read the 200-message history, list
 *    sessions (50 of the default list), list pinned sessions, append, get one session — with the
 *    large/small ratio of p50 latency (aim: ≤ 1.3×); then deep paging in the large database's deep
 *    history, 100 messages a page: page 1, page N by cursor (`after=`) and by `skip=`; then the
 *    database time of the list's two statements (the page and the count behind X-Total-Count).
 * 2. Search latency for queries of known selectivity (SEARCHES), sequential requests.
 * 3. Memory: the bulk export streamed from the small and the large database (and once more with V8's
 *    heap capped: a leak would crash it), sampling RSS; then an import of the first ~45 MiB of that
 *    export into an empty database while other requests are served, with their longest wait.
 *
 * Options (flag or environment variable):
 *   --sessions     BENCH_SESSIONS     sessions of the large database (default 20,000)
 *   --messages     BENCH_MESSAGES     messages spread over them (default 200,000)
 *   --deep         BENCH_DEEP         messages of its deep history (default 200,000)
 *                                     (the documented figures use 100,000 / 1,000,000 / 1,000,000)
 *   --depth        BENCH_DEPTH        how deep page N starts (default 90 % of --deep)
 *   --connections  BENCH_CONNECTIONS  concurrent connections for part 1 (default 32)
 *   --deep-connections BENCH_DEEP_CONNECTIONS  for deep paging (default 4: a deep skip is slow)
 *   --rounds       BENCH_ROUNDS       measured rounds per scenario and database (default 1); the
 *                                     median round is reported
 *   --duration     BENCH_DURATION     seconds of each measured round (default 5)
 *   --warmup       BENCH_WARMUP       seconds of each warm-up round (default 2)
 *   --search-rounds BENCH_SEARCH_ROUNDS  requests per search query (default 20)
 *   --database-url BENCH_DATABASE_URL postgres://… to run on PostgreSQL (schemas of its own, dropped
 *                                     at the end); default: SQLite files in a temporary directory
 *   --large-url    BENCH_LARGE_URL    a database `npm run seed:large` already filled, used instead
 *                                     of seeding one (it is appended to)
 * Results go to stdout, progress to stderr. Not part of `npm test`: it takes minutes.
 */
import Database from 'better-sqlite3';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { validateEnv } from '../src/config/env.validation';
import { setTimeout as sleep } from 'node:timers/promises';
import { fire, get, measurement, type Measurement, post, problemsOf } from './load';
import { Options as OptionParser } from './options';
import { alignedTable, formatMiB } from './report';
import {
  BRANCH_MESSAGES,
  FIXTURE_NAMES,
  type LargeSeedOptions,
  SEARCHES,
  seedLarge,
} from './seed-large';
import {
  assertAlive,
  benchSchema,
  ensureBuilt,
  peakRssMiB,
  progress,
  rssMiB,
  runBenchScript,
  type Server,
  startOurServer,
} from './servers';

const SMALL: LargeSeedOptions = { sessions: 1_000, messages: 10_000, deepMessages: 0, seed: 2 };
const PAGE = 100;

interface Options {
  large: LargeSeedOptions;
  searchRounds: number;
  rounds: number;
  connections: number;
  deepConnections: number;
  duration: number;
  warmup: number;
  depth: number;
  databaseUrl: string | undefined;
  largeUrl: string | undefined;
}

interface Fixture {
  history: string;
  writes: string;
  /** A session of one BRANCH_MESSAGES-message chain, and its root. */
  branch: string;
  branchRoot: number;
  deep?: string;
  /** The id of the deep history's message at position `depth` (1-based). */
  deepCursor?: number;
}

function readOptions(): Options {
  const args = new OptionParser();
  const large: LargeSeedOptions = {
    sessions: args.integer('--sessions', 'BENCH_SESSIONS', 20_000, 1),
    messages: args.integer('--messages', 'BENCH_MESSAGES', 200_000),
    deepMessages: args.integer('--deep', 'BENCH_DEEP', 200_000),
    seed: 1,
  };
  const options = {
    large,
    connections: args.integer('--connections', 'BENCH_CONNECTIONS', 32, 1),
    rounds: args.integer('--rounds', 'BENCH_ROUNDS', 1, 1),
    deepConnections: args.integer('--deep-connections', 'BENCH_DEEP_CONNECTIONS', 4, 1),
    duration: args.integer('--duration', 'BENCH_DURATION', 5, 1),
    warmup: args.integer('--warmup', 'BENCH_WARMUP', 2),
    depth: args.integer(
      '--depth',
      'BENCH_DEPTH',
      Math.max(1, Math.floor(large.deepMessages * 0.9)),
      1,
    ),
    searchRounds: args.integer('--search-rounds', 'BENCH_SEARCH_ROUNDS', 20, 1),
    databaseUrl: args.text('--database-url', 'BENCH_DATABASE_URL'),
    largeUrl: args.text('--large-url', 'BENCH_LARGE_URL'),
  };
  args.rejectUnknown();
  return options;
}

/** Runs `work` with a plain client of the database (no TypeORM, no server in between). */
async function withDatabase<T>(
  url: string,
  work: (query: (sql: string, params?: unknown[]) => Promise<unknown[]>) => Promise<T>,
): Promise<T> {
  const target = validateEnv({ DATABASE_URL: url }).DATABASE;
  if (target.type === 'sqlite') {
    const db = new Database(target.path, { readonly: true });
    try {
      // better-sqlite3 binds no booleans; the schema stores them as 0/1.
      const bind = (params: unknown[]) =>
        params.map((p) => (typeof p === 'boolean' ? Number(p) : p));
      return await work((sql, params = []) =>
        Promise.resolve(db.prepare(sql).all(...bind(params))),
      );
    } finally {
      db.close();
    }
  }
  const client = new Client({ connectionString: target.url });
  await client.connect();
  try {
    return await work(async (sql, params = []) => {
      let n = 0;
      return (
        await client.query(
          sql.replace(/\?/g, () => `$${++n}`),
          params,
        )
      ).rows as unknown[];
    });
  } finally {
    await client.end();
  }
}

async function fixtureOf(url: string, depth: number): Promise<Fixture> {
  return withDatabase(url, async (query) => {
    const rows = (await query(`SELECT "id", "name" FROM "sessions" WHERE "name" IN (?, ?, ?, ?)`, [
      FIXTURE_NAMES.history,
      FIXTURE_NAMES.writes,
      FIXTURE_NAMES.deep,
      FIXTURE_NAMES.branch,
    ])) as { id: string; name: string }[];
    const byName = new Map(rows.map((r) => [r.name, r.id]));
    const history = byName.get(FIXTURE_NAMES.history);
    const writes = byName.get(FIXTURE_NAMES.writes);
    const branch = byName.get(FIXTURE_NAMES.branch);
    if (!history || !writes || !branch) throw new Error(`${url} was not filled by seed:large`);
    const [root] = (await query(
      `SELECT "id" FROM "chat_messages" WHERE "session_id" = ? AND "parent_id" IS NULL`,
      [branch],
    )) as { id: number | string }[];
    const fixture = { history, writes, branch, branchRoot: Number(root.id) };
    const deep = byName.get(FIXTURE_NAMES.deep);
    if (!deep) return fixture;
    const [cursor] = (await query(
      `SELECT "id" FROM "chat_messages" WHERE "session_id" = ? ORDER BY "timestamp", "id" LIMIT 1 OFFSET ?`,
      [deep, depth - 1],
    )) as { id: number | string }[];
    if (!cursor) throw new Error(`the deep history holds fewer than ${depth} messages`);
    return { ...fixture, deep, deepCursor: Number(cursor.id) };
  });
}

/** Median and p99 of `runs` timings of one statement, in milliseconds. */
async function timeStatement(
  url: string,
  sql: string,
  params: unknown[],
  runs = 200,
): Promise<{ median: number; p99: number }> {
  return withDatabase(url, async (query) => {
    const times: number[] = [];
    for (let i = 0; i < runs + 20; i++) {
      const t0 = process.hrtime.bigint();
      await query(sql, params);
      if (i >= 20) times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    times.sort((a, b) => a - b);
    return { median: times[Math.floor(runs / 2)], p99: times[Math.floor(runs * 0.99)] };
  });
}

async function measure(
  server: Server,
  name: string,
  requests: ReturnType<typeof get>[],
  connections: number,
  options: Options,
  failures: string[],
): Promise<Measurement> {
  const rounds = options.warmup > 0 ? ['warm-up', 'measured'] : ['measured'];
  let result!: Measurement;
  for (const kind of rounds) {
    const duration = kind === 'warm-up' ? options.warmup : options.duration;
    const raw = await fire(server.base, requests, connections, { duration });
    assertAlive(server);
    const problems = problemsOf(raw);
    if (problems) failures.push(`${server.name}, ${name} (${kind}): ${problems}`);
    result = measurement(raw);
  }
  progress(
    `${server.name} ${name}: ${result.requestsPerSecond.toFixed(0)} req/s, p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms`,
  );
  return result;
}

const messages = (id: string) => `/api/v1/sessions/${id}/messages`;
const APPEND = {
  content: 'Can you summarise the main differences between optimistic and pessimistic locking?',
};

function scenarios(f: Fixture) {
  return [
    { name: 'read 200-message history', requests: [get(messages(f.history))] },
    { name: 'list sessions (limit 50)', requests: [get('/api/v1/sessions')] },
    { name: 'list pinned sessions', requests: [get('/api/v1/sessions?pinned=true')] },
    { name: 'append a message', requests: [post(messages(f.writes), APPEND)] },
    { name: 'get one session', requests: [get(`/api/v1/sessions/${f.history}`)] },
    {
      name: `read 50 of a ${BRANCH_MESSAGES.toLocaleString('en')}-message branch`,
      requests: [get(`${messages(f.branch)}?branch=current&limit=50`)],
    },
  ];
}

/**
 * The branch fixture's listings and PATCH's descent (from the root, through every level, to the
 * leaf it already names: the session ends as it was), one request at a time: p50 and max.
 */
async function branchLatency(server: Server, f: Fixture, runs = 40): Promise<string[][]> {
  const rows: string[][] = [];
  const requests: [string, () => Promise<Response>][] = [
    [
      '?branch=current&limit=50',
      () => fetch(`${server.base}${messages(f.branch)}?branch=current&limit=50`),
    ],
    ['?branch=current (1,000)', () => fetch(`${server.base}${messages(f.branch)}?branch=current`)],
    [
      'PATCH current_message_id: the root',
      () =>
        fetch(`${server.base}/api/v1/sessions/${f.branch}`, {
          method: 'PATCH',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ current_message_id: f.branchRoot }),
        }),
    ],
  ];
  for (const [name, send] of requests) {
    const times: number[] = [];
    for (let i = 0; i < runs + 5; i++) {
      const t0 = performance.now();
      const res = await send();
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`${name} answered ${res.status}`);
      if (i >= 5) times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    rows.push([name, `${percentile(times, 50).toFixed(1)} ms`, `${times.at(-1)!.toFixed(1)} ms`]);
  }
  return rows;
}

/** The round with the median throughput. */
function median(rounds: Measurement[]): Measurement {
  const sorted = [...rounds].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond);
  return sorted[Math.floor(sorted.length / 2)];
}

const cell = (m: Measurement) => [m.requestsPerSecond.toFixed(0), `${m.p50Ms} ms`, `${m.p99Ms} ms`];

const IMPORT_BYTES = 45 * 1024 * 1024;

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
  const res = await fetch(`${server.base}/api/v1/export?archived=any`);
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

async function searchLatency(server: Server, rounds: number): Promise<string[]> {
  const rows: string[] = [];
  const sessionId = (
    (await (await fetch(`${server.base}/api/v1/sessions?limit=1`)).json()) as { id: string }[]
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
    const url = `${server.base}/api/v1/search?${query}`;
    for (let i = 0; i < 3; i++) await timed(url);
    const times: number[] = [];
    let hits = 0;
    for (let i = 0; i < rounds; i++) {
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
    await fetch(`${server.base}/api/v1/sessions`, {
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
    poll('read', () => fetch(`${server.base}/api/v1/sessions?limit=1`)),
    poll('none', () => fetch(`${server.base}/health/live`)),
    poll('write', () =>
      fetch(`${server.base}/api/v1/sessions/${session.id}/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"content":"written during the import"}',
      }),
    ),
  ];
  const res = await fetch(`${server.base}/api/v1/import`, {
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

/** Parts 2 and 3: search latency on the large database, export and import memory. */
async function searchAndMemory(
  options: Options,
  smallUrl: string,
  largeUrl: string,
  emptyUrl: string,
): Promise<string[]> {
  const out: string[] = [];
  let server = await startOurServer(largeUrl, { name: 'search' });
  out.push(
    `Search latency on the large database, ${options.searchRounds} sequential requests per query (default limit 20 unless noted), ms:`,
    '',
    '| query | hits | p50 | p95 | max |',
    '| --- | --- | --- | --- | --- |',
    ...(await searchLatency(server, options.searchRounds)),
    '',
  );
  await server.stop();

  progress('exporting the small database, the large one, and the large one with a capped heap');
  server = await startOurServer(smallUrl, { name: 'export small' });
  const smallExport = await exportAll(server);
  await server.stop();
  server = await startOurServer(largeUrl, { name: 'export large' });
  const largeExport = await exportAll(server, IMPORT_BYTES);
  await server.stop();
  server = await startOurServer(largeUrl, {
    name: 'export capped',
    env: { NODE_OPTIONS: `--max-old-space-size=${HEAP_CAP_MIB}` },
  });
  const cappedExport = await exportAll(server);
  await server.stop();
  out.push(
    'Bulk export (GET /api/v1/export?archived=any, streamed to a client that discards it):',
    '',
    '| store | lines | MiB | seconds | RSS before | highest RSS, first tenth of the bytes | highest RSS, the rest | peak RSS (VmHWM) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  );
  for (const [label, e] of [
    ['small database', smallExport],
    ['large database', largeExport],
    [`the same, V8 heap capped at ${HEAP_CAP_MIB} MiB (--max-old-space-size)`, cappedExport],
  ] as const) {
    out.push(
      `| ${label} | ${e.lines} | ${(e.bytes / 2 ** 20).toFixed(0)} | ${e.seconds.toFixed(1)} | ${e.rssBefore.toFixed(0)} MiB | ${e.rssFirstTenth.toFixed(0)} MiB | ${e.rssRest.toFixed(0)} MiB | ${e.rssPeak.toFixed(0)} MiB |`,
    );
  }
  out.push('');
  server = await startOurServer(emptyUrl, { name: 'import' });
  out.push(...(await importWhileServing(server, largeExport.head)));
  await server.stop();
  return out;
}

async function run(options: Options, tmp: string): Promise<number> {
  await ensureBuilt();
  const base = options.databaseUrl;
  const smallUrl = base ? await benchSchema(base) : `sqlite:${join(tmp, 'small.sqlite')}`;
  progress(`seeding the small database (${SMALL.sessions} sessions, ${SMALL.messages} messages)`);
  await seedLarge(smallUrl, SMALL);
  let largeUrl = options.largeUrl;
  if (!largeUrl) {
    largeUrl = base ? await benchSchema(base) : `sqlite:${join(tmp, 'large.sqlite')}`;
    progress(
      `seeding the large database (${options.large.sessions} sessions, ${options.large.messages} messages + a ${options.large.deepMessages}-message history)`,
    );
    const seeded = await seedLarge(largeUrl, options.large, progress);
    progress(`seeded in ${seeded.seconds.toFixed(0)} s`);
  }
  const failures: string[] = [];
  const results: Record<string, Measurement[]> = {};
  const rss: string[] = [];
  const deepRows: string[][] = [];
  const branchRows: Record<'small' | 'large', string[][]> = { small: [], large: [] };
  const counts = { small: { messages: 0, sessions: 0 }, large: { messages: 0, sessions: 0 } };

  // Both servers run side by side and take turns, round after round, so noise from other work on
  // shared cores falls on both alike; each figure is the median round.
  const fixtures = {
    small: await fixtureOf(smallUrl, options.depth),
    large: await fixtureOf(largeUrl, options.depth),
  };
  for (const [label, url] of [
    ['small', smallUrl],
    ['large', largeUrl],
  ] as const) {
    counts[label] = await withDatabase(url, async (query) => {
      const [row] = (await query(
        `SELECT (SELECT COUNT(*) FROM "chat_messages") AS "messages", (SELECT COUNT(*) FROM "sessions") AS "sessions"`,
      )) as { messages: number; sessions: number }[];
      return { messages: Number(row.messages), sessions: Number(row.sessions) };
    });
  }
  const servers = {
    small: await startOurServer(smallUrl, { name: 'small db' }),
    large: await startOurServer(largeUrl, { name: 'large db' }),
  };
  try {
    const small = scenarios(fixtures.small);
    const large = scenarios(fixtures.large);
    for (const [i, scenario] of small.entries()) {
      const rounds: { small: Measurement[]; large: Measurement[] } = { small: [], large: [] };
      for (let round = 0; round < options.rounds; round++) {
        rounds.small.push(
          await measure(
            servers.small,
            scenario.name,
            scenario.requests,
            options.connections,
            options,
            failures,
          ),
        );
        rounds.large.push(
          await measure(
            servers.large,
            scenario.name,
            large[i].requests,
            options.connections,
            options,
            failures,
          ),
        );
      }
      results[scenario.name] = [median(rounds.small), median(rounds.large)];
    }
    for (const label of ['small', 'large'] as const) {
      progress(`branch listings, one request at a time, ${label} database`);
      branchRows[label] = await branchLatency(servers[label], fixtures[label]);
    }
    const { deep, deepCursor } = fixtures.large;
    if (deep && deepCursor) {
      const path = messages(deep);
      for (const [name, query] of [
        ['page 1', `?limit=${PAGE}`],
        [
          `page at ${options.depth.toLocaleString('en')} by cursor (after=)`,
          `?after=${deepCursor}&limit=${PAGE}`,
        ],
        [
          `page at ${options.depth.toLocaleString('en')} by skip=`,
          `?skip=${options.depth}&limit=${PAGE}`,
        ],
      ]) {
        const m = await measure(
          servers.large,
          name,
          [get(`${path}${query}`)],
          options.deepConnections,
          options,
          failures,
        );
        deepRows.push([name, ...cell(m)]);
      }
    }
    rss.push(
      `small: ${formatMiB(peakRssMiB(servers.small.child.pid))}`,
      `large: ${formatMiB(peakRssMiB(servers.large.child.pid))}`,
    );
  } finally {
    await Promise.all([servers.small.stop(), servers.large.stop()]);
  }

  progress('timing the list statements straight on each database');
  const sqlRows: string[][] = [];
  const ORDER = `ORDER BY "last_updated_at" DESC, "created_at" DESC, "id" DESC LIMIT 50 OFFSET 0`;
  // The statements the service runs: scoped by owner (`local` without authentication), the total
  // read from session_counts.
  for (const [list, where, params] of [
    ['default list', `"owner_id" = ? AND "archived" = ?`, ['local', false]],
    ['pinned list', `"owner_id" = ? AND "archived" = ? AND "pinned" = ?`, ['local', false, true]],
  ] as const) {
    for (const [label, url] of [
      ['small', smallUrl],
      ['large', largeUrl],
    ] as const) {
      const page = await timeStatement(url, `SELECT * FROM "sessions" WHERE ${where} ${ORDER}`, [
        ...params,
      ]);
      const count = await timeStatement(
        url,
        `SELECT COALESCE(SUM("n"), 0) AS "total" FROM "session_counts" WHERE ${where}`,
        [...params],
      );
      sqlRows.push([
        `${list}, ${label}`,
        `${page.median.toFixed(3)} ms`,
        `${count.median.toFixed(3)} ms`,
        `${count.p99.toFixed(3)} ms`,
      ]);
    }
  }

  const database = base ? 'PostgreSQL' : 'SQLite (synchronous=FULL)';
  console.log(
    `node ${process.version}, ${cpus()[0]?.model ?? 'unknown cpu'} × ${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM`,
  );
  console.log(
    `\nLarge vs small database, ${database}; ${options.connections} connections; per scenario ${options.rounds} round(s) on each database in turn ` +
      `(${options.warmup} s warm-up + ${options.duration} s measured each), median round shown`,
  );
  console.log(
    `small: ${counts.small.sessions.toLocaleString('en')} sessions, ${counts.small.messages.toLocaleString('en')} messages; ` +
      `large: ${counts.large.sessions.toLocaleString('en')} sessions, ${counts.large.messages.toLocaleString('en')} messages\n`,
  );
  const rows = Object.entries(results).map(([name, [small, large]]) => [
    name,
    ...cell(small),
    ...cell(large),
    `${(large.p50Ms / Math.max(small.p50Ms, 1)).toFixed(2)}×`,
    `${(small.requestsPerSecond / large.requestsPerSecond).toFixed(2)}×`,
  ]);
  console.log(
    alignedTable([
      [
        'scenario',
        'small req/s',
        'p50',
        'p99',
        'large req/s',
        'p50',
        'p99',
        'p50 ratio',
        'req/s ratio',
      ],
      ...rows,
    ]),
  );
  console.log('aim: large within 1.3× of small (p50 ratio and small/large req/s)\n');
  if (deepRows.length > 0) {
    console.log(
      `Deep paging in the ${options.large.deepMessages.toLocaleString('en')}-message history, ${PAGE} messages a page, ${options.deepConnections} connections:`,
    );
    console.log(alignedTable([['page', 'req/s', 'p50', 'p99'], ...deepRows]));
    console.log('');
  }
  console.log(
    `The ${BRANCH_MESSAGES.toLocaleString('en')}-message branch, 40 requests one at a time on each database (aim: p50 < 20 ms, large within 1.3× of small):`,
  );
  console.log(
    alignedTable([
      ['request', 'small p50', 'max', 'large p50', 'max', 'p50 ratio'],
      ...branchRows.small.map((row, i) => {
        const large = branchRows.large[i];
        return [
          ...row,
          ...large.slice(1),
          `${(parseFloat(large[1]) / parseFloat(row[1])).toFixed(2)}×`,
        ];
      }),
    ]),
  );
  console.log('');
  console.log(
    'The session list in the database itself (median of 200 runs): the page, and the COUNT behind X-Total-Count',
  );
  console.log(
    alignedTable([['list, database', 'page query', 'COUNT median', 'COUNT p99'], ...sqlRows]),
  );
  console.log(`\npeak RSS of our server: ${rss.join(', ')}\n`);
  const emptyUrl = base ? await benchSchema(base) : `sqlite:${join(tmp, 'import.sqlite')}`;
  console.log((await searchAndMemory(options, smallUrl, largeUrl, emptyUrl)).join('\n'));
  if (failures.length === 0) return 0;
  console.log(`\n${failures.length} round(s) were not clean:`);
  for (const failure of failures) console.log(`  ${failure}`);
  return 1;
}

runBenchScript('bench:large', (tmp) => run(readOptions(), tmp));
