import { CanActivate, ExecutionContext, Injectable, UnauthorizedException } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { Response } from 'express';
import type { Env } from '../config/env.validation';
import { ApiKeysService } from './api-keys.service';
import { LOCAL_OWNER, OwnedRequest } from './owner.decorator';

/** Routes under this prefix need a key with AUTH_MODE=api-key; `/`, docs and health stay open. */
const PROTECTED_PREFIX = '/api/';

/**
 * Establishes the caller's owner for every request. AUTH_MODE=none: everyone is the local owner.
 * AUTH_MODE=api-key: `/api/…` needs `Authorization: Bearer <key>`, looked up on every request.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  private readonly required: boolean;

  constructor(
    private readonly apiKeys: ApiKeysService,
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
    if (!req.path.startsWith(PROTECTED_PREFIX)) return true;
    const header = req.headers.authorization;
    const token = /^Bearer +(\S+) *$/i.exec(header ?? '')?.[1];
    const owner = token === undefined ? null : await this.apiKeys.authenticate(token);
    if (owner === null) {
      context
        .switchToHttp()
        .getResponse<Response>()
        .setHeader('WWW-Authenticate', 'Bearer realm="api", charset="UTF-8"');
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
