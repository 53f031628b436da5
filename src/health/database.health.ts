import { Injectable, Logger } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { setTimeout as sleep } from 'node:timers/promises';
import { DatabaseService } from '../database/database.service';

const TIMEOUT_MS = 2000;
/** A probe polled every few seconds must not write a line each time while the database is down. */
const WARN_EVERY_MS = 10_000;

/**
 * Readiness of the database, asked the way requests ask it: through DatabaseService, so on SQLite
 * the probe waits its turn behind the write lock like any request (a stuck writer shows as down).
 * The probe is open to anonymous callers, so why the database is down (driver messages name hosts,
 * ports and file paths) goes to the log, never into the answer.
 */
@Injectable()
export class DatabaseHealthIndicator {
  private readonly logger = new Logger('Health');
  private lastWarning = { at: 0, message: '' };

  constructor(
    private readonly db: DatabaseService,
    private readonly health: HealthIndicatorService,
  ) {}

  async isHealthy(key: string) {
    const indicator = this.health.check(key);
    const started = Date.now();
    const stopTimer = new AbortController();
    try {
      const ping = this.db.ping();
      const timeout = sleep(TIMEOUT_MS, undefined, { signal: stopTimer.signal }).then(() => {
        throw new Error(`no answer within ${TIMEOUT_MS} ms`);
      });
      // The timer's own rejection once aborted is of no interest.
      timeout.catch(() => undefined);
      await Promise.race([ping, timeout]);
      this.lastWarning = { at: 0, message: '' };
      return indicator.up({
        driver: this.db.isSqlite ? 'sqlite' : 'postgres',
        latency_ms: Date.now() - started,
      });
    } catch (error) {
      this.warn(key, error instanceof Error ? error.message : String(error));
      return indicator.down();
    } finally {
      stopTimer.abort();
    }
  }

  private warn(key: string, message: string): void {
    const now = Date.now();
    if (message === this.lastWarning.message && now - this.lastWarning.at < WARN_EVERY_MS) return;
    this.lastWarning = { at: now, message };
    this.logger.warn(`Not ready: ${key} is down: ${message}`);
  }
}
