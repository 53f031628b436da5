import { Injectable, OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Mutex } from 'async-mutex';
import type Database from 'better-sqlite3';
import { DataSource, EntityManager, QueryFailedError, QueryRunner } from 'typeorm';
import type { WriteHooks } from './write-hooks';

type Work<T> = (manager: EntityManager) => Promise<T>;

interface PendingWrite {
  work: Work<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/**
 * The rows a statement returns, on either driver. TypeORM's PostgreSQL runner answers UPDATE and
 * DELETE with `[rows, affectedCount]` instead of the rows (SQLite and every SELECT/INSERT answer the
 * rows), so `UPDATE … RETURNING` needs this to read the same everywhere.
 */
export async function queryRows<T>(
  manager: EntityManager,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const sqlite = sqliteConnectionOf(manager);
  if (sqlite) return runPrepared<T>(sqlite, sql, params);
  const result: unknown = await manager.query(sql, params);
  if (!Array.isArray(result)) return [];
  const pair = result.length === 2 && Array.isArray(result[0]) && typeof result[1] === 'number';
  return (pair ? result[0] : result) as T[];
}

/** Statements prepared once per SQLite connection (the main one, and the bulk writer's). */
const preparedStatements = new WeakMap<Database.Database, Map<string, Database.Statement>>();

function sqliteConnectionOf(manager: EntityManager): Database.Database | undefined {
  const driver = manager.connection.driver;
  if (driver.options.type !== 'better-sqlite3') return undefined;
  return (driver as unknown as { databaseConnection: Database.Database }).databaseConnection;
}

/**
 * The SQLite path of `queryRows`: the statement prepared once and run on the connection TypeORM
 * owns (so inside whatever transaction it has open), without TypeORM's runner around it (its
 * per-call logger, subscriber broadcasts, timing and awaits cost more than the statement itself on
 * a primary-key read; figures in docs/benchmarks.md). Errors are TypeORM's QueryFailedError, as
 * through the runner. Booleans bind as 0/1, as TypeORM binds them.
 */
function runPrepared<T>(connection: Database.Database, sql: string, params: unknown[]): T[] {
  let statements = preparedStatements.get(connection);
  if (!statements)
    preparedStatements.set(connection, (statements = new Map<string, Database.Statement>()));
  const values = params.map((p) => (typeof p === 'boolean' ? Number(p) : p));
  try {
    let statement = statements.get(sql);
    if (!statement) statements.set(sql, (statement = connection.prepare(sql)));
    if (statement.reader) return statement.all(...values) as T[];
    statement.run(...values);
    return [];
  } catch (error) {
    throw new QueryFailedError(sql, values, error as Error);
  }
}

/** `work` with `hooks`, if any, around it, in the same transaction. */
function withHooks<T>(work: Work<T>, hooks: WriteHooks | undefined): Work<T> {
  if (!hooks) return work;
  return async (manager) => {
    await hooks.before?.(manager);
    const result = await work(manager);
    await hooks.after?.(manager, result);
    return result;
  };
}

/** Upper bound on the writes one SQLite commit carries, so a burst cannot build one huge batch. */
export const MAX_WRITES_PER_COMMIT = 64;

/**
 * Every database access of the app goes through here.
 *
 * PostgreSQL: each unit of work gets a pooled connection and its own transaction; correctness comes
 * from the database (transactions, row locks), so nothing is serialized in the process.
 *
 * SQLite: TypeORM's SQLite drivers share one connection between all requests, so two overlapping
 * transactions would run as one: a rollback in one silently undoes the other's acknowledged writes,
 * and reads see uncommitted rows. So every unit of work runs alone behind a process-wide lock.
 * Writes that queue up while the lock is held are committed together (group commit): one
 * transaction, each write inside its own savepoint, so a failing write rolls back alone while the
 * others commit with a single fsync. A write's promise settles only after that COMMIT returned, so
 * an acknowledged write is on disk. better-sqlite3 runs each statement synchronously, so holding
 * the lock costs microtask hops, never I/O waits of other requests.
 *
 * A long write (an import) would hold that lock, and so every read, for seconds: `bulkWrite` runs
 * it on a second connection instead, while reads carry on on the first (see there).
 */
@Injectable()
export class DatabaseService implements OnApplicationShutdown {
  readonly isSqlite: boolean;
  private readonly lock = new Mutex();
  /** SQLite: held by whoever writes (a group commit or a bulk write); reads do not take it. */
  private readonly writer = new Mutex();
  private bulkSource: Promise<DataSource> | undefined;
  private queue: PendingWrite[] = [];
  private readonly postgresSql = new Map<string, string>();

  constructor(@InjectDataSource() readonly dataSource: DataSource) {
    this.isSqlite = dataSource.options.type === 'better-sqlite3';
  }

  /**
   * SQL written once with `?` placeholders, in the driver's own placeholder style. The hot paths use
   * statements built once at start-up instead of regenerating SQL through the query builder on every
   * request; TypeORM still owns the connection, the transactions and the schema.
   */
  sql(text: string): string {
    if (this.isSqlite) return text;
    let converted = this.postgresSql.get(text);
    if (converted === undefined) {
      let n = 0;
      converted = text.replace(/\?/g, () => `$${++n}`);
      this.postgresSql.set(text, converted);
    }
    return converted;
  }

  /**
   * Runs `work` in a transaction: all of it commits, or none of it does. `hooks` (see
   * write-hooks.ts) run in the same transaction, before and after `work`.
   */
  write<T>(work: Work<T>, hooks?: WriteHooks): Promise<T> {
    work = withHooks(work, hooks);
    if (!this.isSqlite) return this.dataSource.transaction(work);
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ work, resolve: resolve as (value: unknown) => void, reject });
      if (this.queue.length === 1) this.scheduleCommit();
    });
  }

  /**
   * `write` for work that is a single statement, atomic by itself. Without hooks, on PostgreSQL it
   * runs in autocommit mode: no BEGIN and COMMIT, two round trips fewer. On SQLite it is `write`
   * (the group commit needs its transaction); with hooks it is `write` everywhere.
   */
  writeStatement<T>(work: Work<T>, hooks?: WriteHooks): Promise<T> {
    if (this.isSqlite || hooks) return this.write(work, hooks);
    return work(this.dataSource.manager);
  }

  /**
   * A single-statement read that does not wait for the writes in progress. On SQLite it skips the
   * lock, so it may see rows of a transaction this process has open: use it only where seeing such
   * rows is harmless (API key lookups: the only in-process writes to api_keys are last-use times;
   * revocations come committed from the CLI). Every request authenticates, and waiting behind each
   * group commit would halve write throughput.
   */
  peek<T>(work: Work<T>): Promise<T> {
    return work(this.dataSource.manager);
  }

  /**
   * Runs `work` in a transaction, like `write`, for work that takes long (an import of thousands
   * of rows) and yields to the event loop as it goes.
   *
   * SQLite (a database file): the transaction runs on a connection of its own. Other writes wait
   * for it, as SQLite has a single writer; reads go on meanwhile on the main connection and see the
   * last committed state (WAL), never the bulk write in progress. An in-memory database cannot be
   * opened twice, so there this is `write` (reads wait too). PostgreSQL: `write`.
   * `work` must use only the manager it is given: another `write` from inside it would wait for it.
   */
  bulkWrite<T>(work: Work<T>, hooks?: WriteHooks): Promise<T> {
    const options = this.dataSource.options;
    if (options.type !== 'better-sqlite3' || options.database === ':memory:') {
      return this.write(work, hooks);
    }
    return this.writer.runExclusive(async () => {
      this.bulkSource ??= new DataSource({
        ...options,
        migrations: [],
        migrationsRun: false,
      })
        .initialize()
        .catch((error: unknown) => {
          this.bulkSource = undefined;
          throw error;
        });
      const source = await this.bulkSource;
      try {
        return await source.transaction(withHooks(work, hooks));
      } catch (error) {
        // The same repair as after a group commit (see commitBatch): otherwise, after an error that
        // ended the transaction, the next bulk write would run as a bare SAVEPOINT, and a failure
        // there would leave a transaction open that holds SQLite's write lock for good.
        await abandonTransaction(
          source.driver.createQueryRunner('master'),
          sqliteConnection(source),
        );
        throw error;
      }
    });
  }

  async onApplicationShutdown(): Promise<void> {
    const source = this.bulkSource;
    this.bulkSource = undefined;
    await (await source?.catch(() => undefined))?.destroy();
  }

  /**
   * Runs `work` while this process holds PostgreSQL's session-level advisory lock `key`, taken on a
   * connection of its own and released after `work`; null, without running it, when another
   * connection holds it. A process that dies loses its connection, and the lock with it. SQLite
   * serves a single process (start:cluster refuses it): `work` simply runs.
   */
  async exclusively<T>(key: number, work: () => Promise<T>): Promise<T | null> {
    if (this.isSqlite) return work();
    const runner = this.dataSource.createQueryRunner();
    try {
      const [{ locked }] = (await runner.query('SELECT pg_try_advisory_lock($1) AS "locked"', [
        key,
      ])) as { locked: boolean }[];
      if (!locked) return null;
      try {
        return await work();
      } finally {
        await runner.query('SELECT pg_advisory_unlock($1)', [key]);
      }
    } finally {
      await runner.release();
    }
  }

  /** One round trip to the database, queued like a read (on SQLite, behind the write lock). */
  async ping(): Promise<void> {
    await this.read((manager) => manager.query('SELECT 1'));
  }

  /**
   * Runs `work`, whose statements must all see one state of the database: on PostgreSQL in a
   * REPEATABLE READ transaction (one snapshot for every statement; read-only, so it never fails to
   * serialize), where `read` would let each statement see what committed before it; on SQLite as
   * `read`, which holds every write off until `work` ends. (One BEGIN naming the level, where
   * TypeORM's `transaction` sends the level as a statement of its own.)
   */
  async readSnapshot<T>(work: Work<T>): Promise<T> {
    if (this.isSqlite) return this.read(work);
    const runner = this.dataSource.createQueryRunner();
    try {
      await runner.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      let result: T;
      try {
        result = await work(runner.manager);
      } catch (error) {
        // The work's error is the answer, as TypeORM's `transaction` does, even if ROLLBACK fails.
        await runner.query('ROLLBACK').catch(() => undefined);
        throw error;
      }
      await runner.query('COMMIT');
      return result;
    } finally {
      await runner.release();
    }
  }

  /** Runs `work` outside a transaction; on SQLite it never observes a write in progress. */
  read<T>(work: Work<T>): Promise<T> {
    if (!this.isSqlite) return work(this.dataSource.manager);
    return this.lock.runExclusive(() => work(this.dataSource.manager));
  }

  /**
   * Commits on the next turn of the event loop rather than at once: requests that have already
   * arrived get to queue their writes first, so under load one COMMIT carries many of them.
   */
  private scheduleCommit(): void {
    setImmediate(
      () => void this.writer.runExclusive(() => this.lock.runExclusive(() => this.commitQueued())),
    );
  }

  private async commitQueued(): Promise<void> {
    let batch = this.queue.splice(0, MAX_WRITES_PER_COMMIT);
    if (this.queue.length > 0) this.scheduleCommit();
    // Each round settles at least one write, so this ends.
    while (batch.length > 0) batch = await this.commitBatch(batch);
  }

  /**
   * Commits `batch` in one transaction and settles its writes; returns the writes to run again.
   *
   * Some errors end the whole transaction rather than the statement: SQLite rolls everything back on
   * an I/O error, on SQLITE_NOMEM, and on SQLITE_FULL when it strikes while pages are being
   * rearranged. TypeORM does not notice (its ROLLBACK TO SAVEPOINT then fails, its depth stays up),
   * and the next writes of the batch would run in autocommit mode, committed at once, while the
   * batch's COMMIT fails and rejects them all. So after each write, SQLite's own `inTransaction`
   * says whether the transaction survived. If not, the write that was running is rejected with its
   * error, and the others, none of them settled yet, go again in a new transaction: their earlier
   * run was rolled back, so running their work again cannot apply it twice.
   */
  private async commitBatch(batch: PendingWrite[]): Promise<PendingWrite[]> {
    const runner = this.dataSource.driver.createQueryRunner('master');
    const connection = sqliteConnection(this.dataSource);
    const outcomes: Outcome[] = [];
    try {
      await runner.startTransaction();
      for (const [i, pending] of batch.entries()) {
        let outcome: Outcome;
        try {
          // A nested transaction on the same connection is a SAVEPOINT.
          outcome = { ok: true, value: await runner.manager.transaction(pending.work) };
        } catch (error) {
          outcome = { ok: false, error };
        }
        if (!connection.inTransaction) {
          await abandonTransaction(runner, connection);
          pending.reject(outcome.ok ? new TransactionLostError() : outcome.error);
          return batch.filter((_, j) => j !== i);
        }
        outcomes.push(outcome);
      }
      await runner.commitTransaction();
    } catch (error) {
      // BEGIN or COMMIT failed: no write of the batch is stored.
      await abandonTransaction(runner, connection);
      for (const pending of batch) pending.reject(error);
      return [];
    }
    batch.forEach((pending, i) => {
      const outcome = outcomes[i];
      if (outcome.ok) pending.resolve(outcome.value);
      else pending.reject(outcome.error);
    });
    return [];
  }
}

/** A write whose transaction SQLite ended under it while it reported success. */
export class TransactionLostError extends Error {
  constructor() {
    super('The transaction was rolled back by the database; the write was not stored.');
    this.name = 'TransactionLostError';
  }
}

interface SqliteConnection {
  inTransaction: boolean;
}

function sqliteConnection(dataSource: DataSource): SqliteConnection {
  return (dataSource.driver as unknown as { databaseConnection: SqliteConnection })
    .databaseConnection;
}

/**
 * Ends whatever transaction `runner` still has open and makes TypeORM's bookkeeping agree with
 * SQLite: after SQLite rolled a transaction back by itself, TypeORM still counts it (and its
 * savepoints) as open, and would turn the next BEGIN into a SAVEPOINT outside any transaction.
 */
async function abandonTransaction(
  runner: QueryRunner,
  connection: SqliteConnection,
): Promise<void> {
  if (connection.inTransaction) await runner.query('ROLLBACK').catch(() => undefined);
  const state = runner as unknown as { isTransactionActive: boolean; transactionDepth: number };
  state.isTransactionActive = false;
  state.transactionDepth = 0;
}
