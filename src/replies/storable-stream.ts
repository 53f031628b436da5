import { toStorableText } from '../common/fields/json-bounds';

/**
 * Model text made storable as it arrives: what posted text may not hold cannot reach the database
 * from a model either. U+0000 (PostgreSQL refuses it, and one refused row would fail the store of
 * every reply in progress) and unpaired surrogates become U+FFFD; a high surrogate ending a delta
 * waits for the next one, which may bring its pair.
 */
export class StorableStream {
  private pending = '';

  take(delta: string): string {
    let text = this.pending + delta;
    const last = text.charCodeAt(text.length - 1);
    this.pending = last >= 0xd800 && last <= 0xdbff ? text.slice(-1) : '';
    if (this.pending) text = text.slice(0, -1);
    return toStorableText(text);
  }

  /** What is left at the end: an unpaired high surrogate, as U+FFFD. */
  flush(): string {
    const rest = this.pending;
    this.pending = '';
    return toStorableText(rest);
  }
}
