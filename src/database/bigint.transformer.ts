import type { ValueTransformer } from 'typeorm';

/**
 * BIGINT columns read as numbers. Timestamps are integer milliseconds since the epoch (portable
 * between SQLite and PostgreSQL, exact to the millisecond the contract requires, cheap to index);
 * counts and PostgreSQL's message ids are BIGINT too. PostgreSQL's driver returns BIGINT as a
 * string, since it may exceed 2^53; ours stay far below it.
 */
export const bigintNumber: ValueTransformer = {
  to: (value: number | undefined) => value,
  from: (value: string | number | null) => (value === null ? null : Number(value)),
};
