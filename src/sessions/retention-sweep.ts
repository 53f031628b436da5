import {
  BeforeApplicationShutdown,
  Injectable,
  Logger,
  OnApplicationBootstrap,
} from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { EntityManager } from 'typeorm';
import type { Env } from '../config/env.validation';
import { DatabaseService } from '../database/database.service';
import { SessionCountsRepository } from './session-counts.repository';
import { type ExpiredRow, SessionsRepository } from './sessions.repository';
import { bucketOrder } from './sessions.service';

/**
 * Sessions deleted per transaction. SQLite: every other write waits for a batch, so it is short:
 * sweeping 100,000 sessions of 2 messages took 43 ms per batch of 100 against 147 ms per batch of
 * 500 (docs/benchmarks.md). PostgreSQL locks only the rows deleted.
 */
export const SWEEP_BATCH = { sqlite: 100, postgres: 500 };
/** The first round runs this long after start-up (or after one interval, if that is shorter). */
const FIRST_ROUND_DELAY_MS = 5_000;
/**
 * The key of the PostgreSQL advisory lock a round holds, the same in every process of a
 * deployment: a process that does not get it skips the round. (ASCII "retn".)
 */
export const SWEEP_LOCK_KEY = 0x7265746e;

export interface SweepResult {
  /** Sessions deleted. */
  deleted: number;
  /** Whether another process was sweeping (PostgreSQL), so this one did not. */
  skipped: boolean;
  batches: number;
  /** The longest batch, from asking for the write to its commit (on SQLite: the write lock's hold). */
  longestBatchMs: number;
}

/**
 * Deletes expired sessions (see OwnerRule) with their messages, in batches of one transaction each
 * (SWEEP_BATCH),
 * keeping `session_counts` right in the same transaction. The API stops showing a session the
 * moment it expires; this only reclaims the rows. It runs once shortly after start-up, then every
 * RETENTION_SWEEP_INTERVAL_MS (0: never), and stops on shutdown.
 *
 * SQLite: each batch is one `DatabaseService.write`, so it goes through the group commit and holds
 * the write lock for one batch only (figures in docs/benchmarks.md). PostgreSQL: a round holds a
 * session-level advisory lock with a fixed key (DatabaseService.exclusively); a process that does
 * not get it skips the round, so at most one process of a deployment sweeps at a time. Counts are moved owner by owner in one fixed bucket order, the order the
 * request paths use, so the sweep and a request never wait for each other in a cycle.
 */
@Injectable()
export class RetentionSweep implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Retention');
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<unknown> | undefined;
  private stopped = false;

  constructor(
    private readonly db: DatabaseService,
    private readonly sessions: SessionsRepository,
    private readonly counts: SessionCountsRepository,
    config: ConfigService<Env, true>,
  ) {
    this.intervalMs = config.get('RETENTION_SWEEP_INTERVAL_MS', { infer: true });
  }

  onApplicationBootstrap(): void {
    if (this.intervalMs > 0) this.schedule(Math.min(FIRST_ROUND_DELAY_MS, this.intervalMs));
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.round;
  }

  /** One round: batches until no expired session is left (or shutdown begins). */
  async sweep(
    batchSize = this.db.isSqlite ? SWEEP_BATCH.sqlite : SWEEP_BATCH.postgres,
  ): Promise<SweepResult> {
    const swept = await this.db.exclusively(SWEEP_LOCK_KEY, () => this.batches(batchSize));
    return swept ?? { deleted: 0, skipped: true, batches: 0, longestBatchMs: 0 };
  }

  private async batches(batchSize: number): Promise<SweepResult> {
    const result: SweepResult = { deleted: 0, skipped: false, batches: 0, longestBatchMs: 0 };
    while (!this.stopped) {
      const start = process.hrtime.bigint();
      const deleted = await this.db.write((manager) => this.batch(manager, batchSize));
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      result.batches++;
      result.longestBatchMs = Math.max(result.longestBatchMs, ms);
      result.deleted += deleted;
      if (deleted < batchSize) break;
    }
    return result;
  }

  /** Deletes up to `limit` expired sessions, with their counts; how many. */
  private async batch(manager: EntityManager, limit: number): Promise<number> {
    const rows = await this.sessions.deleteExpiredExplicitly(manager, limit);
    if (rows.length < limit) {
      rows.push(...(await this.sessions.deleteExpiredByRetention(manager, limit - rows.length)));
    }
    for (const { owner, bucket, n } of countsToMove(rows)) {
      await this.counts.add(manager, owner, bucket, -n);
    }
    return rows.length;
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => {
      this.round = this.sweep()
        .then((result) => {
          if (result.deleted > 0) {
            this.logger.log(`Deleted ${result.deleted} expired sessions`);
          }
        })
        .catch((error: unknown) => {
          this.logger.error(`Sweep of expired sessions failed: ${String(error)}`);
        })
        .finally(() => {
          this.round = undefined;
          if (!this.stopped) this.schedule(this.intervalMs);
        });
    }, delayMs);
    this.timer.unref();
  }
}

/** The deleted sessions counted per owner and bucket, in the one order counts are locked in. */
function countsToMove(rows: ExpiredRow[]) {
  const moves = new Map<string, { owner: string; bucket: ExpiredRow; n: number }>();
  for (const row of rows) {
    const key = `${bucketOrder(row)}:${row.owner}`;
    const move = moves.get(key);
    if (move) move.n++;
    else moves.set(key, { owner: row.owner, bucket: row, n: 1 });
  }
  return [...moves.values()].sort(
    (a, b) =>
      (a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0) ||
      bucketOrder(a.bucket) - bucketOrder(b.bucket),
  );
}
