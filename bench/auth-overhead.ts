/**
 * `npm run bench:auth`: what AUTH_MODE=api-key costs per request. Starts the built server twice on
 * fresh SQLite files — without authentication and with API keys — and measures the same requests
 * against both in one run (32 connections, 2 s warm-up + 5 s; BENCH_CONNECTIONS, BENCH_DURATION and
 * BENCH_WARMUP apply). Rate limiting is off in both, so the difference is the key lookup alone.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiKeysService } from '../src/auth/api-keys.service';
import { validateEnv } from '../src/config/env.validation';
import { openDataSource } from '../src/database/data-source.factory';
import { buildDataSourceOptions } from '../src/database/database.options';
import { DatabaseService } from '../src/database/database.service';
import { readConfig } from './config';
import { fire, get, measurement, type Measurement, post, problemsOf, type Request } from './load';
import { killAllNow, stopAll } from './processes';
import { userMessage } from './seed';
import { ensureBuilt, startOurServer } from './servers';

async function createKey(databaseUrl: string): Promise<string> {
  const env = validateEnv({ DATABASE_URL: databaseUrl });
  const dataSource = await openDataSource({ ...buildDataSourceOptions(env), startupTimeoutMs: 0 });
  try {
    return (await new ApiKeysService(new DatabaseService(dataSource)).create('bench')).key;
  } finally {
    await dataSource.destroy();
  }
}

async function createSession(url: string, headers: Record<string, string>): Promise<string> {
  const res = await fetch(`${url}/api/v1/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: '{}',
  });
  if (res.status !== 201) throw new Error(`POST /api/v1/sessions answered ${res.status}`);
  return ((await res.json()) as { id: string }).id;
}

async function measure(
  url: string,
  requests: Request[],
  seconds: number,
  warmup: number,
  connections: number,
): Promise<Measurement> {
  if (warmup > 0) await fire(url, requests, connections, { duration: warmup });
  const result = await fire(url, requests, connections, { duration: seconds });
  const problems = problemsOf(result);
  if (problems) throw new Error(problems);
  return measurement(result);
}

async function main(): Promise<void> {
  const config = readConfig();
  const tmp = mkdtempSync(join(tmpdir(), 'chat-bench-auth-'));
  process.on('exit', killAllNow);
  try {
    await ensureBuilt();
    const plainUrl = `sqlite:${join(tmp, 'none.sqlite')}`;
    const keyedUrl = `sqlite:${join(tmp, 'keyed.sqlite')}`;
    const plain = await startOurServer(plainUrl, config, { AUTH_MODE: 'none' }, 'AUTH_MODE=none');
    const keyed = await startOurServer(
      keyedUrl,
      config,
      { AUTH_MODE: 'api-key' },
      'AUTH_MODE=api-key',
    );
    const auth = { authorization: `Bearer ${await createKey(keyedUrl)}` };

    const targets = [
      { name: 'none', url: plain.url, headers: {} as Record<string, string> },
      { name: 'api-key', url: keyed.url, headers: auth },
    ];
    const sessions = await Promise.all(targets.map((t) => createSession(t.url, t.headers)));
    const scenarios: [string, (i: number) => Request][] = [
      ['get one session', (i) => get(`/api/v1/sessions/${sessions[i]}`, targets[i].headers)],
      ['list sessions', (i) => get('/api/v1/sessions', targets[i].headers)],
      [
        'append a message',
        (i) => post(`/api/v1/sessions/${sessions[i]}/messages`, userMessage, targets[i].headers),
      ],
    ];
    console.log(
      `${config.connections} connections, ${config.warmup} s warm-up + ${config.duration} s per round, SQLite`,
    );
    console.log(
      'scenario            none req/s  p50  p99   api-key req/s  p50  p99   throughput  cost/request',
    );
    for (const [name, request] of scenarios) {
      const results: Measurement[] = [];
      for (let i = 0; i < targets.length; i++) {
        results.push(
          await measure(
            targets[i].url,
            [request(i)],
            config.duration,
            config.warmup,
            config.connections,
          ),
        );
      }
      const [none, keyedResult] = results;
      const costUs = (1 / keyedResult.requestsPerSecond - 1 / none.requestsPerSecond) * 1e6;
      console.log(
        `${name.padEnd(18)} ${none.requestsPerSecond.toFixed(0).padStart(11)} ${String(none.p50Ms).padStart(4)} ${String(none.p99Ms).padStart(4)}` +
          `   ${keyedResult.requestsPerSecond.toFixed(0).padStart(13)} ${String(keyedResult.p50Ms).padStart(4)} ${String(keyedResult.p99Ms).padStart(4)}` +
          `   ${((keyedResult.requestsPerSecond / none.requestsPerSecond) * 100).toFixed(0).padStart(9)} %   ${costUs.toFixed(0).padStart(6)} µs`,
      );
    }
  } finally {
    await stopAll();
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(
    `bench:auth failed: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exitCode = 1;
});
