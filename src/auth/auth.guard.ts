import {
  CanActivate,
  ExecutionContext,
  HttpException,
  HttpStatus,
  Injectable,
  UnauthorizedException,
} from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Reflector } from '@nestjs/core';
import type { Response } from 'express';
import type { Env } from '../config/env.validation';
import { ApiKeysService, looksLikeKey } from './api-keys.service';
import { AUTH_FAILURES_PER_MINUTE, AuthFailureLimiter } from './auth-failures';
import { clientAddress } from './client-address';
import { LOCAL_OWNER, OwnedRequest } from './owner.decorator';
import { isPublic } from './public.decorator';

/**
 * Establishes the caller's owner for every request. AUTH_MODE=none: everyone is the local owner.
 * AUTH_MODE=api-key: every route needs `Authorization: Bearer <key>`, looked up on every request,
 * except routes marked `@Public()`. Deny by default: whatever path spelling or new route reaches a
 * handler, it reaches it authenticated. Failed attempts are limited per client address
 * (AuthFailureLimiter); an address over that limit is refused before its key is looked up.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  private readonly required: boolean;

  constructor(
    private readonly apiKeys: ApiKeysService,
    private readonly failures: AuthFailureLimiter,
    private readonly reflector: Reflector,
    config: ConfigService<Env, true>,
  ) {
    this.required = config.get('AUTH_MODE', { infer: true }) === 'api-key';
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const req = context.switchToHttp().getRequest<OwnedRequest>();
    if (!this.required) {
      req.owner = LOCAL_OWNER;
      return true;
    }
    if (isPublic(this.reflector, context)) return true;
    const res = context.switchToHttp().getResponse<Response>();
    const address = clientAddress(req);
    const header = req.headers.authorization;
    const token = /^Bearer +(\S+) *$/i.exec(header ?? '')?.[1];
    // An address over its failure budget may be shared (NAT, a proxy, a /64): a valid key still gets
    // in, at the cost of one lookup; anything that cannot be a key is refused without one.
    const wait = this.failures.blockedFor(address);
    if (wait > 0 && !looksLikeKey(token)) throw tooManyFailures(res, wait);
    const owner = token === undefined ? null : await this.apiKeys.authenticate(token);
    if (owner === null) {
      if (wait > 0) throw tooManyFailures(res, wait);
      const budget = await this.failures.fail(address);
      if (budget && budget.blocked > 0) throw tooManyFailures(res, budget.blocked);
      if (budget) {
        res.setHeader('RateLimit-Limit', budget.limit);
        res.setHeader('RateLimit-Remaining', budget.remaining);
        res.setHeader('RateLimit-Reset', budget.reset);
      }
      res.setHeader('WWW-Authenticate', 'Bearer realm="api", charset="UTF-8"');
      throw new UnauthorizedException(
        header === undefined
          ? 'Missing API key: send Authorization: Bearer <key>.'
          : 'Invalid or revoked API key.',
      );
    }
    req.owner = owner;
    req.authenticated = true;
    return true;
  }
}

function tooManyFailures(res: Response, seconds: number): HttpException {
  res.setHeader('Retry-After', seconds);
  res.setHeader('RateLimit-Limit', AUTH_FAILURES_PER_MINUTE);
  res.setHeader('RateLimit-Remaining', 0);
  res.setHeader('RateLimit-Reset', seconds);
  return new HttpException(
    `Too many failed authentications from this address (at most ${AUTH_FAILURES_PER_MINUTE} per minute); retry in ${seconds} s.`,
    HttpStatus.TOO_MANY_REQUESTS,
  );
}
