import { existsSync } from 'node:fs';

/**
 * Reads `.env` from the working directory into `process.env`, when there is one. Variables already
 * set in the environment win over the file. The one place that reads it: the server (AppModule),
 * the cluster's primary, the API key CLI and the TypeORM CLI (ormconfig.ts) all call this.
 */
export function loadEnvFile(path = '.env'): void {
  if (existsSync(path)) process.loadEnvFile(path);
}
