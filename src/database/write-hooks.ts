import { AsyncLocalStorage } from 'node:async_hooks';
import type { EntityManager } from 'typeorm';

/**
 * Work that must commit or roll back together with one write, registered by a request's caller
 * rather than by the service that writes (e.g. the idempotency record of a POST).
 * DatabaseService.write runs `before` and `after` inside the same transaction as the write, when
 * the write is given them (`{ hooks }`).
 */
export interface WriteHooks {
  before?(manager: EntityManager): Promise<void>;
  after?(manager: EntityManager, result: unknown): Promise<void>;
}

const storage = new AsyncLocalStorage<{ hooks: WriteHooks; claimed: boolean }>();

/**
 * Runs `fn` with `hooks` on offer to the write that the request is about. No write takes them by
 * itself: the service that makes that write claims them (`claimWriteHooks`) and passes them on.
 */
export function offerWriteHooks<T>(hooks: WriteHooks, fn: () => T): T {
  return storage.run({ hooks, claimed: false }, fn);
}

/**
 * The hooks on offer for the write the caller is about to make, if any: for the one write that
 * carries a request's outcome (the session created, the message appended, the import). Each set is
 * handed out once.
 */
export function claimWriteHooks(): WriteHooks | undefined {
  const offer = storage.getStore();
  if (!offer || offer.claimed) return undefined;
  offer.claimed = true;
  return offer.hooks;
}
