import { validateEnv } from './src/config/env.validation';
import { loadEnvFile } from './src/config/load-env';
import { buildDataSourceOptions } from './src/database/database.options';
import { entities } from './src/database/entities';
import { PostgresAwareDataSource } from './src/database/postgres-columns';

// The TypeORM CLI's DataSource (`npm run migration:run`): the same options module and the same
// environment validation as the server, so the CLI and the app always address the same database.
loadEnvFile();

export default new PostgresAwareDataSource({
  ...buildDataSourceOptions(validateEnv(process.env)),
  entities,
});
