import {
  ConflictException,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
} from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { DatabaseService, queryRows } from '../database/database.service';
import type { WriteHooks } from '../database/write-hooks';

/** Keys are remembered this long; a retry after that is a new request. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
/**
 * Stored responses an owner keeps at most. Storing one more evicts the owner's oldest: a retry of
 * an evicted key runs again as a new request. Retries come within minutes, not 10,000 keyed writes
 * later, so this only bounds what one owner can make the server keep (a response holds up to a
 * 100,000-character message), where refusing new keys would stop a busy client's writes.
 */
export const IDEMPOTENCY_KEYS_PER_OWNER = 10_000;
const CLEANUP_EVERY_MS = 10 * 60 * 1000;
const CLEANUP_BATCH = 500;

/** One key's scope: the caller, the method and path, and the key itself. */
export interface IdempotencyScope {
  owner: string;
  method: string;
  path: string;
  key: string;
  /** SHA-256 of the request body: the same key with another body is a client error. */
  requestHash: string;
}

export interface StoredResponse {
  requestHash: string;
  status: number;
  body: string;
}

/** Thrown inside the write when the key turns out to be answered already (by another process). */
export class AlreadyAnswered extends Error {
  constructor(readonly stored: StoredResponse) {
    super('Idempotency-Key already answered');
  }
}

interface Row {
  request_hash: string;
  status: number | string;
  body: string;
}

const KEY = `"owner_id" = ? AND "method" = ? AND "path" = ? AND "key" = ?`;

/**
 * Idempotency records: the first response to a POST with an Idempotency-Key, stored in the same
 * transaction as the write it guards (so a crash leaves both or neither), replayed for 24 hours.
 */
@Injectable()
export class IdempotencyService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Idempotency');
  private readonly sql: Record<'find' | 'forget' | 'insert' | 'evict' | 'purge', string>;
  private timer?: NodeJS.Timeout;

  constructor(private readonly db: DatabaseService) {
    this.sql = {
      find: db.sql(
        `SELECT "request_hash", "status", "body" FROM "idempotency_keys" WHERE ${KEY} AND "created_at" > ?`,
      ),
      forget: db.sql(`DELETE FROM "idempotency_keys" WHERE ${KEY}`),
      insert: db.sql(
        `INSERT INTO "idempotency_keys"
           ("owner_id", "method", "path", "key", "request_hash", "status", "body", "created_at")
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      // Keeps the owner's newest IDEMPOTENCY_KEYS_PER_OWNER records (and any sharing the oldest
      // one's millisecond): one probe of the owner's index at that depth, nothing when under it.
      evict: db.sql(
        `DELETE FROM "idempotency_keys" WHERE "owner_id" = ? AND "created_at" < (
           SELECT "created_at" FROM "idempotency_keys" WHERE "owner_id" = ?
           ORDER BY "created_at" DESC LIMIT 1 OFFSET ${IDEMPOTENCY_KEYS_PER_OWNER - 1})`,
      ),
      // Small batches, each its own write: the cleanup never holds the database for long.
      purge: db.sql(
        `DELETE FROM "idempotency_keys" WHERE ("owner_id", "method", "path", "key") IN (
           SELECT "owner_id", "method", "path", "key" FROM "idempotency_keys"
           WHERE "created_at" <= ? LIMIT ${CLEANUP_BATCH}) RETURNING "key"`,
      ),
    };
  }

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.purgeExpired(), CLEANUP_EVERY_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  /** The stored response for this scope, if one is younger than 24 hours. */
  lookup(scope: IdempotencyScope): Promise<StoredResponse | null> {
    return this.db.read((manager) => this.find(manager, scope));
  }

  /**
   * Hooks for the guarded write: `before` claims the key (PostgreSQL: a transaction-scoped advisory
   * lock, so a concurrent duplicate in another process gets a 409) and re-checks that no one
   * answered it meanwhile; `after` stores the response with the write.
   */
  hooks(scope: IdempotencyScope, serialize: (result: unknown) => unknown): WriteHooks {
    const params = [scope.owner, scope.method, scope.path, scope.key];
    return {
      before: async (manager) => {
        if (!this.db.isSqlite) {
          const [{ locked }]: { locked: boolean }[] = await queryRows(
            manager,
            // 64 bits of the scope: with hashtext's 32, unrelated keys collided into spurious 409s.
            'SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS "locked"',
            [params.join('\n')],
          );
          if (!locked) throw inFlight();
        }
        const stored = await this.find(manager, scope);
        if (stored) throw new AlreadyAnswered(stored);
        await queryRows(manager, this.sql.forget, params); // an expired record of the same key
      },
      after: async (manager, result) => {
        const body = JSON.stringify(serialize(result));
        await queryRows(manager, this.sql.insert, [
          ...params,
          scope.requestHash,
          201,
          body,
          Date.now(),
        ]);
        await queryRows(manager, this.sql.evict, [scope.owner, scope.owner]);
      },
    };
  }

  /** Deletes records older than 24 hours, batch by batch. */
  async purgeExpired(now = Date.now()): Promise<number> {
    let removed = 0;
    try {
      for (;;) {
        const batch = await this.db.write((m) =>
          queryRows(m, this.sql.purge, [now - IDEMPOTENCY_TTL_MS]),
        );
        removed += batch.length;
        if (batch.length < CLEANUP_BATCH) return removed;
      }
    } catch (error) {
      this.logger.warn(`Cleanup of expired idempotency keys failed: ${String(error)}`);
      return removed;
    }
  }

  private async find(
    manager: EntityManager,
    scope: IdempotencyScope,
  ): Promise<StoredResponse | null> {
    const [row]: Row[] = await queryRows(manager, this.sql.find, [
      scope.owner,
      scope.method,
      scope.path,
      scope.key,
      Date.now() - IDEMPOTENCY_TTL_MS,
    ]);
    return row
      ? { requestHash: row.request_hash, status: Number(row.status), body: row.body }
      : null;
  }
}

export function inFlight(): ConflictException {
  return new ConflictException(
    'A request with this Idempotency-Key is still being processed; retry after it completes.',
  );
}
