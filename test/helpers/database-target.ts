import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';

/**
 * Which database the e2e suite runs on: SQLite always; PostgreSQL too when TEST_DATABASE_URL is set
 * (jest.config.js then adds the `e2e-postgres` project, which sets TEST_TARGET). On PostgreSQL each
 * test database is a schema of its own, dropped when the test file ends.
 */
export const onPostgres = process.env.TEST_TARGET === 'postgres';

const created: Array<{ kind: 'file' | 'schema'; name: string }> = [];

function postgresUrl(): string {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) throw new Error('TEST_TARGET=postgres needs TEST_DATABASE_URL');
  return url;
}

async function withClient<T>(work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: postgresUrl() });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** A DATABASE_URL naming a new, empty database: a temporary SQLite file or a PostgreSQL schema. */
export async function freshDatabaseUrl(name: string): Promise<string> {
  const unique = `${name.replace(/\W/g, '_')}_${process.pid}_${randomBytes(4).toString('hex')}`;
  if (!onPostgres) {
    const path = join(tmpdir(), `chat-sessions-${unique}.sqlite`);
    created.push({ kind: 'file', name: path });
    return `sqlite:${path}`;
  }
  const schema = `test_${unique}`.toLowerCase();
  await withClient((c) => c.query(`CREATE SCHEMA "${schema}"`));
  created.push({ kind: 'schema', name: schema });
  const url = new URL(postgresUrl());
  url.searchParams.set('options', `-c search_path=${schema}`);
  return url.toString();
}

/** Drops every database this test file created (registered for all e2e files by cleanup.ts). */
export async function dropTestDatabases(): Promise<void> {
  const schemas = created.filter((c) => c.kind === 'schema').map((c) => c.name);
  if (schemas.length > 0) {
    await withClient(async (c) => {
      for (const schema of schemas) await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    });
  }
  for (const file of created.filter((c) => c.kind === 'file')) {
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${file.name}${suffix}`, { force: true });
  }
  created.length = 0;
}
