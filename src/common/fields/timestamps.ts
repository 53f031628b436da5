const DAY_MS = 86_400_000;

/** The UTC day `toISOString` last formatted: where it starts, and its text up to the `T`. */
let dayStart = NaN;
let dayPrefix = '';

const pad2 = (n: number) => (n < 10 ? `0${n}` : String(n));
const pad3 = (n: number) => (n < 10 ? `00${n}` : n < 100 ? `0${n}` : String(n));

/**
 * The contract's timestamp format: ISO 8601, UTC, millisecond precision, `Z` suffix; exactly what
 * `Date.prototype.toISOString` writes. A page of messages or sessions formats hundreds of times of
 * the same day, so the date part is kept from the last call and only the time of day is written
 * (a sixth of `toISOString`'s cost; it was 9 % of the CPU of a 200-message history request). Any
 * other day, and anything that is not a whole number of milliseconds, goes through `toISOString`.
 */
export function isoTimestamp(epochMs: number): string {
  const offset = epochMs - dayStart;
  if (offset >= 0 && offset < DAY_MS && Number.isInteger(offset)) {
    const seconds = Math.floor(offset / 1000);
    return `${dayPrefix}${pad2(Math.floor(seconds / 3600))}:${pad2(Math.floor(seconds / 60) % 60)}:${pad2(seconds % 60)}.${pad3(offset % 1000)}Z`;
  }
  const text = new Date(epochMs).toISOString();
  if (Number.isInteger(epochMs)) {
    dayStart = epochMs - (((epochMs % DAY_MS) + DAY_MS) % DAY_MS);
    dayPrefix = text.slice(0, text.indexOf('T') + 1);
  }
  return text;
}
