const DAY_MS = 86_400_000;

/**
 * The owner rule with retention in it: a session is its owner's only while it is live, so every
 * statement that names a session's owner (get, list, PATCH, DELETE, the touch of an append, the
 * joins of messages, search, export) stops seeing it the moment it expires, before the sweep
 * (RetentionSweep) removes its rows.
 *
 * A session is expired once its `expires_at` is reached, or, with RETENTION_DAYS, once it is not
 * pinned and its `last_updated_at` is more than that many days old. "Now" is the database's clock,
 * written into the SQL, not a parameter: every statement that names the owner keeps its parameters
 * as they were, and the processes of a PostgreSQL deployment share one clock. PostgreSQL's
 * `statement_timestamp()` rather than `clock_timestamp()`: it is stable within the statement, so
 * the planner can use it as an index bound (idx_sessions_expires_at, the owner's recency indexes),
 * where a volatile clock would be evaluated row by row.
 *
 * RETENTION_DAYS is configuration: it is written into the statements once, at start-up.
 *
 * The conditions are read from the row the statement finds anyway, so the hot paths stay one
 * statement each (PostgreSQL's append too) and cheap: bench/repository-costs.ts on SQLite in
 * memory, with the rule in, measured get one session 4.7 µs, an append 32.6 µs and a list total
 * (the counts less the expired sessions not yet swept) 2.7 µs, on a quiet machine.
 */
export class OwnerRule {
  /** The database clock in epoch milliseconds, as SQL. */
  readonly now: string;
  readonly retentionMs: number;

  constructor(isSqlite: boolean, retentionDays: number) {
    this.now = isSqlite
      ? `CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`
      : `CAST(EXTRACT(EPOCH FROM statement_timestamp()) * 1000 AS BIGINT)`;
    this.retentionMs = retentionDays * DAY_MS;
  }

  /** The oldest `last_updated_at` an unpinned session may have and live, as SQL. */
  get cutoff(): string {
    return `(${this.now} - ${this.retentionMs})`;
  }

  /** The condition of a live session (columns of `alias`, or unqualified). */
  live(alias?: string): string {
    const c = column(alias);
    const explicit = `(${c('expires_at')} IS NULL OR ${c('expires_at')} > ${this.now})`;
    if (this.retentionMs === 0) return explicit;
    return `${explicit} AND (${c('pinned')} = TRUE OR ${c('last_updated_at')} >= ${this.cutoff})`;
  }

  /** Expired through its own `expires_at` (idx_sessions_expires_at). */
  expiredExplicitly(alias?: string): string {
    const c = column(alias);
    return `${c('expires_at')} <= ${this.now}`;
  }

  /**
   * Expired through RETENTION_DAYS only (not already through `expires_at`), so the two sets never
   * overlap; null without retention. Owner, pinned = FALSE, then a range of `last_updated_at`: the
   * owner's (archived,) pinned, recency indexes.
   */
  expiredByRetention(alias?: string): string | null {
    if (this.retentionMs === 0) return null;
    const c = column(alias);
    return `${c('pinned')} = FALSE AND ${c('last_updated_at')} < ${this.cutoff}
      AND (${c('expires_at')} IS NULL OR ${c('expires_at')} > ${this.now})`;
  }

  /** The condition of an expired session: the negation of `live`. */
  expired(alias?: string): string {
    const byRetention = this.expiredByRetention(alias);
    return byRetention === null
      ? this.expiredExplicitly(alias)
      : `(${this.expiredExplicitly(alias)} OR (${byRetention}))`;
  }

  /** A session by id, the owner's and live. Parameters: the id, then the owner. */
  get owned(): string {
    return `"id" = ? AND "owner_id" = ? AND ${this.live()}`;
  }

  /**
   * For rows of other tables that belong to a session (alias `m`, with a `session_id`): joins their
   * session as `s`, which must be `owner`'s (the first parameter) and live.
   */
  get ownedSession(): string {
    return `JOIN "sessions" s ON s."id" = m."session_id" AND s."owner_id" = ? AND ${this.live('s')}`;
  }

  /** The same, for a join order SQLite must keep (CROSS JOIN). */
  get ownedSessionCross(): string {
    return `CROSS ${this.ownedSession}`;
  }
}

const column = (alias?: string) => (name: string) =>
  alias === undefined ? `"${name}"` : `${alias}."${name}"`;
