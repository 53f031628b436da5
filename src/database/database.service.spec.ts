import Database, { SqliteError } from 'better-sqlite3';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DataSource, EntityManager } from 'typeorm';
import { validateEnv } from '../config/env.validation';
import { buildDataSourceOptions } from './database.options';
import { DatabaseService, MAX_WRITES_PER_COMMIT } from './database.service';

async function openDatabase(path = ':memory:'): Promise<DataSource> {
  const dataSource = new DataSource(
    buildDataSourceOptions(validateEnv({ DATABASE_URL: `sqlite:${path}` })),
  );
  await dataSource.initialize();
  await dataSource.runMigrations();
  return dataSource;
}

function insertSession(manager: EntityManager, id: string, name = id): Promise<unknown> {
  return manager.query(
    `INSERT INTO "sessions" ("id", "name", "created_at", "last_updated_at", "message_count")
     VALUES (?, ?, 0, 0, 0)`,
    [id, name],
  );
}

/**
 * A name too big for a database capped two pages above its size. SQLite hits SQLITE_FULL while
 * splitting b-tree pages, where it rolls back the whole transaction, not just the statement.
 */
const HUGE_NAME = 'x y '.repeat(2000);

/** Lets the database grow by `pages` pages only (per connection), like a disk about to be full. */
async function capDatabase(manager: EntityManager, pages: number): Promise<void> {
  const [{ page_count }]: { page_count: number }[] = await manager.query('PRAGMA page_count');
  await manager.query(`PRAGMA max_page_count = ${page_count + pages}`);
}

function codeOf(result: PromiseSettledResult<unknown>): string | undefined {
  if (result.status === 'fulfilled') return 'fulfilled';
  const error = result.reason as { code?: string; driverError?: { code?: string } };
  return error.driverError?.code ?? error.code;
}

function queriesOf(dataSource: DataSource): string[] {
  const queries: string[] = [];
  const runner = dataSource.driver.createQueryRunner('master');
  const query = runner.query.bind(runner);
  jest.spyOn(runner, 'query').mockImplementation((sql: string, ...rest: unknown[]) => {
    queries.push(sql);
    return (query as (...args: unknown[]) => Promise<unknown>)(sql, ...rest);
  });
  return queries;
}

function transactionState(dataSource: DataSource) {
  const runner = dataSource.driver.createQueryRunner('master') as unknown as {
    isTransactionActive: boolean;
    transactionDepth: number;
  };
  const connection = (dataSource.driver as unknown as { databaseConnection: Database.Database })
    .databaseConnection;
  return {
    typeorm: { active: runner.isTransactionActive, depth: runner.transactionDepth },
    sqlite: connection.inTransaction,
  };
}

async function sessionIds(dataSource: DataSource): Promise<string[]> {
  const rows: { id: string }[] = await dataSource.query(
    'SELECT "id" FROM "sessions" ORDER BY "id"',
  );
  return rows.map((r) => r.id);
}

/** A seeded pseudo-random sequence, so every run injects the same failures and delays. */
function* seeded(seed: number): Generator<number> {
  let x = seed;
  for (;;) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    yield x / 2 ** 31;
  }
}

describe('DatabaseService on SQLite', () => {
  let dataSource: DataSource;
  let db: DatabaseService;

  beforeEach(async () => {
    dataSource = await openDatabase();
    db = new DatabaseService(dataSource);
  });
  afterEach(() => dataSource.destroy());

  it('keeps exactly the writes it acknowledged when hundreds overlap with rollbacks and delays', async () => {
    const random = seeded(42);
    const plan = Array.from({ length: 300 }, (_, i) => ({
      id: `s${String(i).padStart(3, '0')}`,
      fails: random.next().value! < 0.3,
      delayMs: random.next().value! < 0.2 ? Math.floor(random.next().value! * 5) : -1,
    }));

    const results = await Promise.allSettled(
      plan.map((p) =>
        db.write(async (manager) => {
          await insertSession(manager, p.id);
          if (p.delayMs >= 0) await sleep(p.delayMs); // the event loop turns while the write is open
          if (p.fails) throw new Error(`injected failure ${p.id}`);
          return p.id;
        }),
      ),
    );

    const acknowledged = plan.filter((_, i) => results[i].status === 'fulfilled').map((p) => p.id);
    expect(acknowledged).toEqual(plan.filter((p) => !p.fails).map((p) => p.id));
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(
      plan.filter((p) => p.fails).length,
    );
    expect(await sessionIds(dataSource)).toEqual(acknowledged);
  });

  it('never lets a read see a write that is still open or later rolls back', async () => {
    let stop = false;
    let doomedSeen = 0;
    let reads = 0;
    const reader = (async () => {
      while (!stop) {
        const rows: { n: number }[] = await db.read((m) =>
          m.query(`SELECT COUNT(*) AS "n" FROM "sessions" WHERE "name" LIKE 'doomed%'`),
        );
        doomedSeen += rows[0].n;
        reads++;
        await sleep(0);
      }
    })();
    const writes: Promise<unknown>[] = [];
    for (let wave = 0; wave < 10; wave++) {
      for (let i = wave * 10; i < wave * 10 + 10; i++) {
        writes.push(
          db.write(async (manager) => {
            await insertSession(manager, i % 2 ? `doomed${i}` : `kept${i}`);
            await sleep(1);
            if (i % 2) throw new Error('rolled back');
          }),
        );
      }
      await sleep(2);
    }
    await Promise.allSettled(writes);
    stop = true;
    await reader;
    expect(reads).toBeGreaterThan(1);
    expect(doomedSeen).toBe(0);
    expect(await sessionIds(dataSource)).toHaveLength(50);
  });

  it('commits writes that queue up together, each in its own savepoint', async () => {
    const queries: string[] = [];
    const original = dataSource.driver.createQueryRunner('master');
    const query = original.query.bind(original);
    jest.spyOn(original, 'query').mockImplementation((sql: string, ...rest: unknown[]) => {
      queries.push(sql);
      return (query as (...args: unknown[]) => Promise<unknown>)(sql, ...rest);
    });
    const n = MAX_WRITES_PER_COMMIT + 6;
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        db.write((m) => insertSession(m, `b${String(i).padStart(3, '0')}`)),
      ),
    );
    expect(queries.filter((q) => q === 'COMMIT')).toHaveLength(2);
    expect(queries.filter((q) => q.startsWith('SAVEPOINT'))).toHaveLength(n);
    expect(await sessionIds(dataSource)).toHaveLength(n);
  });

  it('rejects every write of a batch whose COMMIT fails, and keeps none of them', async () => {
    // A deferred foreign key is only checked at COMMIT, so this batch's commit fails as a whole.
    await dataSource.query('PRAGMA defer_foreign_keys = ON');
    const writes = [
      db.write((m) => insertSession(m, 'a')),
      db.write((m) =>
        m.query(
          `INSERT INTO "chat_messages" ("session_id", "timestamp", "role", "content") VALUES ('ghost', 1, 'user', 'x')`,
        ),
      ),
    ];
    const results = await Promise.allSettled(writes);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(await sessionIds(dataSource)).toEqual([]);
    expect(await db.write((m) => insertSession(m, 'after'))).toBeDefined();
    expect(await sessionIds(dataSource)).toEqual(['after']);
  });

  it('fails only the write whose I/O error ended the transaction, and commits the others', async () => {
    // A real I/O error makes SQLite roll the whole transaction back; this driver wrapper does the
    // same for one statement, marked by a comment in its SQL.
    const connection = (dataSource.driver as unknown as { databaseConnection: Database.Database })
      .databaseConnection;
    const prepare = connection.prepare.bind(connection);
    jest.spyOn(connection, 'prepare').mockImplementation((sql: string) => {
      const statement = prepare(sql);
      if (!sql.includes('/* io-error */')) return statement;
      return new Proxy(statement, {
        get(target, property) {
          if (property === 'run') {
            return () => {
              connection.exec('ROLLBACK');
              throw new SqliteError('disk I/O error', 'SQLITE_IOERR_WRITE');
            };
          }
          const value: unknown = Reflect.get(target, property);
          return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
        },
      });
    });
    const queries = queriesOf(dataSource);

    const results = await Promise.allSettled([
      db.write((m) => insertSession(m, 'a')),
      db.write(async (m) => {
        await insertSession(m, 'b');
        throw new Error('refused by the service');
      }),
      db.write(async (m) => {
        await insertSession(m, 'io');
        await m.query(`UPDATE "sessions" SET "name" = 'x' /* io-error */`);
      }),
      db.write((m) => insertSession(m, 'c')),
    ]);

    expect(results.map(codeOf)).toEqual([
      'fulfilled',
      undefined,
      'SQLITE_IOERR_WRITE',
      'fulfilled',
    ]);
    expect((results[1] as PromiseRejectedResult).reason).toEqual(
      new Error('refused by the service'),
    );
    expect(await sessionIds(dataSource)).toEqual(['a', 'c']);
    // The survivors ran again in a second transaction, not in autocommit mode.
    expect(queries.filter((q) => q === 'BEGIN TRANSACTION')).toHaveLength(2);
    expect(queries.filter((q) => q === 'COMMIT')).toHaveLength(1);
    expect(transactionState(dataSource)).toEqual({
      typeorm: { active: false, depth: 0 },
      sqlite: false,
    });
    await db.write((m) => insertSession(m, 'later'));
    expect(await sessionIds(dataSource)).toEqual(['a', 'c', 'later']);
  });

  it('control: the same overlapping workload on bare TypeORM transactions loses or breaks writes', async () => {
    const outcomes = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) =>
        dataSource.transaction(async (manager) => {
          await insertSession(manager, `c${String(i).padStart(2, '0')}`);
          await sleep(i % 3);
          if (i % 5 === 0) throw new Error('injected');
        }),
      ),
    );
    const acknowledged = outcomes.filter((o) => o.status === 'fulfilled').length;
    const stored = (await sessionIds(dataSource)).length;
    // 40 writes should succeed; sharing one connection, some fail or vanish after being acknowledged.
    expect(acknowledged !== 40 || stored !== 40).toBe(true);
  });
});

describe('DatabaseService on a full SQLite file', () => {
  let path: string;
  let dataSource: DataSource;
  let db: DatabaseService;

  beforeEach(async () => {
    path = join(tmpdir(), `database-service-full-${process.pid}-${Date.now()}.sqlite`);
    dataSource = await openDatabase(path);
    db = new DatabaseService(dataSource);
    await insertSession(dataSource.manager, 'seed');
  });
  afterEach(async () => {
    await db.onApplicationShutdown();
    await dataSource.destroy();
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
  });

  it('rejects only the write that filled the disk, commits the rest of its batch, and recovers', async () => {
    await capDatabase(dataSource.manager, 2);
    const queries = queriesOf(dataSource);

    const results = await Promise.allSettled([
      db.write((m) => insertSession(m, 'a')),
      db.write((m) => insertSession(m, 'huge', HUGE_NAME)),
      db.write((m) => insertSession(m, 'c')),
    ]);

    expect(results.map(codeOf)).toEqual(['fulfilled', 'SQLITE_FULL', 'fulfilled']);
    expect(await sessionIds(dataSource)).toEqual(['a', 'c', 'seed']);
    // The error ended the transaction (not just the statement): a and c were committed by a
    // second transaction.
    expect(queries.filter((q) => q === 'BEGIN TRANSACTION')).toHaveLength(2);
    expect(transactionState(dataSource)).toEqual({
      typeorm: { active: false, depth: 0 },
      sqlite: false,
    });

    await dataSource.query('PRAGMA max_page_count = 1000000');
    await db.write((m) => insertSession(m, 'huge', HUGE_NAME));
    expect(await sessionIds(dataSource)).toEqual(['a', 'c', 'huge', 'seed']);
  });

  it('leaves the bulk connection usable, and holding no lock, after a full disk', async () => {
    const full = db.bulkWrite(async (m) => {
      await capDatabase(m, 2);
      await insertSession(m, 'bulk-huge', HUGE_NAME);
    });
    await expect(full).rejects.toMatchObject({ driverError: { code: 'SQLITE_FULL' } });
    const failing = db.bulkWrite(async (m) => {
      await insertSession(m, 'bulk-failed');
      throw new Error('import refused');
    });
    await expect(failing).rejects.toThrow('import refused');

    // Were a transaction still open on the bulk connection, this would wait for SQLite's busy
    // timeout (5 s) and fail with SQLITE_BUSY.
    const started = Date.now();
    await db.write((m) => insertSession(m, 'main'));
    expect(Date.now() - started).toBeLessThan(1000);

    await db.bulkWrite(async (m) => {
      await m.query('PRAGMA max_page_count = 1000000');
      await insertSession(m, 'bulk-ok', HUGE_NAME);
    });
    expect(await sessionIds(dataSource)).toEqual(['bulk-ok', 'main', 'seed']);
  });
});
