import { applyDecorators, SetMetadata, UseInterceptors } from '@nestjs/common';
import { ApiHeader } from '@nestjs/swagger';
import { ApiProblems } from '../common/problems/problem.dto';
import {
  IDEMPOTENCY_HEADER,
  IDEMPOTENT_REFRESH,
  IDEMPOTENT_RESPONSE,
  IdempotencyInterceptor,
  type Refresh,
} from './idempotency.interceptor';

/**
 * Makes a POST honour `Idempotency-Key`. `serialize` turns the service's write result into the
 * response body (the same mapping the handler returns), so the stored response is the one sent.
 * `refresh`, if given, turns the stored body into the one a replay sends: for a resource that
 * changes after the write (a reply that goes on generating), its state now.
 */
export function Idempotent<T>(
  serialize: (result: T) => unknown,
  refresh?: Refresh,
): MethodDecorator {
  return applyDecorators(
    SetMetadata(IDEMPOTENT_RESPONSE, serialize),
    SetMetadata(IDEMPOTENT_REFRESH, refresh),
    UseInterceptors(IdempotencyInterceptor),
    ApiHeader({
      name: IDEMPOTENCY_HEADER,
      required: false,
      description:
        "1–255 printable ASCII characters. A retry with the same key and body within 24 hours returns the first response again (with `Idempotent-Replayed: true`) and writes nothing; another body → 422; while the first is still running → 409. The key is scoped to the caller, the method, and the route with its decoded parameters. A caller's 10,000 newest keys are remembered: a key older than that is forgotten early, and its retry runs as a new request.",
      schema: { type: 'string', minLength: 1, maxLength: 255 },
    }),
    ApiProblems(409, 422),
  );
}
