/** The contract's timestamp format: ISO 8601, UTC, millisecond precision, `Z` suffix. */
export function isoTimestamp(epochMs: number): string {
  return new Date(epochMs).toISOString();
}
