/**
 * The servers the bench scripts measure (ours, the plain ceiling, the framework floor), started
 * through the test suite's own server helper, and the frame every script runs in.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  existsSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import ts from 'typescript';
import { validateEnv } from '../src/config/env.validation';
import { buildDataSourceOptions } from '../src/database/database.options';
import {
  exitOf,
  killServers,
  type RunningServer,
  startServer,
} from '../test/helpers/server-process';

export const ROOT = resolve(__dirname, '..');

export interface Server extends RunningServer {
  name: string;
}

const started = Date.now();

/** A progress line on stderr (stdout keeps the results). */
export function progress(line: string): void {
  const seconds = ((Date.now() - started) / 1000).toFixed(0).padStart(4);
  process.stderr.write(`[${seconds} s] ${line}\n`);
}

function newestMtimeMs(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtimeMs(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** Builds dist/ when it is missing or older than any file in src/: we measure what `src` says. */
export async function ensureBuilt(): Promise<void> {
  const main = join(ROOT, 'dist', 'main.js');
  if (existsSync(main) && statSync(main).mtimeMs >= newestMtimeMs(join(ROOT, 'src'))) return;
  progress('dist/ is missing or older than src/: running npm run build');
  const child = spawn('npm', ['run', '--prefix', ROOT, 'build'], { stdio: ['ignore', 2, 2] });
  const { code } = await exitOf(child);
  if (code !== 0) throw new Error(`npm run build exited with code ${code}`);
}

/**
 * The node flags `npm run start:prod` gives the server (a heap limit: see docs/operations.md),
 * read from package.json so that every server of a run (ours, the ceiling, the floor) runs under
 * the flags a user's server runs under.
 */
export function startNodeOptions(): string {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  const match = /^node (.*)dist\/main\.js$/.exec(pkg.scripts['start:prod']);
  if (!match) throw new Error(`package.json's start:prod is not "node [flags] dist/main.js"`);
  return match[1].trim();
}

/**
 * What every server of a run shares: quiet logs, no rate limit, the same durability setting, the
 * node flags of `npm start`.
 */
function commonEnv(): Record<string, string> {
  return {
    NODE_OPTIONS: startNodeOptions(),
    LOG_LEVEL: 'warn',
    // One client sending thousands of requests a second must not be throttled.
    RATE_LIMIT_PER_MINUTE: '0',
    ...(process.env.SQLITE_SYNCHRONOUS
      ? { SQLITE_SYNCHRONOUS: process.env.SQLITE_SYNCHRONOUS }
      : {}),
  };
}

async function start(name: string, env: Record<string, string>, script?: string): Promise<Server> {
  const server = await startServer({ ...commonEnv(), ...env }, { script, readyTimeoutMs: 60_000 });
  return Object.assign(server, { name });
}

export const isPostgres = (url: string | undefined): url is string =>
  url !== undefined && /^postgres(ql)?:\/\//.test(url);

/**
 * Our built server: dist/main.js for one process, dist/cluster.js (`npm run start:cluster`) for
 * more, which needs PostgreSQL.
 */
export function startOurServer(
  databaseUrl: string,
  options: { processes?: number; env?: Record<string, string>; name?: string } = {},
): Promise<Server> {
  const processes = options.processes ?? 1;
  if (processes > 1 && !isPostgres(databaseUrl)) {
    throw new Error(
      `${processes} processes need a postgres:// database: SQLite is single-process.`,
    );
  }
  const cluster: Record<string, string> =
    processes > 1 ? { CLUSTER_WORKERS: String(processes) } : {};
  return start(
    options.name ?? 'ours',
    { DATABASE_URL: databaseUrl, ...cluster, ...options.env },
    processes > 1 ? join(ROOT, 'dist', 'cluster.js') : undefined,
  );
}

/** Runs our migrations on `databaseUrl`, as the server does at start-up. */
export async function migrate(databaseUrl: string): Promise<void> {
  const dataSource = new DataSource(
    buildDataSourceOptions(validateEnv({ DATABASE_URL: databaseUrl })),
  );
  await dataSource.initialize();
  try {
    await dataSource.runMigrations();
  } finally {
    await dataSource.destroy();
  }
}

/**
 * A bench server compiled to plain JavaScript in `dir` and run by plain node, as the real server
 * is (under ts-node the compiler would sit in its heap), with its `../src/…` imports pointed at the
 * built `dist/…`: the floor runs the code our server runs.
 */
function compile(file: string, dir: string): string {
  const { outputText } = ts.transpileModule(readFileSync(join(ROOT, 'bench', file), 'utf8'), {
    compilerOptions: {
      module: ts.ModuleKind.CommonJS,
      target: ts.ScriptTarget.ES2023,
      esModuleInterop: true,
      experimentalDecorators: true,
      emitDecoratorMetadata: true,
    },
  });
  const script = join(dir, file.replace(/\.ts$/, '.js'));
  writeFileSync(script, outputText.replaceAll('require("../src/', `require("${ROOT}/dist/`));
  return script;
}

/** The compiled file lives in a temporary directory; its packages resolve from the project. */
const NODE_PATH = join(ROOT, 'node_modules');

/** The plain node:http + better-sqlite3 server (ceiling-server.ts) on a fresh migrated file. */
export async function startCeiling(dir: string): Promise<Server> {
  const db = join(dir, 'ceiling.sqlite');
  await migrate(`sqlite:${db}`);
  return start('ceiling', { CEILING_DB: db, NODE_PATH }, compile('ceiling-server.ts', dir));
}

/** Where the floor's routes live, beside ours (`/api/v1/sessions/…`) in the same application. */
export const FLOOR_PREFIX = '/api/v1/floor';

/** A constant answer: its body and, for lists, its X-Total-Count and Link headers. */
export interface FloorAnswer {
  body: unknown;
  headers?: Record<string, string>;
}

export interface FloorBodies {
  append: FloorAnswer;
  history: FloorAnswer;
  branch: FloorAnswer;
  list: FloorAnswer;
  session: FloorAnswer;
}

/** Our application with a constant-answer controller (floor-server.ts). */
export function startFloor(dir: string, bodies: FloorBodies): Promise<Server> {
  const file = join(dir, 'floor-bodies.json');
  writeFileSync(file, JSON.stringify(bodies));
  return start(
    'floor',
    {
      DATABASE_URL: `sqlite:${join(dir, 'floor.sqlite')}`,
      FLOOR_BODIES: file,
      FLOOR_PREFIX,
      NODE_PATH,
    },
    compile('floor-server.ts', dir),
  );
}

export function assertAlive(server: Server): void {
  const { exitCode, signalCode } = server.child;
  if (exitCode !== null || signalCode !== null) {
    throw new Error(`${server.name} has died (${exitCode ?? signalCode}): ${server.stderr()}`);
  }
}

function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/**
 * Peak resident set size (VmHWM) in MiB of a process and its children (the workers of a cluster),
 * added up; undefined where /proc is not available.
 */
export function peakRssMiB(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  let total = 0;
  for (const each of [pid, ...childPids(pid)]) {
    try {
      const kib = /^VmHWM:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${each}/status`, 'utf8'))?.[1];
      if (kib !== undefined) total += Number(kib) / 1024;
    } catch {
      if (each === pid) return undefined;
    }
  }
  return total;
}

/** Current resident set size in MiB. */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1] ?? 0) / 1024;
}

const schemas: Array<{ url: string; schema: string }> = [];

/**
 * The bench seeds thousands of rows: on PostgreSQL it works in a schema of its own (dropped at the
 * end) rather than in whatever the given database already holds. An SQLite URL is returned as is.
 */
export async function benchSchema(databaseUrl: string): Promise<string> {
  if (!isPostgres(databaseUrl)) return databaseUrl;
  const schema = `bench_${process.pid}_${randomBytes(3).toString('hex')}`;
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(`CREATE SCHEMA "${schema}"`);
  } finally {
    await client.end();
  }
  schemas.push({ url: databaseUrl, schema });
  const url = new URL(databaseUrl);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return url.toString();
}

async function dropBenchSchemas(): Promise<void> {
  for (const { url, schema } of schemas.splice(0)) {
    const client = new Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    } finally {
      await client.end();
    }
  }
}

/**
 * The frame of every bench script: a temporary directory, servers and PostgreSQL schemas cleaned up
 * however the run ends (done, failed, Ctrl-C), a one-line error and exit code 1 on failure.
 * `run` returns the exit code.
 */
export function runBenchScript(name: string, run: (tmp: string) => Promise<number>): void {
  const tmp = mkdtempSync(join(tmpdir(), `chat-${name.replace(/\W/g, '-')}-`));
  const cleanUp = async () => {
    await killServers();
    await dropBenchSchemas();
    rmSync(tmp, { recursive: true, force: true });
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`${signal}: stopping the servers\n`);
      void cleanUp().finally(() => process.exit(130));
    });
  }
  run(tmp)
    .then((code) => (process.exitCode = code))
    .catch((error: unknown) => {
      process.stderr.write(
        `${name} failed: ${error instanceof Error ? error.message : String(error)}\n`,
      );
      process.exitCode = 1;
    })
    .finally(() => void cleanUp());
}
