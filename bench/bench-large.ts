/**
 * `npm run bench:large`: the built server on a large database beside the same server on a small
 * one, so the effect of data volume is all that differs. Both are seeded by bench/seed-large.ts
 * (bulk inserts, same shape, same fixtures); the servers run one at a time on the same machine.
 *
 * Scenarios, each with a warm-up round and a measured round (autocannon):
 *   - read the 200-message history, list sessions (50 of the default list), list pinned sessions,
 *     append a message, get one session: small vs large, with the large/small ratio of p50
 *     latency (aim: ≤ 1.3×);
 *   - deep paging in the large database's 1,000,000-message history, 100 messages a page: page 1,
 *     page N by cursor (`after=` the message at --depth) and `skip=` the same depth.
 * Then the database time of the list's two statements (the page and its X-Total-Count COUNT),
 * measured straight on each database, and our server's peak RSS.
 *
 * Options (flag or environment variable):
 *   --connections  BENCH_CONNECTIONS  concurrent connections for the small/large rounds (default 32)
 *   --rounds       BENCH_ROUNDS       measured rounds per scenario and database, taken in turns
 *                                     (default 3); the median round is reported
 *   --deep-connections BENCH_DEEP_CONNECTIONS  for the deep-paging rounds (default 4: a deep skip is slow)
 *   --duration     BENCH_DURATION     seconds of each measured round (default 5)
 *   --warmup       BENCH_WARMUP       seconds of each warm-up round (default 2)
 *   --depth        BENCH_DEPTH        how deep page N starts (default 900,000)
 *   --database-url BENCH_DATABASE_URL postgres://… to run on PostgreSQL (schemas of its own, dropped
 *                                     at the end); default: SQLite files in a temporary directory
 *   --large-url    BENCH_LARGE_URL    a database seed:large already filled (it is appended to);
 *                                     without it the large database is seeded first (~1 min)
 */
import Database from 'better-sqlite3';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { validateEnv } from '../src/config/env.validation';
import { Args } from './args';
import { fire, get, measurement, type Measurement, post, problemsOf } from './load';
import { benchSchema } from './postgres';
import { runBenchScript } from './script';
import { assertAlive, peakRssMiB, stop } from './processes';
import { formatMiB } from './report';
import { FIXTURE_NAMES, LARGE_DEFAULTS, type LargeSeedOptions, seedLarge } from './seed-large';
import { ensureBuilt, type Server, startOurServer } from './servers';

const SMALL: LargeSeedOptions = { sessions: 1_000, messages: 10_000, deepMessages: 0, seed: 2 };
const PAGE = 100;

interface Options {
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
  deep?: string;
  /** The id of the deep history's message at position `depth` (1-based). */
  deepCursor?: number;
}

const started = Date.now();
function progress(line: string): void {
  process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
}

function readOptions(): Options {
  const args = new Args();
  const options = {
    connections: args.integer('--connections', 'BENCH_CONNECTIONS', 32, 1),
    rounds: args.integer('--rounds', 'BENCH_ROUNDS', 3, 1),
    deepConnections: args.integer('--deep-connections', 'BENCH_DEEP_CONNECTIONS', 4, 1),
    duration: args.integer('--duration', 'BENCH_DURATION', 5, 1),
    warmup: args.integer('--warmup', 'BENCH_WARMUP', 2),
    depth: args.integer('--depth', 'BENCH_DEPTH', 900_000, 1),
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
    const rows = (await query(`SELECT "id", "name" FROM "sessions" WHERE "name" IN (?, ?, ?)`, [
      FIXTURE_NAMES.history,
      FIXTURE_NAMES.writes,
      FIXTURE_NAMES.deep,
    ])) as { id: string; name: string }[];
    const byName = new Map(rows.map((r) => [r.name, r.id]));
    const history = byName.get(FIXTURE_NAMES.history);
    const writes = byName.get(FIXTURE_NAMES.writes);
    if (!history || !writes) throw new Error(`${url} was not filled by seed:large`);
    const deep = byName.get(FIXTURE_NAMES.deep);
    if (!deep) return { history, writes };
    const [cursor] = (await query(
      `SELECT "id" FROM "chat_messages" WHERE "session_id" = ? ORDER BY "timestamp", "id" LIMIT 1 OFFSET ?`,
      [deep, depth - 1],
    )) as { id: number | string }[];
    if (!cursor) throw new Error(`the deep history holds fewer than ${depth} messages`);
    return { history, writes, deep, deepCursor: Number(cursor.id) };
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
    const raw = await fire(server.url, requests, connections, { duration });
    assertAlive(server.child, server.name);
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
  ];
}

function pad(cells: string[][]): string {
  const widths = cells[0].map((_, i) => Math.max(...cells.map((row) => row[i].length)));
  return cells
    .map((row) =>
      row.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '),
    )
    .join('\n');
}

/** The round with the median throughput. */
function median(rounds: Measurement[]): Measurement {
  const sorted = [...rounds].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond);
  return sorted[Math.floor(sorted.length / 2)];
}

const cell = (m: Measurement) => [m.requestsPerSecond.toFixed(0), `${m.p50Ms} ms`, `${m.p99Ms} ms`];

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
      `seeding the large database (${LARGE_DEFAULTS.sessions} sessions, ${LARGE_DEFAULTS.messages} messages + a ${LARGE_DEFAULTS.deepMessages}-message history)`,
    );
    const seeded = await seedLarge(largeUrl, LARGE_DEFAULTS, progress);
    progress(`seeded in ${seeded.seconds.toFixed(0)} s`);
  }
  const config = {
    connections: options.connections,
    duration: options.duration,
    warmup: options.warmup,
    processes: 1,
    databaseUrl: undefined,
  };
  const failures: string[] = [];
  const results: Record<string, Measurement[]> = {};
  const rss: string[] = [];
  const deepRows: string[][] = [];
  const counts = { small: 0, large: 0 };

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
      const [row] = (await query(`SELECT COUNT(*) AS "n" FROM "chat_messages"`)) as { n: number }[];
      return Number(row.n);
    });
  }
  const servers = {
    small: await startOurServer(smallUrl, config),
    large: await startOurServer(largeUrl, config),
  };
  servers.small.name = 'small db';
  servers.large.name = 'large db';
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
    await Promise.all([stop(servers.small.child), stop(servers.large.child)]);
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
    `small: ${SMALL.sessions + 2} sessions, ${counts.small.toLocaleString('en')} messages; large: ${(LARGE_DEFAULTS.sessions + 3).toLocaleString('en')} sessions, ${counts.large.toLocaleString('en')} messages\n`,
  );
  const rows = Object.entries(results).map(([name, [small, large]]) => [
    name,
    ...cell(small),
    ...cell(large),
    `${(large.p50Ms / Math.max(small.p50Ms, 1)).toFixed(2)}×`,
    `${(small.requestsPerSecond / large.requestsPerSecond).toFixed(2)}×`,
  ]);
  console.log(
    pad([
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
      `Deep paging in the ${LARGE_DEFAULTS.deepMessages.toLocaleString('en')}-message history, ${PAGE} messages a page, ${options.deepConnections} connections:`,
    );
    console.log(pad([['page', 'req/s', 'p50', 'p99'], ...deepRows]));
    console.log('');
  }
  console.log(
    'The session list in the database itself (median of 200 runs): the page, and the COUNT behind X-Total-Count',
  );
  console.log(pad([['list, database', 'page query', 'COUNT median', 'COUNT p99'], ...sqlRows]));
  console.log(`\npeak RSS of our server: ${rss.join(', ')}`);
  if (failures.length === 0) return 0;
  console.log(`\n${failures.length} round(s) were not clean:`);
  for (const failure of failures) console.log(`  ${failure}`);
  return 1;
}

runBenchScript('bench:large', (tmp) => run(readOptions(), tmp));
