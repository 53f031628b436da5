import { ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const STOP_GRACE_MS = 5000;
const READY_TIMEOUT_MS = 60_000;

/** Every child still running, so a failure or Ctrl-C anywhere can stop them all. */
const running = new Set<ChildProcess>();

export function spawnChild(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): ChildProcess {
  // Children write to our stderr, which keeps stdout for the results.
  const child = spawn(command, args, { ...options, stdio: ['ignore', 2, 2] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve(child.exitCode);
  }
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** Runs a command to completion; a non-zero exit is an error. */
export async function runToCompletion(command: string, args: string[]): Promise<void> {
  const code = await exited(spawnChild(command, args));
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with code ${code}`);
}

export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const done = exited(child);
  const timedOut = await Promise.race([done.then(() => false), sleep(STOP_GRACE_MS, true)]);
  if (timedOut) {
    child.kill('SIGKILL');
    await done;
  }
}

export async function stopAll(): Promise<void> {
  await Promise.all([...running].map(stop));
}

/** Last resort when the bench process exits without having cleaned up: no waiting is possible there. */
export function killAllNow(): void {
  for (const child of running) child.kill('SIGKILL');
}

/**
 * Asks the OS for a port that is free right now. Another process could take it before the server
 * binds; the server then fails loudly (EADDRINUSE) rather than measuring the wrong thing.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    return res.ok;
  } catch {
    return false;
  }
}

/** Resolves once `url` answers 200; fails as soon as the child exits or after the timeout. */
export async function waitUntilReady(
  child: ChildProcess,
  url: string,
  name: string,
): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `${name} exited during start-up (code ${child.exitCode ?? child.signalCode})`,
      );
    }
    if (await answers(url)) return;
    await sleep(100);
  }
  throw new Error(`${name} did not answer GET ${url} within ${READY_TIMEOUT_MS / 1000} s`);
}

export function assertAlive(child: ChildProcess, name: string): void {
  if (child.exitCode !== null || child.signalCode !== null) {
    throw new Error(`${name} has died (code ${child.exitCode ?? child.signalCode})`);
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
      const status = readFileSync(`/proc/${each}/status`, 'utf8');
      const kib = /^VmHWM:\s+(\d+)\s+kB$/m.exec(status)?.[1];
      if (kib !== undefined) total += Number(kib) / 1024;
    } catch {
      if (each === pid) return undefined;
    }
  }
  return total;
}
