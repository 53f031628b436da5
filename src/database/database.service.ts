import { Injectable, OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Mutex } from 'async-mutex';
import { DataSource, EntityManager } from 'typeorm';
import { takeWriteHooks } from './write-hooks';

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
  const result: unknown = await manager.query(sql, params);
  if (!Array.isArray(result)) return [];
  const pair = result.length === 2 && Array.isArray(result[0]) && typeof result[1] === 'number';
  return (pair ? result[0] : result) as T[];
}

/** `work` with the caller's write hooks (see write-hooks.ts), if any, around it. */
function withTakenHooks<T>(work: Work<T>): Work<T> {
  const hooks = takeWriteHooks();
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
   * Runs `work` in a transaction: all of it commits, or none of it does. Write hooks registered by
   * the caller (see write-hooks.ts) run in the same transaction, unless `hooks: false` says this is
   * a preparatory write rather than the one the request is about.
   */
  write<T>(work: Work<T>, options: { hooks?: boolean } = {}): Promise<T> {
    if (options.hooks !== false) work = withTakenHooks(work);
    if (!this.isSqlite) return this.dataSource.transaction(work);
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ work, resolve: resolve as (value: unknown) => void, reject });
      if (this.queue.length === 1) this.scheduleCommit();
    });
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
  bulkWrite<T>(work: Work<T>): Promise<T> {
    const options = this.dataSource.options;
    if (options.type !== 'better-sqlite3' || options.database === ':memory:') {
      return this.write(work);
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
      return (await this.bulkSource).transaction(withTakenHooks(work));
    });
  }

  async onApplicationShutdown(): Promise<void> {
    const source = this.bulkSource;
    this.bulkSource = undefined;
    await (await source?.catch(() => undefined))?.destroy();
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
    const batch = this.queue.splice(0, MAX_WRITES_PER_COMMIT);
    if (this.queue.length > 0) this.scheduleCommit();
    const outcomes: Outcome[] = [];
    try {
      await this.dataSource.transaction(async (manager) => {
        for (const pending of batch) {
          try {
            // A nested transaction on the same connection is a SAVEPOINT.
            outcomes.push({ ok: true, value: await manager.transaction(pending.work) });
          } catch (error) {
            outcomes.push({ ok: false, error });
          }
        }
      });
    } catch (error) {
      for (const pending of batch) pending.reject(error);
      return;
    }
    batch.forEach((pending, i) => {
      const outcome = outcomes[i];
      if (outcome.ok) pending.resolve(outcome.value);
      else pending.reject(outcome.error);
    });
  }
}
