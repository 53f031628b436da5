import { Logger } from '@nestjs/common';
import { mkdirSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DataSource, DataSourceOptions } from 'typeorm';
import { PostgresAwareDataSource } from './postgres-columns';

/** Any constant will do; it names the lock that serializes migrations across processes. */
const MIGRATION_LOCK = 7_240_311;
const RETRY_DELAY_MS = 1000;

const logger = new Logger('Database');

/**
 * Connects (retrying PostgreSQL for up to `startupTimeoutMs`, for databases that start alongside
 * the app) and brings the schema up to date. On PostgreSQL, processes starting together take turns
 * through an advisory lock, so each migration runs exactly once.
 */
export type StartupOptions = DataSourceOptions & { startupTimeoutMs: number };

export async function openDataSource({
  startupTimeoutMs,
  ...options
}: StartupOptions): Promise<DataSource> {
  const file = sqliteFile(options);
  if (file !== undefined) prepareSqlitePath(file);
  const dataSource = await connect(options, startupTimeoutMs);
  try {
    if (file !== undefined) await checkSqliteFile(dataSource, file);
    await migrate(dataSource);
  } catch (error) {
    await dataSource.destroy();
    throw error;
  }
  return dataSource;
}

async function connect(options: DataSourceOptions, startupTimeoutMs: number): Promise<DataSource> {
  const deadline = Date.now() + startupTimeoutMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await new PostgresAwareDataSource(options).initialize();
    } catch (error) {
      const message = messageOf(error);
      if (options.type !== 'postgres' || Date.now() + RETRY_DELAY_MS > deadline) {
        const file = sqliteFile(options);
        throw new Error(
          file === undefined
            ? `cannot open the database: ${message}`
            : `cannot open the database file ${file}: ${message}${sqliteHint(error, file)}`,
        );
      }
      logger.warn(`Database not reachable (attempt ${attempt}): ${message}; retrying in 1 s`);
      await sleep(RETRY_DELAY_MS);
    }
  }
}

/** The absolute path of a file-backed SQLite database; undefined for PostgreSQL and `:memory:`. */
function sqliteFile(options: DataSourceOptions): string | undefined {
  if (options.type !== 'better-sqlite3' || options.database === ':memory:') return undefined;
  return resolve(options.database);
}

/** An error's message without the "SqliteError: " that TypeORM's QueryFailedError puts before it. */
function messageOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).replace(/^\w*Error: /, '');
}

/** Permission problems (extended codes too, e.g. SQLITE_READONLY_DIRECTORY) get a hint. */
function sqliteHint(error: unknown, file: string): string {
  const code = String((error as { code?: unknown }).code);
  if (!code.startsWith('SQLITE_READONLY') && !code.startsWith('SQLITE_CANTOPEN')) return '';
  return ` (SQLite must be able to write ${basename(file)} and to create ${basename(file)}-wal and ${basename(file)}-shm in ${dirname(file)}; check the permissions)`;
}

function statOf(path: string) {
  return statSync(path, { throwIfNoEntry: false });
}

/**
 * Creates the database file's missing directories one level at a time, and names the path when it
 * cannot be used. The driver's own recursive mkdir reports a file in the way as "file already
 * exists" and never returns on some paths (Node's recursive mkdir loops under /proc).
 */
function prepareSqlitePath(file: string): void {
  try {
    const stat = statOf(file);
    if (stat) {
      if (!stat.isFile()) throw new Error(`${file} is not a regular file`);
      return;
    }
    const missing: string[] = [];
    let dir = dirname(file);
    for (let stat = statOf(dir); !stat; stat = statOf(dir)) {
      missing.unshift(dir);
      dir = dirname(dir);
    }
    if (!statOf(dir)!.isDirectory()) throw new Error(`${dir} is not a directory`);
    for (const each of missing) mkdirSync(each);
  } catch (error) {
    throw new Error(`cannot open the database file ${file}: ${messageOf(error)}`);
  }
}

/**
 * Before anything is written: a damaged file stops start-up here, before migrations or requests
 * write to it and make the damage worse; and as SQLite silently opens a file it may not write as
 * read-only (every write would then fail at request time), a write is tried and rolled back.
 */
async function checkSqliteFile(dataSource: DataSource, file: string): Promise<void> {
  let problems: { quick_check: string }[];
  try {
    problems = await dataSource.query('PRAGMA quick_check(3)');
  } catch (error) {
    problems = [{ quick_check: messageOf(error) }];
  }
  const found = problems.map((p) => p.quick_check).filter((p) => p !== 'ok');
  if (found.length > 0) {
    throw new Error(
      `the database file ${file} is damaged (${found.join('; ').replace(/\s+/g, ' ')}); refusing to start: restore it from a backup (or salvage it with the sqlite3 shell's .recover)`,
    );
  }
  try {
    await dataSource.query('BEGIN IMMEDIATE');
    await dataSource.query('CREATE TABLE "__write_probe" ("x" integer)');
  } catch (error) {
    throw new Error(
      `the database file ${file} is not writable: ${messageOf(error)}${sqliteHint(error, file)}`,
    );
  } finally {
    await dataSource.query('ROLLBACK').catch(() => undefined);
  }
}

/**
 * A database migrated by a newer release than this code has changes this code does not know; running
 * on it could corrupt data, so start-up stops instead (deploy the newer code, or restore a backup).
 */
async function refuseNewerSchema(dataSource: DataSource): Promise<void> {
  const runner = dataSource.createQueryRunner();
  try {
    if (!(await runner.hasTable('migrations'))) return;
    const executed = (await runner.query(`SELECT "name" FROM "migrations"`)) as { name: string }[];
    const known = new Set(dataSource.migrations.map((m) => m.name));
    const unknown = executed.map((m) => m.name).filter((name) => !known.has(name));
    if (unknown.length > 0) {
      throw new Error(
        `the database was migrated by newer code (unknown migrations: ${unknown.join(', ')}); refusing to start`,
      );
    }
  } finally {
    await runner.release();
  }
}

async function migrate(dataSource: DataSource): Promise<void> {
  if (dataSource.options.type !== 'postgres') {
    await refuseNewerSchema(dataSource);
    await dataSource.runMigrations();
    return;
  }
  const lock = dataSource.createQueryRunner();
  await lock.connect();
  try {
    await lock.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await refuseNewerSchema(dataSource);
    await dataSource.runMigrations();
  } finally {
    await lock.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    await lock.release();
  }
}
