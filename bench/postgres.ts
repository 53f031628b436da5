import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

const created: Array<{ url: string; schema: string }> = [];

/**
 * The bench seeds thousands of rows: on PostgreSQL it works in a schema of its own (dropped at the
 * end) rather than in whatever the given database already holds.
 */
export async function benchSchema(databaseUrl: string): Promise<string> {
  if (!/^postgres(ql)?:\/\//.test(databaseUrl)) return databaseUrl;
  const schema = `bench_${process.pid}_${randomBytes(3).toString('hex')}`;
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(`CREATE SCHEMA "${schema}"`);
  } finally {
    await client.end();
  }
  created.push({ url: databaseUrl, schema });
  const url = new URL(databaseUrl);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return url.toString();
}

export async function dropBenchSchemas(): Promise<void> {
  for (const { url, schema } of created.splice(0)) {
    const client = new Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    } finally {
      await client.end();
    }
  }
}
