/**
 * `npm run bench:upgrade`: how long the v1.2 upgrade (the conversation-trees migration) takes on a
 * large v1.1 database, and whether the service's tables can be read and written meanwhile.
 *
 * 1. Seeds a database as bench:large does (seed-large.ts), then reverts the conversation-trees
 *    migration: the v1.1 tables, holding every seeded message.
 * 2. Starts two probe processes: one reads a page of one session's messages every 50 ms, the other
 *    writes a message there the way a v1.1 server does (a row and its session's count, in one
 *    transaction), each on a connection of its own with a 120 s wait for locks.
 * 3. Runs the pending migration, as `npm run migration:run` or a starting server would, and times
 *    it; then prints the probe's longest waits and checks what the migration made.
 *
 * Options (flag or environment variable):
 *   --sessions     BENCH_SESSIONS     sessions (default 100,000)
 *   --messages     BENCH_MESSAGES     messages spread over them (default 1,000,000)
 *   --database-url BENCH_DATABASE_URL postgres://… (a schema of its own, dropped at the end);
 *                                     default: a SQLite file in a temporary directory
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { validateEnv } from '../src/config/env.validation';
import { buildDataSourceOptions } from '../src/database/database.options';
import { entities } from '../src/database/entities';
import { Options } from './options';
import { seedLarge } from './seed-large';
import { benchSchema, progress, ROOT, runBenchScript } from './servers';

/** What the probe writes; the messages written after the upgrade are roots, left out of the check. */
const PROBE_TEXT = 'written during the upgrade';

/**
 * The probe, run by a second Node process so that SQLite's synchronous driver in this one cannot
 * hold it up. It prints one JSON line when told to stop (a line on stdin).
 */
const PROBE = `
const [url, sessionId, mode] = process.argv.slice(1);
const waits = { read: [], write: [] };
const errors = [];
let stop = false;
process.stdin.once('data', () => (stop = true));
const record = (kind, t0) => waits[kind].push(performance.now() - t0);
async function main() {
  let read, write, close;
  if (url.startsWith('sqlite:')) {
    const db = new (require('better-sqlite3'))(url.slice('sqlite:'.length));
    db.pragma('busy_timeout = 120000');
    const page = db.prepare('SELECT "id", "content" FROM "chat_messages" WHERE "session_id" = ? ORDER BY "timestamp", "id" LIMIT 50');
    const insert = db.prepare('INSERT INTO "chat_messages" ("session_id", "timestamp", "role", "content") VALUES (?, ?, ?, ?)');
    const count = db.prepare('UPDATE "sessions" SET "message_count" = "message_count" + 1 WHERE "id" = ?');
    read = async () => page.all(sessionId);
    write = async () => db.transaction(() => { insert.run(sessionId, Date.now(), 'user', '${PROBE_TEXT}'); count.run(sessionId); })();
    close = async () => db.close();
  } else {
    const { Client } = require('pg');
    const client = new Client({ connectionString: url });
    await client.connect();
    await client.query("SET lock_timeout = '120s'");
    read = () => client.query('SELECT "id", "content" FROM "chat_messages" WHERE "session_id" = $1 ORDER BY "timestamp", "id" LIMIT 50', [sessionId]);
    write = async () => {
      await client.query('BEGIN');
      await client.query('INSERT INTO "chat_messages" ("session_id", "timestamp", "role", "content") VALUES ($1, $2, $3, $4)', [sessionId, Date.now(), 'user', '${PROBE_TEXT}']);
      await client.query('UPDATE "sessions" SET "message_count" = "message_count" + 1 WHERE "id" = $1', [sessionId]);
      await client.query('COMMIT');
    };
    close = () => client.end();
  }
  console.error('probe ready');
  while (!stop) {
    const run = mode === 'read' ? read : write;
    const t0 = performance.now();
    try { await run(); record(mode, t0); } catch (error) { errors.push(mode + ': ' + error.message); }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await close();
  console.log(JSON.stringify({ waits, errors }));
}
main().catch((error) => { console.log(JSON.stringify({ waits, errors: [...errors, error.message] })); });
`;

interface ProbeResult {
  waits: { read: number[]; write: number[] };
  errors: string[];
}

function startProbe(url: string, sessionId: string, mode: 'read' | 'write') {
  const child = spawn(process.execPath, ['-e', PROBE, url, sessionId, mode], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const ready = new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      if (d.toString().includes('probe ready')) resolve();
      else process.stderr.write(d);
    });
    child.once('exit', (code) => reject(new Error(`the probe exited with code ${code}`)));
  });
  return {
    ready,
    async stop(): Promise<ProbeResult> {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.stdin.end('stop\n');
      await exited;
      return JSON.parse(out) as ProbeResult;
    },
  };
}

const longest = (times: number[]) => (times.length ? Math.max(...times) : NaN);

async function run(tmp: string): Promise<number> {
  const args = new Options();
  const sessions = args.integer('--sessions', 'BENCH_SESSIONS', 100_000, 1);
  const messages = args.integer('--messages', 'BENCH_MESSAGES', 1_000_000);
  const base = args.text('--database-url', 'BENCH_DATABASE_URL');
  args.rejectUnknown();
  const url = base ? await benchSchema(base) : `sqlite:${join(tmp, 'upgrade.sqlite')}`;

  progress(
    `seeding ${sessions.toLocaleString('en')} sessions, ${messages.toLocaleString('en')} messages`,
  );
  await seedLarge(
    url,
    { sessions, messages, deepMessages: 0, branchMessages: 0, seed: 5 },
    progress,
  );
  const source = new DataSource({
    // The migration lifts the statement timeout itself; the checks after it read every row.
    ...buildDataSourceOptions(validateEnv({ DATABASE_URL: url, DB_STATEMENT_TIMEOUT_MS: '0' })),
    entities,
    migrationsRun: false,
  });
  await source.initialize();
  try {
    progress('reverting the conversation-trees migration: a v1.1 database');
    await source.undoLastMigration({ transaction: 'each' });
    const [busiest] = await source.query<{ id: string }[]>(
      `SELECT "id" FROM "sessions" ORDER BY "message_count" DESC LIMIT 1`,
    );
    // A reader and a writer, each a process of its own: a write waiting for a lock holds up its
    // process (SQLite's driver waits synchronously), and must not hide how reads fare meanwhile.
    const probes = [startProbe(url, busiest.id, 'read'), startProbe(url, busiest.id, 'write')];
    await Promise.all(probes.map((p) => p.ready));
    // The probe's waits before the migration starts, as a baseline.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    progress('running the migration');
    const t0 = performance.now();
    const ran = await source.runMigrations({ transaction: 'each' });
    const seconds = (performance.now() - t0) / 1000;
    const [reads, writes] = await Promise.all(probes.map((p) => p.stop()));
    const probed = {
      waits: { read: reads.waits.read, write: writes.waits.write },
      errors: [...reads.errors, ...writes.errors],
    };

    const [check] = await source.query<Record<string, number | string>[]>(
      `SELECT (SELECT COUNT(*) FROM "chat_messages") AS "messages",
              (SELECT COUNT(*) FROM "chat_messages" WHERE "parent_id" IS NULL AND "content" <> '${PROBE_TEXT}') AS "roots",
              (SELECT COUNT(*) FROM "sessions" WHERE "message_count" > 0) AS "nonempty",
              (SELECT COUNT(*) FROM "sessions") AS "sessions",
              (SELECT COUNT(*) FROM "sessions" WHERE ("message_count" > 0) <> ("current_message_id" IS NOT NULL)) AS "badcurrent"`,
    );
    const database = base ? 'PostgreSQL' : 'SQLite (WAL, synchronous=FULL)';
    console.log(
      `Upgrade to v1.2 (${ran.map((m) => m.name).join(', ')}) on ${database}: ` +
        `${Number(check.messages).toLocaleString('en')} messages in ${Number(check.sessions).toLocaleString('en')} sessions: ${seconds.toFixed(1)} s`,
    );
    console.log(
      `  after it: ${Number(check.roots).toLocaleString('en')} roots for ${Number(check.nonempty).toLocaleString('en')} non-empty sessions ` +
        `(one chain each expected); ${check.badcurrent} sessions whose current message disagrees with their count`,
    );
    console.log(
      `  meanwhile, on another connection: ${probed.waits.read.length} reads of a 50-message page, longest ${longest(probed.waits.read).toFixed(0)} ms; ` +
        `${probed.waits.write.length} writes of a message, longest ${longest(probed.waits.write).toFixed(0)} ms` +
        (probed.errors.length
          ? `; ${probed.errors.length} failed: ${probed.errors.slice(0, 3).join('; ')}`
          : ''),
    );
    const chained =
      Number(check.roots) === Number(check.nonempty) && Number(check.badcurrent) === 0;
    return chained && probed.errors.length === 0 ? 0 : 1;
  } finally {
    await source.destroy();
  }
}

runBenchScript('bench:upgrade', run);
