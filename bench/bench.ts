/**
 * `npm run bench`: load-tests the built server (dist/main.js, rebuilt first when src/ is newer)
 * against a plain node:http + better-sqlite3 baseline (bench/baseline-server.ts), each started as
 * a child process on its own temporary database and seeded through its HTTP API, and prints
 * requests/s, p50 and p99 latency per scenario, the ratio ours/baseline, and our peak RSS.
 *
 * Options (a command-line flag wins over its environment variable):
 *   BENCH_CONNECTIONS  --connections   concurrent connections (default 32)
 *   BENCH_DURATION     --duration      seconds of each measured round (default 5)
 *   BENCH_WARMUP       --warmup        seconds of the warm-up round before each measured round
 *                                      (default 2; 0 skips it). The JIT needs it: cold numbers
 *                                      are far worse and say little about a running service.
 *   BENCH_DATABASE_URL --database-url  DATABASE_URL of our server (default: a fresh SQLite file),
 *                                      e.g. postgres://root@127.0.0.1:5432/test; the bench works
 *                                      in a schema of its own there and drops it at the end
 *   BENCH_PROCESSES    --processes     processes of our server (default 1; more runs
 *                                      dist/cluster.js and needs PostgreSQL)
 * e.g. `npm run bench -- --connections 64 --duration 10`
 *
 * Results go to stdout, progress and the servers' own output to stderr. The exit code is non-zero
 * when any round (warm-up included) saw a connection error, a timeout or a non-2xx answer.
 */
import { join } from 'node:path';
import { type BenchConfig, readConfig } from './config';
import { fire, measurement, type Measurement, problemsOf } from './load';
import { runBenchScript } from './script';
import { assertAlive, peakRssMiB } from './processes';
import { formatMiB, machineInfo, type Row, table, targetNote } from './report';
import { SCENARIOS, type Scenario } from './scenarios';
import { type Fixture, seed, sessionCount } from './seed';
import { benchSchema } from './postgres';
import { ensureBuilt, type Server, serverEntry, startBaseline, startOurServer } from './servers';

interface Target {
  server: Server;
  fixture: Fixture;
}

const started = Date.now();

function progress(line: string): void {
  const seconds = ((Date.now() - started) / 1000).toFixed(0).padStart(3);
  process.stderr.write(`[${seconds} s] ${line}\n`);
}

/** The database URL for printing: a password, if any, is not echoed. */
function redact(url: string): string {
  return url.replace(/^(postgres(?:ql)?:\/\/[^:/@]+:)[^@]*@/, '$1***@');
}

async function round(
  target: Target,
  scenario: Scenario,
  config: BenchConfig,
  kind: 'warm-up' | 'measured',
  failures: string[],
): Promise<Measurement> {
  const duration = kind === 'warm-up' ? config.warmup : config.duration;
  const requests = scenario.requests(target.fixture);
  const result = await fire(target.server.url, requests, config.connections, { duration });
  assertAlive(target.server.child, target.server.name);
  const problems = problemsOf(result);
  if (problems) failures.push(`${target.server.name}, ${scenario.name} (${kind}): ${problems}`);
  return measurement(result);
}

async function measure(
  target: Target,
  scenario: Scenario,
  config: BenchConfig,
  failures: string[],
): Promise<Measurement> {
  if (config.warmup > 0) await round(target, scenario, config, 'warm-up', failures);
  const result = await round(target, scenario, config, 'measured', failures);
  progress(
    `${target.server.name.padEnd(10)} ${scenario.name}: ${result.requestsPerSecond.toFixed(0)} req/s, ` +
      `p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms`,
  );
  return result;
}

async function prepare(server: Server): Promise<Target> {
  progress(`seeding ${server.name}`);
  const fixture = await seed(server.url);
  progress(`${server.name} holds ${await sessionCount(server.url)} sessions`);
  return { server, fixture };
}

async function run(config: BenchConfig, tmp: string): Promise<number> {
  // Fails before the build when the requested mode does not exist.
  serverEntry(config.processes, config.databaseUrl);
  await ensureBuilt();
  const ourDatabase = config.databaseUrl
    ? await benchSchema(config.databaseUrl)
    : `sqlite:${join(tmp, 'bench.sqlite')}`;
  console.log(`${machineInfo(config, redact(config.databaseUrl ?? ourDatabase))}\n`);

  const ours = await prepare(await startOurServer(ourDatabase, config));
  const baseline = await prepare(await startBaseline(join(tmp, 'baseline.sqlite')));

  const failures: string[] = [];
  const rows: Row[] = [];
  for (const scenario of SCENARIOS) {
    rows.push({
      scenario: scenario.name,
      ours: await measure(ours, scenario, config, failures),
      baseline: await measure(baseline, scenario, config, failures),
    });
  }

  console.log(table(rows));
  console.log(targetNote());
  console.log(
    `peak RSS (VmHWM): our server ${formatMiB(peakRssMiB(ours.server.child.pid))}, ` +
      `baseline ${formatMiB(peakRssMiB(baseline.server.child.pid))}`,
  );
  if (failures.length === 0) return 0;
  console.log(`\n${failures.length} round(s) were not clean:`);
  for (const failure of failures) console.log(`  ${failure}`);
  return 1;
}

runBenchScript('bench', (tmp) => run(readConfig(), tmp));
