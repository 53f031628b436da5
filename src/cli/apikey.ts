import { parseArgs } from 'node:util';
import { ApiKeysRepository } from '../auth/api-keys.repository';
import { ApiKeysService } from '../auth/api-keys.service';
import { validateEnv } from '../config/env.validation';
import { loadEnvFile } from '../config/load-env';
import { openDataSource } from '../database/data-source.factory';
import { buildDataSourceOptions } from '../database/database.options';
import { DatabaseService } from '../database/database.service';
import { entities } from '../database/entities';

const USAGE = `Usage:
  npm run apikey -- create --owner <name>   create a key; it is printed once, alone on the last line
  npm run apikey -- list                    owner, key id, created, last used, revoked (never the key)
  npm run apikey -- revoke <key id>         revoke a key: it stops working at once, in every process`;

const iso = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString());

function fail(message: string, code = 1): never {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

async function run(keys: ApiKeysService, args: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: { owner: { type: 'string' } },
  });
  const [command, ...rest] = positionals;
  if (command === 'create' && rest.length === 0 && values.owner !== undefined) {
    const { id, key } = await keys.create(values.owner);
    console.log(`Created API key ${id} for owner '${values.owner}'.`);
    console.log('Store it now: it is shown only this once and kept only as a hash.');
    console.log(key);
  } else if (command === 'list' && rest.length === 0 && values.owner === undefined) {
    const rows = await keys.list();
    const lines = rows.map((k) =>
      [k.owner_id, k.id, iso(k.created_at), iso(k.last_used_at), iso(k.revoked_at)].join('\t'),
    );
    console.log(['owner\tkey id\tcreated\tlast used\trevoked', ...lines].join('\n'));
  } else if (command === 'revoke' && rest.length === 1 && values.owner === undefined) {
    if (!(await keys.revoke(rest[0]))) fail(`No active key with id '${rest[0]}'.`);
    console.log(`Revoked key ${rest[0]}.`);
  } else {
    fail(USAGE, 2);
  }
}

/** The API key CLI: same database and configuration as the server (DATABASE_URL, .env). */
async function main(): Promise<void> {
  loadEnvFile();
  let env;
  try {
    env = validateEnv(process.env);
  } catch (error) {
    fail(`Configuration error: ${(error as Error).message}`);
  }
  const dataSource = await openDataSource({
    ...buildDataSourceOptions(env),
    entities,
    startupTimeoutMs: env.DB_STARTUP_TIMEOUT_MS,
  }).catch((error: Error) => fail(`Cannot open the database: ${error.message}`));
  try {
    const db = new DatabaseService(dataSource);
    await run(new ApiKeysService(db, new ApiKeysRepository(db)), process.argv.slice(2));
  } catch (error) {
    fail((error as Error).message);
  } finally {
    await dataSource.destroy();
  }
}

void main();
