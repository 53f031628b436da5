/**
 * How long the retention sweep holds the database for: seeds expired sessions straight into the
 * tables (bench/seed-expired.ts) next to live ones, runs one sweep round, and prints the longest
 * batch (on SQLite: the write lock's hold, the time every other write waits at worst).
 *
 *   npx ts-node --transpile-only bench/retention-sweep.ts [--sessions=100000] [--messages=2]
 *     [--batch=100] [--database-url=postgres://…]
 *
 * Without a URL: a new SQLite file in the temporary directory (WAL, synchronous=FULL: as served).
 * The figure is quoted in docs/benchmarks.md.
 */
import type { ConfigService } from '@nestjs/config';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { type Env, validateEnv } from '../src/config/env.validation';
import { buildDataSourceOptions } from '../src/database/database.options';
import { DatabaseService } from '../src/database/database.service';
import { entities } from '../src/database/entities';
import { OwnerRule } from '../src/sessions/owner-rule';
import { RetentionSweep, SWEEP_BATCH } from '../src/sessions/retention-sweep';
import { SessionCountsRepository } from '../src/sessions/session-counts.repository';
import { SessionsRepository } from '../src/sessions/sessions.repository';
import { seedExpiredSessions } from './seed-expired';

const option = (name: string, fallback: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;

async function main(): Promise<void> {
  const count = Number(option('sessions', '100000'));
  const messagesEach = Number(option('messages', '2'));
  const file = join(tmpdir(), `retention-sweep-${process.pid}.sqlite`);
  const url = option('database-url', `sqlite:${file}`);
  const source = await new DataSource({
    ...buildDataSourceOptions(validateEnv({ DATABASE_URL: url })),
    entities,
    migrationsRun: true,
  }).initialize();
  try {
    const db = new DatabaseService(source);
    const batch = Number(
      option('batch', String(db.isSqlite ? SWEEP_BATCH.sqlite : SWEEP_BATCH.postgres)),
    );
    const rule = new OwnerRule(db.isSqlite, 0);
    const config = { get: () => 0 } as unknown as ConfigService<Env, true>;
    const sweep = new RetentionSweep(
      db,
      new SessionsRepository(db, rule),
      new SessionCountsRepository(db, rule),
      config,
    );
    let start = Date.now();
    await db.bulkWrite(async (m) => {
      await seedExpiredSessions(m, { count, owner: 'expired-owner', messagesEach });
    });
    console.log(
      `seeded ${count} expired sessions with ${messagesEach} messages each in ${Date.now() - start} ms`,
    );
    start = Date.now();
    const result = await sweep.sweep(batch);
    const total = Date.now() - start;
    console.log(
      `${source.options.type}: deleted ${result.deleted} sessions in ${result.batches} batches of ` +
        `${batch}, ${total} ms in all; longest batch ${result.longestBatchMs.toFixed(1)} ms, ` +
        `mean ${(total / result.batches).toFixed(1)} ms`,
    );
    const [{ n }] = await source.query<{ n: number | string }[]>(
      'SELECT COUNT(*) AS "n" FROM "chat_messages"',
    );
    if (Number(n) !== 0) throw new Error(`${n} messages left behind`);
  } finally {
    await source.destroy();
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${file}${suffix}`, { force: true });
  }
}

void main();
