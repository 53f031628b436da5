import {
  ConflictException,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
} from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { DatabaseService } from '../database/database.service';
import type { WriteHooks } from '../database/write-hooks';
import { IdempotencyRepository, type RecordKey, type StoredRecord } from './idempotency.repository';

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

function stored(row: StoredRecord | null): StoredResponse | null {
  return row ? { requestHash: row.request_hash, status: row.status, body: row.body } : null;
}

function recordKey(scope: IdempotencyScope): RecordKey {
  return { owner_id: scope.owner, method: scope.method, path: scope.path, key: scope.key };
}

/**
 * Idempotency records: the first response to a POST with an Idempotency-Key, stored in the same
 * transaction as the write it guards (so a crash leaves both or neither), replayed for 24 hours.
 */
@Injectable()
export class IdempotencyService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Idempotency');
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly db: DatabaseService,
    private readonly records: IdempotencyRepository,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.purgeExpired(), CLEANUP_EVERY_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  /**
   * The stored response for this scope, if one is younger than 24 hours, read before the write: a
   * retry is answered (or a reused key with another body refused, 422) before its body is validated
   * or any write is queued.
   */
  lookup(scope: IdempotencyScope): Promise<StoredResponse | null> {
    return this.db.read((manager) => this.find(manager, scope));
  }

  /**
   * Hooks for the guarded write: `before` claims the key (PostgreSQL: a transaction-scoped advisory
   * lock, so a concurrent duplicate in another process gets a 409) and re-checks that no one
   * answered it meanwhile, removing an expired record of the same key; `after` stores the response
   * with the write.
   */
  hooks(scope: IdempotencyScope, serialize: (result: unknown) => unknown): WriteHooks {
    const key = recordKey(scope);
    return {
      before: async (manager) => {
        if (!this.db.isSqlite && !(await this.records.tryLock(manager, key))) throw inFlight();
        const answered = stored(
          await this.records.claim(manager, key, Date.now() - IDEMPOTENCY_TTL_MS),
        );
        if (answered) throw new AlreadyAnswered(answered);
      },
      after: async (manager, result) => {
        await this.records.store(
          manager,
          {
            ...key,
            request_hash: scope.requestHash,
            status: 201,
            body: JSON.stringify(serialize(result)),
            created_at: Date.now(),
          },
          IDEMPOTENCY_KEYS_PER_OWNER,
        );
      },
    };
  }

  /** Deletes records older than 24 hours, batch by batch. */
  async purgeExpired(now = Date.now()): Promise<number> {
    let removed = 0;
    try {
      for (;;) {
        // Small batches, each its own write: the cleanup never holds the database for long.
        const batch = await this.db.write((m) =>
          this.records.purge(m, now - IDEMPOTENCY_TTL_MS, CLEANUP_BATCH),
        );
        removed += batch;
        if (batch < CLEANUP_BATCH) return removed;
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
    return stored(
      await this.records.find(manager, recordKey(scope), Date.now() - IDEMPOTENCY_TTL_MS),
    );
  }
}

export function inFlight(): ConflictException {
  return new ConflictException(
    'A request with this Idempotency-Key is still being processed; retry after it completes.',
  );
}
