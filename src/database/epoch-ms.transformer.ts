import type { ValueTransformer } from 'typeorm';

/**
 * Timestamps are stored as integer milliseconds since the epoch (BIGINT): portable between SQLite
 * and PostgreSQL, exact to the millisecond the contract requires, and cheap to index and compare.
 * PostgreSQL's driver returns BIGINT as a string, hence the conversion.
 */
export const epochMs: ValueTransformer = {
  to: (value: number | undefined) => value,
  from: (value: string | number | null) => (value === null ? null : Number(value)),
};
