import { setImmediate as nextTurn } from 'node:timers/promises';

/**
 * Long synchronous loops (parsing and checking a 50 MiB import, writing its rows) call `pace()`
 * often; every `sliceMs` it yields one turn of the event loop, so the process keeps accepting and
 * answering other requests meanwhile.
 */
export class Pacer {
  private last = performance.now();

  constructor(private readonly sliceMs = 10) {}

  async pace(): Promise<void> {
    if (performance.now() - this.last < this.sliceMs) return;
    await nextTurn();
    this.last = performance.now();
  }
}
