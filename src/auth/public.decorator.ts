import { ExecutionContext, SetMetadata } from '@nestjs/common';
import type { Reflector } from '@nestjs/core';

const PUBLIC = 'public';

/**
 * A route any caller may use without an API key (`GET /`, health checks). Every other route needs
 * the caller known with AUTH_MODE=api-key: the guard denies by default, so no spelling of a path and
 * no route added later can reach a handler unauthenticated by accident.
 */
export const Public = (): MethodDecorator & ClassDecorator => SetMetadata(PUBLIC, true);

export function isPublic(reflector: Reflector, context: ExecutionContext): boolean {
  return (
    reflector.getAllAndOverride<boolean | undefined>(PUBLIC, [
      context.getHandler(),
      context.getClass(),
    ]) === true
  );
}
