import {
  CallHandler,
  ExecutionContext,
  Injectable,
  NestInterceptor,
  UnprocessableEntityException,
} from '@nestjs/common';
import { ModuleRef, Reflector } from '@nestjs/core';
import type { Response } from 'express';
import { createHash } from 'node:crypto';
import { lastValueFrom, Observable, of } from 'rxjs';
import type { OwnedRequest } from '../auth/owner.decorator';
import { ValidationProblemException } from '../common/problems/validation.pipe';
import { offerWriteHooks } from '../database/write-hooks';
import {
  AlreadyAnswered,
  IdempotencyScope,
  IdempotencyService,
  inFlight,
  StoredResponse,
} from './idempotency.service';

export const IDEMPOTENT_RESPONSE = Symbol('idempotentResponse');
export const IDEMPOTENT_REFRESH = Symbol('idempotentRefresh');
/** The body a replay sends, from the stored one (see Idempotent). */
export type Refresh = (stored: unknown, req: OwnedRequest, modules: ModuleRef) => Promise<unknown>;
export const IDEMPOTENCY_HEADER = 'Idempotency-Key';
const VALID_KEY = /^[\x20-\x7e]{1,255}$/;

/**
 * `Idempotency-Key` on a POST: the first response is stored with the write (see
 * IdempotencyService.hooks) and replayed for retries with the same key and body, with
 * `Idempotent-Replayed: true`. Another body → 422; a retry while the first runs → 409.
 */
@Injectable()
export class IdempotencyInterceptor implements NestInterceptor {
  /** Keys being processed by this process (PostgreSQL also locks them across processes). */
  private readonly inFlight = new Set<string>();

  constructor(
    private readonly idempotency: IdempotencyService,
    private readonly reflector: Reflector,
    private readonly modules: ModuleRef,
  ) {}

  async intercept(context: ExecutionContext, next: CallHandler): Promise<Observable<unknown>> {
    const serialize = this.reflector.get<((result: unknown) => unknown) | undefined>(
      IDEMPOTENT_RESPONSE,
      context.getHandler(),
    );
    const refresh = this.reflector.get<Refresh | undefined>(
      IDEMPOTENT_REFRESH,
      context.getHandler(),
    );
    const req = context.switchToHttp().getRequest<OwnedRequest>();
    const key = req.header(IDEMPOTENCY_HEADER);
    if (!serialize || key === undefined) return next.handle();
    if (!VALID_KEY.test(key)) {
      throw new ValidationProblemException([
        {
          field: IDEMPOTENCY_HEADER,
          message: 'Idempotency-Key must be 1 to 255 printable ASCII characters',
        },
      ]);
    }
    const res = context.switchToHttp().getResponse<Response>();
    const body: unknown = req.body;
    const scope: IdempotencyScope = {
      owner: req.owner ?? '',
      method: req.method,
      path: routeOf(req),
      key,
      requestHash: createHash('sha256')
        .update(typeof body === 'string' ? body : JSON.stringify(body ?? {}))
        .digest('hex'),
    };
    const id = [scope.owner, scope.method, scope.path, scope.key].join('\n');
    // Claimed before the first await, so two overlapping retries cannot both pass the check.
    if (this.inFlight.has(id)) throw inFlight();
    this.inFlight.add(id);
    try {
      const stored = await this.idempotency.lookup(scope);
      if (stored) return of(await this.replay(res, scope, stored, req, refresh));
      const hooks = this.idempotency.hooks(scope, serialize);
      return of(await offerWriteHooks(hooks, () => lastValueFrom(next.handle())));
    } catch (error) {
      if (error instanceof AlreadyAnswered) {
        return of(await this.replay(res, scope, error.stored, req, refresh));
      }
      throw error;
    } finally {
      this.inFlight.delete(id);
    }
  }

  private async replay(
    res: Response,
    scope: IdempotencyScope,
    stored: StoredResponse,
    req: OwnedRequest,
    refresh: Refresh | undefined,
  ): Promise<unknown> {
    if (stored.requestHash !== scope.requestHash) {
      throw new UnprocessableEntityException(
        'This Idempotency-Key was already used with a different request body.',
      );
    }
    const body = JSON.parse(stored.body) as unknown;
    const sent = refresh ? await refresh(body, req, this.modules) : body;
    res.setHeader('Idempotent-Replayed', 'true');
    res.status(stored.status);
    return sent;
  }
}

/**
 * The route and its decoded parameters, spelled one way: `/sessions/%61bc/messages`,
 * `/sessions/abc/messages/` and `/sessions/abc/messages` are one route of one session, so one scope.
 */
function routeOf(req: OwnedRequest): string {
  const route = (req.route as { path?: unknown } | undefined)?.path;
  if (typeof route !== 'string') return req.path.replace(/\/+$/, '') || '/';
  const params = req.params as Record<string, string>;
  const path = route.replace(/:(\w+)/g, (_, name: string) =>
    encodeURIComponent(params[name] ?? ''),
  );
  return `${req.baseUrl}${path}`.replace(/\/+$/, '') || '/';
}
