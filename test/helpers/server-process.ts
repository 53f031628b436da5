import { ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { validateEnv } from '../../src/config/env.validation';
import { buildDataSourceOptions } from '../../src/database/database.options';

export const MAIN = join(__dirname, '..', '..', 'dist', 'main.js');

/** The built server (`npm test` builds it first through `pretest`). */
export function assertBuilt(): void {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` first`);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export interface Exited {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * `withoutPrivileges`: file permissions bind the child even when the suite runs as root. Root keeps
 * its uid (so it still reaches a checkout in a private folder, which `nobody` could not) but loses
 * every capability, CAP_DAC_OVERRIDE included, through util-linux's `setpriv`.
 */
export interface RunAs {
  withoutPrivileges?: boolean;
}

/** Runs the built server with `env` (on top of a clean, quiet default) until it exits by itself. */
export function runServerToExit(
  env: Record<string, string>,
  timeoutMs = 20_000,
  runAs: RunAs = {},
): Promise<Exited> {
  assertBuilt();
  return new Promise((resolve, reject) => {
    const child = spawnServer(env, runAs);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not exit within ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** How to start a server: the bench also runs other scripts (the cluster entry point, its own servers). */
export interface SpawnOptions extends RunAs {
  /** The script node runs; dist/main.js when left out. */
  script?: string;
}

export function spawnServer(env: Record<string, string>, options: SpawnOptions = {}): ChildProcess {
  const script = options.script ?? MAIN;
  if (script === MAIN) assertBuilt();
  const dropCapabilities = options.withoutPrivileges === true && process.getuid?.() === 0;
  const [command, args] = dropCapabilities
    ? ['setpriv', ['--inh-caps=-all', '--bounding-set=-all', '--', process.execPath, script]]
    : [process.execPath, [script]];
  return spawn(command, args, {
    cwd: join(__dirname, '..', '..'),
    env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Polls `GET /health/ready` until the server answers 200; fails at once if `child` exits. */
export async function waitUntilReady(
  base: string,
  timeoutMs = 20_000,
  child?: ChildProcess,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) {
      throw new Error(`the server exited while starting (${child.exitCode ?? child.signalCode})`);
    }
    try {
      if ((await fetch(`${base}/health/ready`)).status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${base} did not become ready in ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface RunningServer {
  base: string;
  child: ChildProcess;
  /** Everything the server has written to stderr so far. */
  stderr(): string;
  /** SIGTERM (a graceful stop), then waits for the exit. */
  stop(): Promise<ExitStatus>;
  /** SIGKILL (a crash: no shutdown code runs), then waits for the exit. */
  kill(): Promise<ExitStatus>;
}

/** Every server child still running, so a failing test cannot leave one behind (see cleanup.ts). */
const running = new Set<ChildProcess>();

export function exitOf(child: ChildProcess): Promise<ExitStatus> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** Starts the built server (or `options.script`) on a free port and waits until it is ready. */
export async function startServer(
  env: Record<string, string>,
  options: SpawnOptions & { readyTimeoutMs?: number } = {},
): Promise<RunningServer> {
  const port = await freePort();
  const child = spawnServer({ PORT: String(port), HOST: '127.0.0.1', ...env }, options);
  running.add(child);
  child.once('exit', () => running.delete(child));
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout?.resume();
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitUntilReady(base, options.readyTimeoutMs, child);
  } catch (error) {
    child.kill('SIGKILL');
    await exitOf(child);
    throw new Error(`${(error as Error).message}; stderr: ${stderr}`);
  }
  const signal = (name: NodeJS.Signals) => () => {
    const exited = exitOf(child);
    child.kill(name);
    return exited;
  };
  return { base, child, stderr: () => stderr, stop: signal('SIGTERM'), kill: signal('SIGKILL') };
}

/** Kills every server child a test left running. */
export async function killServers(): Promise<void> {
  await Promise.all(
    [...running].map((child) => {
      const exited = exitOf(child);
      child.kill('SIGKILL');
      return exited;
    }),
  );
}

/**
 * `count` servers on the database `url`, started together (on PostgreSQL their migrations take
 * turns through the advisory lock), and a connection of the test's own to look at what they store.
 */
export async function serversOn(
  url: string,
  count: number,
): Promise<{ servers: RunningServer[]; db: DataSource }> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => startServer({ DATABASE_URL: url })),
  );
  const db = await new DataSource(
    buildDataSourceOptions(validateEnv({ DATABASE_URL: url })),
  ).initialize();
  return { servers, db };
}
