import { Test } from '@nestjs/testing';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { Server } from 'node:http';
import { AppModule } from '../../src/app.module';
import { configureApp } from '../../src/app.setup';
import { DatabaseService } from '../../src/database/database.service';
import { freshDatabaseUrl, onPostgres } from './database-target';

export interface TestApp {
  app: NestExpressApplication;
  http: Server;
  db: DatabaseService;
  close(): Promise<void>;
}

/**
 * Boots the real AppModule with the production middleware (`configureApp`) and the real migrations,
 * on a fresh database (in-memory SQLite, or a new PostgreSQL schema) unless `env.DATABASE_URL` says
 * otherwise.
 */
export async function createTestApp(env: Record<string, string> = {}): Promise<TestApp> {
  const databaseUrl =
    env.DATABASE_URL ?? (onPostgres ? await freshDatabaseUrl('app') : 'sqlite::memory:');
  Object.assign(process.env, { LOG_LEVEL: 'warn', ...env, DATABASE_URL: databaseUrl });
  const moduleRef = await Test.createTestingModule({
    imports: [await AppModule.forRoot()],
  }).compile();
  const app = moduleRef.createNestApplication<NestExpressApplication>({ bodyParser: false });
  configureApp(app);
  await app.init();
  return {
    app,
    http: app.getHttpServer(),
    db: app.get(DatabaseService),
    close: () => app.close(),
  };
}

/** Empties every table (messages go with their sessions) so each test starts from a clean database. */
export async function resetDatabase(db: DatabaseService): Promise<void> {
  await db.write(async (manager) => {
    await manager.query('DELETE FROM "sessions"');
    await manager.query('DELETE FROM "session_counts"');
  });
}

/** Counts rows straight from the database, bypassing the API. */
export async function countRows(
  db: DatabaseService,
  table: 'sessions' | 'chat_messages',
): Promise<number> {
  const [{ n }]: { n: number | string }[] = await db.read((m) =>
    m.query(`SELECT COUNT(*) AS "n" FROM "${table}"`),
  );
  return Number(n);
}
