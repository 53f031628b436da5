import { Logger } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { DataSource, DataSourceOptions } from 'typeorm';

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
  const dataSource = await connect(options, startupTimeoutMs);
  try {
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
      return await new DataSource(options).initialize();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (options.type !== 'postgres' || Date.now() + RETRY_DELAY_MS > deadline) {
        throw new Error(`cannot open the database: ${message}`);
      }
      logger.warn(`Database not reachable (attempt ${attempt}): ${message}; retrying in 1 s`);
      await sleep(RETRY_DELAY_MS);
    }
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
