import cluster, { Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { validateEnv } from './config/env.validation';
import { loadEnvFile } from './config/load-env';

/**
 * `npm run start:cluster`: one API process per core on one machine, sharing the port (Node's
 * cluster module) and one PostgreSQL database. Correctness across processes comes from the
 * database (transactions, row locks, an advisory lock around migrations), never from the process.
 * SQLite is single-process, so it is refused here.
 */
const GIVE_UP_AFTER_MS = 10_000;

function exitWith(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

function workerCount(): number {
  const text = process.env.CLUSTER_WORKERS ?? '';
  if (text === '') return availableParallelism();
  const count = Number(text);
  if (!/^\d+$/.test(text) || count < 1 || count > 256) {
    exitWith(
      `Invalid configuration: CLUSTER_WORKERS must be an integer from 1 to 256 (got '${text}')`,
    );
  }
  return count;
}

function primary(): void {
  loadEnvFile();
  let env;
  try {
    env = validateEnv(process.env);
  } catch (error) {
    exitWith(`Configuration error: ${(error as Error).message}`);
  }
  if (env.DATABASE.type !== 'postgres') {
    exitWith(
      'Configuration error: start:cluster needs DATABASE_URL=postgres://…; SQLite is single-process (use npm start).',
    );
  }
  const count = workerCount();
  let stopping = false;
  const startedAt = new Map<Worker, number>();
  const fork = () => startedAt.set(cluster.fork(), Date.now());

  cluster.on('exit', (worker, code, signal) => {
    const lived = Date.now() - (startedAt.get(worker) ?? 0);
    startedAt.delete(worker);
    if (stopping) {
      if (startedAt.size === 0) process.exit(0);
      return;
    }
    if (code !== 0 && lived < GIVE_UP_AFTER_MS) {
      // A worker that dies while starting (bad database, port in use) would only die again.
      stopping = true;
      for (const other of startedAt.keys()) other.kill('SIGTERM');
      exitWith(
        `Worker ${worker.process.pid} failed during start-up (exit ${code ?? signal}); stopping.`,
      );
    }
    process.stderr.write(
      `Worker ${worker.process.pid} exited (${code ?? signal}); starting a new one\n`,
    );
    fork();
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      stopping = true;
      // Each worker stops accepting, finishes its requests in flight and closes its pool.
      for (const worker of startedAt.keys()) worker.kill('SIGTERM');
      if (startedAt.size === 0) process.exit(0);
    });
  }
  process.stdout.write(`Starting ${count} workers on ${env.HOST}:${env.PORT}\n`);
  for (let i = 0; i < count; i++) fork();
}

if (cluster.isPrimary) primary();
else void import('./main');
