import fc from 'fast-check';
import { isoTimestamp } from './timestamps';

/** The range of times a Date can hold: ±100,000,000 days around the epoch. */
const MAX_MS = 8.64e15;

describe('isoTimestamp', () => {
  it('writes what toISOString writes, for any time, in any order of calls', () => {
    const time = fc.oneof(
      fc.integer({ min: -MAX_MS, max: MAX_MS }),
      // Runs of times close together, as a page has them, across day and year boundaries.
      fc.integer({ min: 1_700_000_000_000, max: 1_700_000_000_000 + 5 * 86_400_000 }),
      fc.constantFrom(
        0,
        -1,
        1,
        86_399_999,
        86_400_000,
        -86_400_000,
        253402300799999,
        MAX_MS,
        -MAX_MS,
      ),
    );
    fc.assert(
      fc.property(fc.array(time, { maxLength: 50 }), (times) => {
        for (const ms of times) expect(isoTimestamp(ms)).toBe(new Date(ms).toISOString());
      }),
      { numRuns: 2000 },
    );
  });

  it('throws for a time a Date cannot hold, as toISOString does', () => {
    isoTimestamp(1_700_000_000_000);
    expect(() => isoTimestamp(Number.NaN)).toThrow(RangeError);
    expect(() => isoTimestamp(MAX_MS + 1)).toThrow(RangeError);
  });

  it('keeps the milliseconds of a fractional time as toISOString does', () => {
    isoTimestamp(1_700_000_000_000);
    expect(isoTimestamp(1_700_000_000_000.7)).toBe(new Date(1_700_000_000_000.7).toISOString());
  });
});
