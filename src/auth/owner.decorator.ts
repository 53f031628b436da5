import { createParamDecorator, ExecutionContext } from '@nestjs/common';
import type { Request } from 'express';

/** The owner every session belongs to when AUTH_MODE=none. */
export const LOCAL_OWNER = 'local';

export interface OwnedRequest extends Request {
  /** Set by AuthGuard: the API key's owner, or LOCAL_OWNER without authentication. */
  owner?: string;
  /** True when the owner was proven by an API key (rate limits then count per owner). */
  authenticated?: boolean;
}

/** The caller's owner id, as established by AuthGuard. */
export const Owner = createParamDecorator((_: unknown, context: ExecutionContext): string => {
  const owner = context.switchToHttp().getRequest<OwnedRequest>().owner;
  if (owner === undefined) throw new Error('No owner on the request: is AuthGuard registered?');
  return owner;
});
