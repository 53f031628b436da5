import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { DatabaseService, queryRows } from '../database/database.service';
import { OwnerRule } from './owner-rule';
import { SessionCount } from './session-count.entity';
import { Session } from './session.entity';
import { type Bucket, filterConditions, type SessionFilter } from './sessions.repository';

/**
 * The `session_counts` table: the only code that reads or writes it.
 *
 * The upsert runs in every create and DELETE of a session and the SUM in every list request, so
 * both are written once: bench/repository-costs.ts measured the SUM at 7.2 µs prepared against
 * 16.6 µs through the query builder on SQLite in memory (PostgreSQL: 160 against 200). The rebuild (`recount`) is
 * rare and uses the query builder; it reads `sessions` through the entity, as the counts are
 * derived from it.
 */
@Injectable()
export class SessionCountsRepository {
  private readonly addSql: string;

  constructor(
    private readonly db: DatabaseService,
    private readonly rule: OwnerRule,
  ) {
    this.addSql = db.sql(
      `INSERT INTO "session_counts" ("owner_id", "archived", "pinned", "n") VALUES (?, ?, ?, ?)
       ON CONFLICT ("owner_id", "archived", "pinned")
       DO UPDATE SET "n" = "session_counts"."n" + excluded."n"`,
    );
  }

  /** Moves the owner's count of `bucket` by `delta`, in the caller's transaction. */
  async add(manager: EntityManager, owner: string, bucket: Bucket, delta: number): Promise<void> {
    await queryRows(manager, this.addSql, [owner, bucket.archived, bucket.pinned, delta]);
  }

  /**
   * How many of the owner's live sessions the filter selects: the counts, less the owner's expired
   * sessions the sweep has not removed yet (few: at most one sweep interval's worth). Each of the
   * two kinds of expiry is counted through an index: `expires_at` through idx_sessions_expires_at,
   * retention through the owner's (archived,) pinned, recency index (see OwnerRule).
   */
  async total(manager: EntityManager, owner: string, filter: SessionFilter): Promise<number> {
    const { conditions, params } = filterConditions(owner, filter);
    const where = conditions.join(' AND ');
    const byRetention = this.rule.expiredByRetention();
    // Without statistics SQLite would rather walk all of the owner's sessions (equality on the
    // owner) than the few expired ones of everyone (a range of expires_at).
    const byExpiry = this.db.isSqlite ? 'INDEXED BY "idx_sessions_expires_at"' : '';
    const sql = this.db.sql(
      `SELECT COALESCE(SUM("n"), 0)
         - (SELECT COUNT(*) FROM "sessions" ${byExpiry} WHERE ${where} AND ${this.rule.expiredExplicitly()})
         ${byRetention === null ? '' : `- (SELECT COUNT(*) FROM "sessions" WHERE ${where} AND ${byRetention})`}
       AS "total" FROM "session_counts" WHERE ${where}`,
    );
    const [{ total }] = await queryRows<{ total: number | string }>(
      manager,
      sql,
      byRetention === null ? [...params, ...params] : [...params, ...params, ...params],
    );
    return Number(total);
  }

  /**
   * Rebuilds the counts from the sessions themselves: for bulk loads that insert rows directly
   * (bench/seed-large.ts), never needed by the app, which keeps the counts as it writes.
   */
  static async recount(manager: EntityManager): Promise<void> {
    const buckets = await manager
      .createQueryBuilder(Session, 's')
      .select('s.owner_id', 'owner_id')
      .addSelect('s.archived', 'archived')
      .addSelect('s.pinned', 'pinned')
      .addSelect('COUNT(*)', 'n')
      .groupBy('s.owner_id')
      .addGroupBy('s.archived')
      .addGroupBy('s.pinned')
      .getRawMany<{
        owner_id: string;
        archived: boolean | number;
        pinned: boolean | number;
        n: number | string;
      }>();
    await manager.createQueryBuilder().delete().from(SessionCount).execute();
    const rows = buckets.map((b) => ({
      owner_id: b.owner_id,
      archived: Boolean(b.archived),
      pinned: Boolean(b.pinned),
      n: Number(b.n),
    }));
    // A few hundred rows per INSERT keeps well under either database's parameter limit.
    for (let i = 0; i < rows.length; i += 500) {
      await manager.insert(SessionCount, rows.slice(i, i + 500));
    }
  }
}
