import type { QueryRunner } from 'typeorm';

/**
 * Every migration calls this first. One that reads or rewrites every row takes as long as the data needs (the v1.2 upgrade of
 * a 1,000,000-message store takes about a minute): on PostgreSQL, lift DB_STATEMENT_TIMEOUT_MS for
 * the migration's transaction, which would otherwise cancel it and stop the server's start-up.
 * `SET LOCAL` ends with the transaction (migrations run one transaction each), so the connection
 * goes back to the pool with its limit.
 */
export async function withoutStatementTimeout(queryRunner: QueryRunner): Promise<void> {
  if (queryRunner.connection.driver.options.type === 'postgres') {
    await queryRunner.query('SET LOCAL statement_timeout = 0');
  }
}
