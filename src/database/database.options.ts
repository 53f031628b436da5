import type Database from 'better-sqlite3';
import type { DataSourceOptions } from 'typeorm';
import type { Env } from '../config/env.validation';
import { migrations } from './migrations';

export type DatabaseEnv = Pick<
  Env,
  | 'DATABASE'
  | 'SQLITE_SYNCHRONOUS'
  | 'DB_POOL_SIZE'
  | 'DB_CONNECT_TIMEOUT_MS'
  | 'DB_STATEMENT_TIMEOUT_MS'
>;

/**
 * The one place that turns configuration into TypeORM options: the app and `ormconfig.ts` (the CLI)
 * both call it, so they cannot drift. `synchronize` is off everywhere; the schema is the migrations'.
 */
export function buildDataSourceOptions(env: DatabaseEnv): DataSourceOptions {
  const common = {
    migrations,
    synchronize: false,
    migrationsTransactionMode: 'each',
  } as const;
  const target = env.DATABASE;
  if (target.type === 'postgres') {
    return {
      ...common,
      type: 'postgres',
      url: target.url,
      poolSize: env.DB_POOL_SIZE,
      connectTimeoutMS: env.DB_CONNECT_TIMEOUT_MS,
      extra: {
        // Server-side limits: a runaway statement, or a transaction left idle, cannot hold locks forever.
        statement_timeout: env.DB_STATEMENT_TIMEOUT_MS || undefined,
        idle_in_transaction_session_timeout: env.DB_STATEMENT_TIMEOUT_MS || undefined,
      },
    };
  }
  const inMemory = target.path === ':memory:';
  return {
    ...common,
    type: 'better-sqlite3',
    database: target.path,
    // WAL lets readers proceed during a write and makes each commit a single append.
    enableWAL: !inMemory,
    timeout: 5000,
    statementCacheSize: 200,
    prepareDatabase: (db: Database.Database) => {
      db.pragma(`synchronous = ${env.SQLITE_SYNCHRONOUS}`);
    },
  };
}
