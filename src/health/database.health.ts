import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { setTimeout as sleep } from 'node:timers/promises';
import { DatabaseService } from '../database/database.service';

const TIMEOUT_MS = 2000;

/**
 * Readiness of the database, asked the way requests ask it: through DatabaseService, so on SQLite
 * the probe waits its turn behind the write lock like any request (a stuck writer shows as down).
 */
@Injectable()
export class DatabaseHealthIndicator {
  constructor(
    private readonly db: DatabaseService,
    private readonly health: HealthIndicatorService,
  ) {}

  async isHealthy(key: string) {
    const indicator = this.health.check(key);
    const started = Date.now();
    try {
      const ping = this.db.read((manager) => manager.query('SELECT 1'));
      const timeout = sleep(TIMEOUT_MS).then(() => {
        throw new Error(`no answer within ${TIMEOUT_MS} ms`);
      });
      await Promise.race([ping, timeout]);
      return indicator.up({
        driver: this.db.isSqlite ? 'sqlite' : 'postgres',
        latency_ms: Date.now() - started,
      });
    } catch (error) {
      return indicator.down({ message: error instanceof Error ? error.message : String(error) });
    }
  }
}
