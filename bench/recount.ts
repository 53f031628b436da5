import { DataSource } from 'typeorm';
import { validateEnv } from '../src/config/env.validation';
import { buildDataSourceOptions } from '../src/database/database.options';
import { RECOUNT_SESSIONS_SQL } from '../src/sessions/sessions.service';

/** After a bulk load that bypassed the service: the list's session counts, rebuilt in one transaction. */
export async function recountSessions(databaseUrl: string): Promise<void> {
  const dataSource = await new DataSource(
    buildDataSourceOptions(validateEnv({ DATABASE_URL: databaseUrl })),
  ).initialize();
  try {
    await dataSource.transaction(async (manager) => {
      for (const sql of RECOUNT_SESSIONS_SQL) await manager.query(sql);
    });
  } finally {
    await dataSource.destroy();
  }
}
