import type { DataSourceOptions } from 'typeorm';
import type Database from 'better-sqlite3';
import type { Env } from '../config/env.validation';
import { ChatMessage } from '../messages/chat-message.entity';
import { Session } from '../sessions/session.entity';
import { migrations } from './migrations';
import { Setting } from './setting.entity';

export const entities = [Session, ChatMessage, Setting];

/**
 * The one place that turns configuration into TypeORM options: the app and `ormconfig.ts` (the CLI)
 * both call it, so they cannot drift. `synchronize` is off everywhere; the schema is the migrations'.
 */
export function buildDataSourceOptions(
  env: Pick<Env, 'DATABASE' | 'SQLITE_SYNCHRONOUS'>,
): DataSourceOptions {
  const common = {
    entities,
    migrations,
    synchronize: false,
    migrationsTransactionMode: 'each',
  } as const;
  const target = env.DATABASE;
  if (target.type === 'postgres') {
    return { ...common, type: 'postgres', url: target.url };
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
