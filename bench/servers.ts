import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { DataSource } from 'typeorm';
import ts from 'typescript';
import { validateEnv } from '../src/config/env.validation';
import { buildDataSourceOptions } from '../src/database/database.options';
import type { BenchConfig } from './config';
import { freePort, runToCompletion, spawnChild, waitUntilReady } from './processes';

const ROOT = resolve(__dirname, '..');
const HOST = '127.0.0.1';

export interface Server {
  name: string;
  url: string;
  child: ChildProcess;
}

function newestMtimeMs(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const mtime = entry.isDirectory() ? newestMtimeMs(path) : statSync(path).mtimeMs;
    newest = Math.max(newest, mtime);
  }
  return newest;
}

/** Builds dist/ when it is missing or older than any file in src/: we measure what `src` says. */
export async function ensureBuilt(): Promise<void> {
  const main = join(ROOT, 'dist', 'main.js');
  if (existsSync(main) && statSync(main).mtimeMs >= newestMtimeMs(join(ROOT, 'src'))) return;
  process.stderr.write('dist/ is missing or older than src/: running npm run build\n');
  await runToCompletion('npm', ['run', '--prefix', ROOT, 'build']);
}

/**
 * The script that starts our service with `processes` processes: dist/main.js for one, the cluster
 * entry point (dist/cluster.js, `npm run start:cluster`) for more, which needs PostgreSQL.
 */
export function serverEntry(
  processes: number,
  databaseUrl: string | undefined,
): { script: string; env: NodeJS.ProcessEnv } {
  if (processes === 1) return { script: join(ROOT, 'dist', 'main.js'), env: {} };
  if (!databaseUrl || !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new Error(
      `BENCH_PROCESSES=${processes} needs BENCH_DATABASE_URL=postgres://…: SQLite is single-process.`,
    );
  }
  return { script: join(ROOT, 'dist', 'cluster.js'), env: { CLUSTER_WORKERS: String(processes) } };
}

async function startServer(
  name: string,
  command: string[],
  env: NodeJS.ProcessEnv,
): Promise<Server> {
  const port = await freePort();
  const url = `http://${HOST}:${port}`;
  const child = spawnChild(process.execPath, command, {
    env: { ...process.env, ...env, PORT: String(port), HOST },
    cwd: ROOT,
  });
  await waitUntilReady(child, `${url}/`, name);
  return { name, url, child };
}

export function startOurServer(
  databaseUrl: string,
  config: BenchConfig,
  extraEnv: NodeJS.ProcessEnv = {},
  name = 'our server',
): Promise<Server> {
  const entry = serverEntry(config.processes, databaseUrl);
  return startServer(name, [entry.script], {
    ...entry.env,
    DATABASE_URL: databaseUrl,
    LOG_LEVEL: 'warn',
    NODE_ENV: 'production',
    // One client sending thousands of requests a second must not be throttled.
    RATE_LIMIT_PER_MINUTE: '0',
    ...extraEnv,
  });
}

/** The baseline gets its tables from the service's own migrations, so both run the same schema. */
async function migrate(sqlitePath: string): Promise<void> {
  const env = validateEnv({ DATABASE_URL: `sqlite:${sqlitePath}` });
  const dataSource = new DataSource(buildDataSourceOptions(env));
  await dataSource.initialize();
  try {
    await dataSource.runMigrations();
  } finally {
    await dataSource.destroy();
  }
}

/**
 * Compiled to plain JavaScript next to its database and run by plain node, as the real server is:
 * under ts-node the TypeScript compiler would sit in the baseline's heap, inflating its RSS and GC.
 */
function compileBaseline(outDir: string): string {
  const source = readFileSync(join(ROOT, 'bench', 'baseline-server.ts'), 'utf8');
  const { outputText } = ts.transpileModule(source, {
    compilerOptions: {
      module: ts.ModuleKind.CommonJS,
      target: ts.ScriptTarget.ES2023,
      esModuleInterop: true,
    },
  });
  const script = join(outDir, 'baseline-server.js');
  writeFileSync(script, outputText);
  return script;
}

export async function startBaseline(sqlitePath: string): Promise<Server> {
  await migrate(sqlitePath);
  const script = compileBaseline(dirname(sqlitePath));
  return startServer('baseline', [script], {
    BASELINE_DB: sqlitePath,
    // The compiled file lives in a temporary directory; its imports resolve from the project.
    NODE_PATH: join(ROOT, 'node_modules'),
  });
}
