import { AsyncLocalStorage } from 'node:async_hooks';
import type { EntityManager } from 'typeorm';

/**
 * Work that must commit or roll back together with a request's write, registered by the request's
 * caller rather than by the service that writes (e.g. the idempotency record of a POST).
 * DatabaseService.write runs `before` and `after` inside the same transaction as the write, once.
 */
export interface WriteHooks {
  before?(manager: EntityManager): Promise<void>;
  after?(manager: EntityManager, result: unknown): Promise<void>;
}

const storage = new AsyncLocalStorage<{ hooks: WriteHooks; used: boolean }>();

/** Runs `fn` with `hooks` attached to the first database write it makes. */
export function withWriteHooks<T>(hooks: WriteHooks, fn: () => T): T {
  return storage.run({ hooks, used: false }, fn);
}

/** The hooks for the write about to start, if any (each set is handed out once). */
export function takeWriteHooks(): WriteHooks | undefined {
  const scope = storage.getStore();
  if (!scope || scope.used) return undefined;
  scope.used = true;
  return scope.hooks;
}
