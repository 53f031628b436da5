import { ExecutionContext, Injectable } from '@nestjs/common';
import { ThrottlerException, ThrottlerGuard, type ThrottlerLimitDetail } from '@nestjs/throttler';
import type { Response } from 'express';
import { clientAddress } from './client-address';
import type { OwnedRequest } from './owner.decorator';

/**
 * @nestjs/throttler's guard with the contract's headers: `RateLimit-Limit`, `RateLimit-Remaining`
 * and `RateLimit-Reset` on every response (the 429 included), `Retry-After` on a 429. Counts per
 * owner when the caller is authenticated by an API key, per client address otherwise (an IPv6
 * client by its /64, see clientAddress).
 */
@Injectable()
export class RateLimitGuard extends ThrottlerGuard {
  protected override headerPrefix = 'RateLimit';

  protected override getTracker(req: OwnedRequest): Promise<string> {
    return Promise.resolve(
      req.authenticated && req.owner ? `owner:${req.owner}` : `ip:${clientAddress(req)}`,
    );
  }

  /** One budget per caller across all routes (the library's default keys it per route). */
  protected override generateKey(
    _context: ExecutionContext,
    tracker: string,
    name: string,
  ): string {
    return `rate:${name}:${tracker}`;
  }

  protected override throwThrottlingException(
    context: ExecutionContext,
    detail: ThrottlerLimitDetail,
  ): Promise<void> {
    const res = context.switchToHttp().getResponse<Response>();
    res.setHeader('RateLimit-Limit', detail.limit);
    res.setHeader('RateLimit-Remaining', 0);
    res.setHeader('RateLimit-Reset', detail.timeToBlockExpire);
    throw new ThrottlerException(
      `Rate limit of ${detail.limit} requests per minute exceeded; retry in ${detail.timeToBlockExpire} s.`,
    );
  }
}
