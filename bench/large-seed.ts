import { recountSessions } from './recount';
import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { validateEnv } from '../src/config/env.validation';
import { buildDataSourceOptions } from '../src/database/database.options';

/**
 * Seeds a large store straight into the database with bulk inserts (the API would take hours for a
 * million messages), after running the real migrations, so the search index triggers of the
 * migration index every row exactly as the service's own writes do.
 */

/** Words of the generated texts: a Zipf-like mix of very common to rare made-up words. */
const VOCABULARY = Array.from({ length: 5000 }, (_, i) => word(i));
const TOPICS = ['travel', 'cooking', 'taxes', 'gardening', 'databases', 'music', 'health', 'chess'];
const MARKERS = {
  /** In 10 messages: a needle. */
  rare: 'quetzalcoatl',
  /** In 1 message of 1,000. */
  medium: 'lisbon',
  /** A phrase in 1 message of 500. */
  phrase: 'late may',
};
/** Share of messages holding the k-th word (word k is drawn with probability ln((k+2)/(k+1)) / ln V). */
function share(k: number): string {
  const perWord = Math.log((k + 2) / (k + 1)) / Math.log(VOCABULARY.length);
  return `${Math.round((1 - (1 - perWord) ** 45) * 100)} % of messages`;
}

export const SEARCHES: [string, string][] = [
  ['rare word (10 hits)', MARKERS.rare],
  ['medium word (1 in 1,000 messages)', MARKERS.medium],
  [`common word (${share(23)})`, VOCABULARY[23]],
  [`most common word (${share(0)})`, VOCABULARY[0]],
  ['prefix of 3 letters', 'lis'],
  ['quoted phrase (1 in 500)', `"${MARKERS.phrase}"`],
  ['two words (AND)', `${MARKERS.medium} ${VOCABULARY[23]}`],
  ['accented, upper case', 'LISBÔN'],
  ['session names: a word in 1 name of 8', 'travel'],
  ['session names: a word in every name', 'conversation'],
];

function word(i: number): string {
  const syllables = ['ka', 'lo', 'mi', 'ra', 'te', 'su', 'no', 'vi', 'de', 'po', 'lu', 'ze'];
  let out = '';
  let n = i + 12;
  while (n > 0) {
    out += syllables[n % syllables.length];
    n = Math.floor(n / syllables.length);
  }
  return out;
}

/** Deterministic pseudo-random numbers, so every run seeds the same texts. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SeedRow {
  sessions: unknown[][];
  messages: unknown[][];
}

/** Sessions [from, to) with `perSession` messages each, as rows for the two tables. */
export function generate(from: number, to: number, perSession: number): SeedRow {
  const next = random(from + 1);
  const sessions: unknown[][] = [];
  const messages: unknown[][] = [];
  const start = Date.UTC(2025, 0, 1);
  for (let s = from; s < to; s++) {
    const id = randomUUID();
    const created = start + s * 60_000;
    // Names use words of their own, so message searches measure message hits, not name hits.
    const name = `Conversation ${s} on ${TOPICS[Math.floor(next() * TOPICS.length)]}`;
    let time = created;
    for (let m = 0; m < perSession; m++) {
      const n = s * perSession + m;
      const length = 10 + Math.floor(next() * 70);
      const words: string[] = [];
      for (let w = 0; w < length; w++) {
        words.push(VOCABULARY[Math.floor(Math.exp(next() * Math.log(VOCABULARY.length))) - 1]);
      }
      if (n % 100_000 === 7) words.splice(length >> 1, 0, MARKERS.rare);
      if (n % 1000 === 3) words.splice(length >> 2, 0, 'Lisbon,');
      if (n % 500 === 1) words.splice(length >> 3, 0, 'in', MARKERS.phrase);
      time += 1000 + Math.floor(next() * 60_000);
      messages.push([
        id,
        time,
        m % 2 === 0 ? 'user' : 'assistant',
        `${words.join(' ')}.`,
        m % 2 === 0 ? null : '{"model":"bench","tokens":42}',
      ]);
    }
    sessions.push([
      id,
      name,
      created,
      time,
      'bench-model',
      null,
      null,
      perSession,
      s % 10 === 9,
      false,
    ]);
  }
  return { sessions, messages };
}

export async function migrate(databaseUrl: string): Promise<void> {
  const dataSource = new DataSource(
    buildDataSourceOptions(validateEnv({ DATABASE_URL: databaseUrl })),
  );
  await dataSource.initialize();
  try {
    await dataSource.runMigrations();
  } finally {
    await dataSource.destroy();
  }
}

const SESSION_INSERT = `INSERT INTO "sessions" ("id", "name", "created_at", "last_updated_at", "llm_model_name", "rag_document_ids", "metadata_tags", "message_count", "archived", "pinned")`;
const MESSAGE_INSERT = `INSERT INTO "chat_messages" ("session_id", "timestamp", "role", "content", "metadata")`;
const BATCH_SESSIONS = 2000;

/** Adds sessions [from, to) to the store. */
export async function seed(
  databaseUrl: string,
  from: number,
  to: number,
  perSession: number,
  progress: (done: number) => void,
): Promise<void> {
  if (databaseUrl.startsWith('sqlite:')) {
    const db = new Database(databaseUrl.slice('sqlite:'.length));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = OFF');
    const session = db.prepare(`${SESSION_INSERT} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
    const message = db.prepare(`${MESSAGE_INSERT} VALUES (?, ?, ?, ?, ?)`);
    const insert = db.transaction((rows: SeedRow) => {
      for (const row of rows.sessions)
        session.run(row.map((v) => (v === true ? 1 : v === false ? 0 : v)));
      for (const row of rows.messages) message.run(row);
    });
    for (let s = from; s < to; s += BATCH_SESSIONS) {
      insert(generate(s, Math.min(to, s + BATCH_SESSIONS), perSession));
      progress(Math.min(to, s + BATCH_SESSIONS));
    }
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
    await recountSessions(databaseUrl);
    return;
  }
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    for (let s = from; s < to; s += BATCH_SESSIONS) {
      const rows = generate(s, Math.min(to, s + BATCH_SESSIONS), perSession);
      const columns = (table: unknown[][], i: number) => table.map((row) => row[i]);
      await client.query('BEGIN');
      await client.query(
        `${SESSION_INSERT} SELECT * FROM unnest($1::varchar[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::int[], $9::boolean[], $10::boolean[])`,
        Array.from({ length: 10 }, (_, i) => columns(rows.sessions, i)),
      );
      await client.query(
        `${MESSAGE_INSERT} SELECT * FROM unnest($1::varchar[], $2::bigint[], $3::varchar[], $4::text[], $5::text[])`,
        Array.from({ length: 5 }, (_, i) => columns(rows.messages, i)),
      );
      await client.query('COMMIT');
      progress(Math.min(to, s + BATCH_SESSIONS));
    }
    await client.query('VACUUM ANALYZE "sessions"');
    await client.query('VACUUM ANALYZE "chat_messages"');
  } finally {
    await client.end();
  }
  await recountSessions(databaseUrl);
}
