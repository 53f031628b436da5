import fc from 'fast-check';
import { futureTimestampProblem, isoTimestamp, parseIsoTimestamp } from './timestamps';

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

describe('parseIsoTimestamp', () => {
  it('reads date-times with a Z or an offset, and refuses dates off the calendar', () => {
    expect(parseIsoTimestamp('2030-01-01T02:00:00+02:00')).toBe(Date.UTC(2030, 0, 1));
    expect(parseIsoTimestamp('2030-01-01T00:00:00.123Z')).toBe(Date.UTC(2030, 0, 1) + 123);
    for (const text of ['2030-02-30T00:00:00Z', '2030-01-01', '2030-01-01T24:00:00Z', 'soon']) {
      expect(parseIsoTimestamp(text)).toBeNaN();
    }
  });
});

describe('futureTimestampProblem', () => {
  const now = Date.UTC(2026, 0, 1);

  it('accepts a time after now, up to the last one the format writes', () => {
    expect(futureTimestampProblem('expires_at', '2026-01-01T00:00:00.001Z', now)).toBeNull();
    expect(futureTimestampProblem('expires_at', '9999-12-31T23:59:59.999Z', now)).toBeNull();
  });

  it.each([
    ['now', '2026-01-01T00:00:00.000Z', 'expires_at must be in the future'],
    ['the past', '2025-12-31T23:59:59.999Z', 'expires_at must be in the future'],
    [
      'a time after 9999',
      '9999-12-31T23:59:59.999-00:01',
      'expires_at must not be after 9999-12-31T23:59:59.999Z',
    ],
    ['a number', now + 1000, expect.stringContaining('ISO 8601')],
    ['a date without a time', '2030-01-01', expect.stringContaining('ISO 8601')],
  ])('refuses %s, naming the field', (_, value, message) => {
    expect(futureTimestampProblem('expires_at', value, now)).toEqual(message);
  });
});
