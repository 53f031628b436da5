import { Inject, Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { ThrottlerStorage } from '@nestjs/throttler';
import type { Env } from '../config/env.validation';

/**
 * Failed authentications allowed per client address (an IPv6 /64) per minute, whenever rate limits
 * are on (RATE_LIMIT_PER_MINUTE above 0; `0` turns every limit off, this one included). Generous for
 * a client with a mistyped or revoked key, which fails on every request anyway; a guesser gets 20
 * tries a minute against 256-bit secrets.
 */
export const AUTH_FAILURES_PER_MINUTE = 20;
const WINDOW_MS = 60_000;
/** Addresses remembered as blocked by this process; beyond this, expired entries are dropped first. */
const MAX_REMEMBERED = 10_000;

export interface FailureBudget {
  limit: number;
  remaining: number;
  /** Seconds until the count starts again. */
  reset: number;
  /** Seconds the address must wait before its next attempt; 0 when it may try again. */
  blocked: number;
}

/**
 * Counts failed authentications per client address in the rate limiter's storage (Redis when
 * REDIS_URL is set, so every process shares the count). Over the budget, the address is refused
 * with a 429 until the window ends; this process remembers that, so a flood of bad keys costs no
 * database lookup and no storage round trip per request once it is over the limit.
 */
@Injectable()
export class AuthFailureLimiter {
  private readonly blockedUntil = new Map<string, number>();
  private readonly enabled: boolean;

  constructor(
    @Inject(ThrottlerStorage) private readonly storage: ThrottlerStorage,
    config: ConfigService<Env, true>,
  ) {
    this.enabled = config.get('RATE_LIMIT_PER_MINUTE', { infer: true }) > 0;
  }

  /** Seconds `address` must still wait, as far as this process knows; 0 when it may try. */
  blockedFor(address: string): number {
    const until = this.blockedUntil.get(address);
    if (until === undefined) return 0;
    const left = until - Date.now();
    if (left > 0) return Math.ceil(left / 1000);
    this.blockedUntil.delete(address);
    return 0;
  }

  /** Counts one failure of `address`; undefined when failures are not limited. */
  async fail(address: string): Promise<FailureBudget | undefined> {
    if (!this.enabled) return undefined;
    const limit = AUTH_FAILURES_PER_MINUTE;
    const count = await this.storage.increment(
      `auth-failures:${address}`,
      WINDOW_MS,
      limit,
      WINDOW_MS,
      'auth-failures',
    );
    const blocked = count.isBlocked ? Math.max(count.timeToBlockExpire, 1) : 0;
    if (blocked > 0) this.remember(address, Date.now() + blocked * 1000);
    return {
      limit,
      remaining: Math.max(0, limit - count.totalHits),
      reset: Math.max(count.timeToExpire, 1),
      blocked,
    };
  }

  private remember(address: string, until: number): void {
    if (this.blockedUntil.size >= MAX_REMEMBERED) {
      const now = Date.now();
      for (const [known, time] of this.blockedUntil)
        if (time <= now) this.blockedUntil.delete(known);
      // Still full: forget the oldest; the shared count still blocks it, at one lookup's cost.
      for (const known of this.blockedUntil.keys()) {
        if (this.blockedUntil.size < MAX_REMEMBERED) break;
        this.blockedUntil.delete(known);
      }
    }
    this.blockedUntil.set(address, until);
  }
}
