import { existsSync } from 'node:fs';
import { DataSource } from 'typeorm';
import { validateEnv } from './src/config/env.validation';
import { buildDataSourceOptions } from './src/database/database.options';

// The TypeORM CLI's DataSource (`npm run migration:run`): the same options module and the same
// environment validation as the server, so the CLI and the app always address the same database.
if (existsSync('.env')) process.loadEnvFile('.env');

export default new DataSource(buildDataSourceOptions(validateEnv(process.env)));
