/**
 * `npm run soak`: a sustained mixed load on the built server, reporting every interval (a minute by
 * default) the throughput, p50/p99 latency, errors and the server's memory (RSS), then checking the
 * database's invariants. A healthy run has zero errors and an RSS that levels off.
 *
 * Each connection cycles through 12 requests over a pool of sessions that grows as it runs:
 * list sessions, list pinned sessions, get a session (×2), the newest 50 messages, the whole
 * history (up to 1,000), append a user message, append an assistant message with metadata, create
 * a session (it joins the pool), pin or unpin a session, and create then delete a scratch session.
 * Reads 6 of 12, writes 6 of 12 (appends, creates, updates, deletes).
 *
 * Options (flag or environment variable):
 *   --duration     SOAK_DURATION      seconds of load (default 60)
 *   --interval     SOAK_INTERVAL      seconds per report line (default 60)
 *   --connections  SOAK_CONNECTIONS   concurrent connections (default 16)
 *   --database-url SOAK_DATABASE_URL  postgres://… to soak on PostgreSQL (a schema of its own,
 *                                     dropped at the end); default: an SQLite file in a temporary directory
 * Exit code 1 when any request failed, memory kept growing (the second half's RSS peak more than
 * 10 % above the first half's), the invariants do not hold or the server did not stop cleanly.
 */
import autocannon from 'autocannon';
import { statSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { validateEnv } from '../src/config/env.validation';
import { buildDataSourceOptions } from '../src/database/database.options';
import { invariantViolations, readerOf } from '../test/helpers/invariants';
import { fire, problemsOf } from './load';
import { Options as OptionParser } from './options';
import { seededRandom } from './random';
import {
  assertAlive,
  benchSchema,
  ensureBuilt,
  progress,
  rssMiB,
  runBenchScript,
  startOurServer,
} from './servers';

interface Options {
  duration: number;
  interval: number;
  connections: number;
  databaseUrl: string | undefined;
}

interface Line {
  from: number;
  to: number;
  requests: number;
  requestsPerSecond: number;
  p50: number;
  p99: number;
  errors: number;
  problems: string | undefined;
  rssEnd: number;
  rssMax: number;
  databaseMiB: number | undefined;
}

const POOL_LIMIT = 5_000;
const JSON_HEADERS = { 'content-type': 'application/json' };

function readOptions(): Options {
  const args = new OptionParser();
  const options = {
    duration: args.integer('--duration', 'SOAK_DURATION', 60, 1),
    interval: args.integer('--interval', 'SOAK_INTERVAL', 60, 1),
    connections: args.integer('--connections', 'SOAK_CONNECTIONS', 16, 1),
    databaseUrl: args.text('--database-url', 'SOAK_DATABASE_URL'),
  };
  args.rejectUnknown();
  return options;
}

/** The database file and its write-ahead log. */
function sqliteMiB(path: string): number {
  const size = (file: string) => statSync(file, { throwIfNoEntry: false })?.size ?? 0;
  return (size(path) + size(`${path}-wal`)) / 2 ** 20;
}

/** The request cycle; session ids come from a shared pool that creations add to. */
function mixedRequests(pool: string[]): autocannon.Request[] {
  const random = seededRandom(7);
  const pick = () => pool[Math.floor(random() * pool.length)];
  const on = (
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    path: () => string,
    body?: () => unknown,
  ) => ({
    method,
    headers: body ? JSON_HEADERS : {},
    setupRequest: (request: autocannon.Request) => ({
      ...request,
      path: path(),
      ...(body ? { body: JSON.stringify(body()) } : {}),
    }),
  });
  let n = 0;
  return [
    on('GET', () => '/api/v1/sessions?limit=20'),
    on(
      'POST',
      () => `/api/v1/sessions/${pick()}/messages`,
      () => ({
        content: `Question ${++n}: can you explain how write-ahead logging keeps data safe?`,
      }),
    ),
    on('GET', () => `/api/v1/sessions/${pick()}/messages?order=desc&limit=50`),
    on(
      'POST',
      () => `/api/v1/sessions/${pick()}/messages`,
      () => ({
        role: 'assistant',
        content: `Answer ${++n}: ${'A write is appended to the log and synced before it is acknowledged. '.repeat(3)}`,
        metadata: { model: 'default', tokens: 42 + (n % 100) },
      }),
    ),
    on('GET', () => `/api/v1/sessions/${pick()}`),
    {
      ...on(
        'POST',
        () => '/api/v1/sessions',
        () => ({ name: `Soak ${++n}`, rag_document_ids: ['handbook'] }),
      ),
      onResponse: (status: number, body: string) => {
        if (status !== 201) return;
        const { id } = JSON.parse(body) as { id: string };
        if (pool.length < POOL_LIMIT) pool.push(id);
        else pool[Math.floor(random() * pool.length)] = id;
      },
    },
    on('GET', () => '/api/v1/sessions?pinned=true&limit=20'),
    on(
      'PATCH',
      () => `/api/v1/sessions/${pick()}`,
      () => ({ pinned: random() < 0.1 }),
    ),
    on('GET', () => `/api/v1/sessions/${pick()}/messages`),
    on('GET', () => `/api/v1/sessions/${pick()}`),
    {
      ...on(
        'POST',
        () => '/api/v1/sessions',
        () => ({ name: 'scratch' }),
      ),
      onResponse: (status: number, body: string, context: object) => {
        if (status === 201)
          (context as { scratch?: string }).scratch = (JSON.parse(body) as { id: string }).id;
      },
    },
    {
      method: 'DELETE',
      setupRequest: (request: autocannon.Request, context: object) => ({
        ...request,
        path: `/api/v1/sessions/${(context as { scratch?: string }).scratch ?? 'missing'}`,
      }),
    },
  ];
}

async function createPool(url: string, size: number): Promise<string[]> {
  const pool: string[] = [];
  for (let i = 0; i < size; i++) {
    const res = await fetch(`${url}/api/v1/sessions`, {
      method: 'POST',
      headers: JSON_HEADERS,
      body: JSON.stringify({ name: `Soak seed ${i}` }),
    });
    if (res.status !== 201) throw new Error(`creating the session pool: ${res.status}`);
    pool.push(((await res.json()) as { id: string }).id);
  }
  return pool;
}

async function run(options: Options, tmp: string): Promise<number> {
  await ensureBuilt();
  const databaseUrl = options.databaseUrl
    ? await benchSchema(options.databaseUrl)
    : `sqlite:${join(tmp, 'soak.sqlite')}`;
  const target = validateEnv({ DATABASE_URL: databaseUrl }).DATABASE;
  const server = await startOurServer(databaseUrl);
  const pid = server.child.pid!;
  const pool = await createPool(server.base, 200);
  const requests = mixedRequests(pool);

  const samples: { at: number; rss: number }[] = [];
  const t0 = Date.now();
  const sampler = setInterval(
    () => samples.push({ at: (Date.now() - t0) / 1000, rss: rssMiB(pid) }),
    1000,
  );
  const lines: Line[] = [];
  try {
    for (let from = 0; from < options.duration; from += options.interval) {
      const seconds = Math.min(options.interval, options.duration - from);
      const result = await fire(server.base, requests, options.connections, { duration: seconds });
      assertAlive(server);
      const inInterval = samples.filter((s) => s.at > from && s.at <= from + seconds + 0.5);
      const line: Line = {
        from,
        to: from + seconds,
        requests: result.requests.total,
        requestsPerSecond: result.requests.average,
        p50: result.latency.p50,
        p99: result.latency.p99,
        errors: result.errors + result.timeouts + result.non2xx,
        problems: problemsOf(result),
        rssEnd: rssMiB(pid),
        rssMax: Math.max(...inInterval.map((s) => s.rss), rssMiB(pid)),
        databaseMiB: target.type === 'sqlite' ? sqliteMiB(target.path) : undefined,
      };
      lines.push(line);
      progress(
        `${line.from}–${line.to} s: ${line.requestsPerSecond.toFixed(0)} req/s, p50 ${line.p50} ms, p99 ${line.p99} ms, ` +
          `${line.errors} errors, RSS ${line.rssEnd.toFixed(0)} MiB`,
      );
    }
  } finally {
    clearInterval(sampler);
  }

  const exitCode = (await server.stop()).code;
  const dataSource = await new DataSource(
    buildDataSourceOptions(validateEnv({ DATABASE_URL: databaseUrl })),
  ).initialize();
  let violations: string[];
  let totals: { sessions: number; messages: number };
  try {
    violations = await invariantViolations(readerOf(dataSource));
    const [s]: { n: string | number }[] = await dataSource.query(
      `SELECT COUNT(*) AS "n" FROM "sessions"`,
    );
    const [m]: { n: string | number }[] = await dataSource.query(
      `SELECT COUNT(*) AS "n" FROM "chat_messages"`,
    );
    totals = { sessions: Number(s.n), messages: Number(m.n) };
  } finally {
    await dataSource.destroy();
  }

  const errors = lines.reduce((n, l) => n + l.errors, 0);
  const total = lines.reduce((n, l) => n + l.requests, 0);
  // Levelled off: the second half's peak is no more than 10 % above the first half's.
  const peak = (from: number, to: number) =>
    Math.max(0, ...samples.filter((x) => x.at > from && x.at <= to).map((x) => x.rss));
  const firstPeak = peak(0, options.duration / 2);
  const secondPeak = peak(options.duration / 2, Infinity);
  const end = samples.at(-1)?.rss ?? 0;
  const growth = firstPeak > 0 ? ((secondPeak - firstPeak) / firstPeak) * 100 : 0;
  console.log(
    `Soak: ${options.duration} s, ${options.connections} connections, ${target.type === 'sqlite' ? 'SQLite (synchronous=FULL)' : 'PostgreSQL'}; ` +
      `node ${process.version}, ${cpus()[0]?.model ?? 'unknown cpu'} × ${cpus().length}`,
  );
  console.log('interval     req/s    p50     p99  errors  RSS end  RSS max  database');
  for (const l of lines) {
    console.log(
      `${`${l.from}–${l.to} s`.padEnd(11)} ${l.requestsPerSecond.toFixed(0).padStart(6)} ${`${l.p50} ms`.padStart(6)} ${`${l.p99} ms`.padStart(7)} ${String(l.errors).padStart(7)} ` +
        `${`${l.rssEnd.toFixed(0)} MiB`.padStart(8)} ${`${l.rssMax.toFixed(0)} MiB`.padStart(8)} ${l.databaseMiB === undefined ? '' : `${l.databaseMiB.toFixed(0)} MiB`.padStart(9)}`,
    );
  }
  const marks = samples
    .filter((_, i) => (i + 1) % 10 === 0)
    .map((s) => `${s.at.toFixed(0)}s ${s.rss.toFixed(0)}`);
  console.log(`RSS every 10 s (MiB): ${marks.join(', ')}`);
  console.log(
    `${total.toLocaleString('en')} requests, ${errors} errors; RSS peak ${firstPeak.toFixed(0)} MiB in the first half, ` +
      `${secondPeak.toFixed(0)} MiB in the second (${growth >= 0 ? '+' : ''}${growth.toFixed(1)} %: ${growth <= 10 ? 'levelled off' : 'still growing'}), ` +
      `${end.toFixed(0)} MiB at the end`,
  );
  console.log(
    `database after the run: ${totals.sessions.toLocaleString('en')} sessions, ${totals.messages.toLocaleString('en')} messages; ` +
      `invariants ${violations.length === 0 ? 'hold' : `VIOLATED: ${violations.slice(0, 5).join('; ')}`}; server exit code ${exitCode}`,
  );
  for (const l of lines.filter((x) => x.problems))
    console.log(`  ${l.from}–${l.to} s: ${l.problems}`);
  return errors === 0 && violations.length === 0 && exitCode === 0 && growth <= 10 ? 0 : 1;
}

runBenchScript('soak', (tmp) => run(readOptions(), tmp));
