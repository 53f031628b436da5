/**
 * `npm run seed:large`: fills a database with a large, realistic data set by bulk inserts (not the
 * API): minutes for a million messages where the API would take hours.
 *
 * The schema comes from the service's own migrations. The data keeps every invariant the service
 * keeps (message_count, last_updated_at = newest message, timestamps increasing within a session,
 * each session's messages a chain ending in its current message)
 * and looks like a real store: message counts per session vary (exponentially distributed), the
 * messages of all sessions are interleaved in time (so one session's rows are spread over the whole
 * table, as they are after months of use), contents of 10–80 words drawn Zipf-like from a made-up
 * vocabulary with marker words planted at fixed rates (so the searches in SEARCHES know their
 * hits), metadata on some assistant messages, some sessions archived, pinned or tagged. Besides the bulk, three sessions the
 * benchmark uses, found by name: a 200-message history, an empty session that takes appends, and a
 * deep history (1,000,000 messages by default) for paging deep by cursor and by skip.
 *
 * Options (flags, or the environment variable in brackets):
 *   --database-url [SEED_DATABASE_URL]  default sqlite:./data/large.sqlite; postgres://… works too
 *   --sessions     [SEED_SESSIONS]      bulk sessions (default 100,000)
 *   --messages     [SEED_MESSAGES]      messages spread over them (default 1,000,000)
 *   --deep         [SEED_DEEP]          messages of the deep-history session (default 1,000,000; 0 = none)
 *   --seed         [SEED_SEED]          the pseudo-random seed (default 1): same seed, same data
 * It refuses a database that already holds sessions.
 */
import Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { validateEnv } from '../src/config/env.validation';
import { buildDataSourceOptions } from '../src/database/database.options';
import { entities } from '../src/database/entities';
import { SessionCountsRepository } from '../src/sessions/session-counts.repository';
import { Options } from './options';
import { seededRandom } from './random';

export const FIXTURE_NAMES = {
  history: 'Benchmark: 200-message history',
  writes: 'Benchmark: appends',
  deep: 'Benchmark: deep history',
  branch: 'Benchmark: 10,000-message branch',
} as const;

export const HISTORY_MESSAGES = 200;
/** The branch fixture: one chain, so its current branch is all of it. */
export const BRANCH_MESSAGES = 10_000;

export interface LargeSeedOptions {
  sessions: number;
  messages: number;
  deepMessages: number;
  /** Messages of the branch fixture (default BRANCH_MESSAGES). */
  branchMessages?: number;
  seed: number;
}

export const LARGE_DEFAULTS: LargeSeedOptions = {
  sessions: 100_000,
  messages: 1_000_000,
  deepMessages: 1_000_000,
  seed: 1,
};

export interface SeedResult {
  sessions: number;
  messages: number;
  seconds: number;
}

interface SessionPlan {
  id: string;
  name: string;
  createdAt: number;
  lastUpdatedAt: number;
  messageCount: number;
  ragDocumentIds: string | null;
  metadataTags: string | null;
  archived: boolean;
  pinned: boolean;
}

interface MessageRow {
  sessionId: string;
  timestamp: number;
  role: string;
  content: string;
  metadata: string | null;
}

const DAY_MS = 86_400_000;

const TOPICS = ['travel', 'cooking', 'taxes', 'gardening', 'databases', 'music', 'health', 'chess'];

/** Made-up words, drawn Zipf-like: a few very common, most rare, as in real text. */
const VOCABULARY = Array.from({ length: 5000 }, (_, i) => word(i));

function word(i: number): string {
  const syllables = ['ka', 'lo', 'mi', 'ra', 'te', 'su', 'no', 'vi', 'de', 'po', 'lu', 'ze'];
  let out = '';
  for (let n = i + 12; n > 0; n = Math.floor(n / syllables.length)) {
    out += syllables[n % syllables.length];
  }
  return out;
}

/** Words planted at fixed rates (by the message's position in time), so searches know their hits. */
const MARKERS = {
  /** In 1 message of 100,000. */
  rare: 'quetzalcoatl',
  /** In 1 message of 1,000, capitalised and with a comma, as real text has it. */
  medium: 'lisbon',
  /** A phrase in 1 message of 500. */
  phrase: 'late may',
};

const WORDS_MIN = 10;
const WORDS_SPREAD = 70;

/** Share of messages holding the k-th word (word k is drawn with probability ln((k+2)/(k+1)) / ln V). */
function share(k: number): string {
  const perWord = Math.log((k + 2) / (k + 1)) / Math.log(VOCABULARY.length);
  const words = WORDS_MIN + WORDS_SPREAD / 2;
  return `${Math.round((1 - (1 - perWord) ** words) * 100)} % of messages`;
}

/** Searches of the large bench, with what they should find in a seeded store. */
export const SEARCHES: [label: string, query: string][] = [
  ['rare word (1 in 100,000 messages)', MARKERS.rare],
  ['medium word (1 in 1,000 messages)', MARKERS.medium],
  [`common word (${share(23)})`, VOCABULARY[23]],
  [`most common word (${share(0)})`, VOCABULARY[0]],
  ['prefix of 3 letters', 'lis'],
  ['quoted phrase (1 in 500)', `"${MARKERS.phrase}"`],
  ['two words (AND)', `${MARKERS.medium} ${VOCABULARY[23]}`],
  ['accented, upper case', 'LISBÔN'],
  ['session names: a word in 1 name of 8', TOPICS[0]],
  ['session names: a word in every name', 'conversation'],
];

/** A version-4 UUID from the seeded sequence, so the same seed makes the same ids. */
function uuid(random: () => number): string {
  const hex = Array.from({ length: 32 }, () => Math.floor(random() * 16).toString(16));
  hex[12] = '4';
  hex[16] = (8 + Math.floor(random() * 4)).toString(16);
  const s = hex.join('');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
}

/** The text of the n-th message (in time order): vocabulary words, markers at their rates. */
function content(random: () => number, n: number): string {
  const length = WORDS_MIN + Math.floor(random() * WORDS_SPREAD);
  const words: string[] = [];
  for (let w = 0; w < length; w++) {
    words.push(VOCABULARY[Math.floor(Math.exp(random() * Math.log(VOCABULARY.length))) - 1]);
  }
  if (n % 100_000 === 7) words.splice(length >> 1, 0, MARKERS.rare);
  if (n % 1000 === 3) words.splice(length >> 2, 0, 'Lisbon,');
  if (n % 500 === 1) words.splice(length >> 3, 0, 'in', MARKERS.phrase);
  // Real conversations hold accents and emoji too.
  if (n % 50 === 11) words.push('Ünïcödé', 'and', 'emoji', '🙂');
  return `${words.join(' ')}.`;
}

/**
 * The whole data set as a plan: sessions (inserted first, for the foreign key) and a generator of
 * message rows in global time order, so ids and timestamps rise together, as in a live store.
 */
function plan(options: LargeSeedOptions, now: number) {
  const random = seededRandom(options.seed);
  const counts: number[] = [];
  const mean = options.sessions > 0 ? options.messages / options.sessions : 0;
  let assigned = 0;
  for (let i = 0; i < options.sessions; i++) {
    const count = Math.floor(-Math.log(1 - random()) * mean);
    counts.push(count);
    assigned += count;
  }
  // Make the total exact: trim or top up a few sessions at a time.
  for (let i = 0; assigned !== options.messages && options.sessions > 0; i++) {
    const index = i % options.sessions;
    if (assigned > options.messages && counts[index] > 0) {
      counts[index]--;
      assigned--;
    } else if (assigned < options.messages) {
      counts[index]++;
      assigned++;
    }
  }
  const fixtures = [
    { name: FIXTURE_NAMES.history, count: HISTORY_MESSAGES },
    { name: FIXTURE_NAMES.writes, count: 0 },
    { name: FIXTURE_NAMES.branch, count: options.branchMessages ?? BRANCH_MESSAGES },
    ...(options.deepMessages > 0
      ? [{ name: FIXTURE_NAMES.deep, count: options.deepMessages }]
      : []),
  ];
  counts.push(...fixtures.map((f) => f.count));

  const sessions: SessionPlan[] = counts.map((count, i) => {
    const fixture = fixtures[i - options.sessions];
    const tagged = random() < 0.2;
    return {
      id: uuid(random),
      name: fixture?.name ?? `Conversation ${i} on ${TOPICS[i % TOPICS.length]}`,
      createdAt: 0,
      lastUpdatedAt: 0,
      messageCount: count,
      ragDocumentIds: random() < 0.3 ? JSON.stringify([`doc-${i}`, 'handbook']) : null,
      metadataTags: tagged
        ? JSON.stringify({ project: TOPICS[i % TOPICS.length], lang: 'en' })
        : null,
      archived: !fixture && random() < 0.1,
      pinned: !fixture && random() < 0.02,
    };
  });

  // Which session each message belongs to, in time order: every session's messages, shuffled.
  const total = counts.reduce((a, b) => a + b, 0);
  const owner = new Int32Array(total);
  let k = 0;
  counts.forEach((count, s) => owner.fill(s, k, (k += count)));
  for (let i = total - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [owner[i], owner[j]] = [owner[j], owner[i]];
  }
  // Timestamps: strictly increasing over the last 300 days, so within each session too.
  const start = now - 300 * DAY_MS;
  const step = Math.max(1, Math.floor((299 * DAY_MS) / Math.max(1, total)));
  const firstSeen = new Float64Array(sessions.length).fill(NaN);
  for (let m = 0; m < total; m++) {
    const s = owner[m];
    const timestamp = start + m * step;
    if (Number.isNaN(firstSeen[s])) firstSeen[s] = timestamp;
    sessions[s].lastUpdatedAt = timestamp;
  }
  sessions.forEach((session, s) => {
    const before = Math.floor(random() * 3_600_000);
    session.createdAt = Number.isNaN(firstSeen[s])
      ? start + Math.floor(random() * 299 * DAY_MS)
      : firstSeen[s] - before;
    if (Number.isNaN(firstSeen[s])) session.lastUpdatedAt = session.createdAt;
  });

  function* messages(): Generator<MessageRow> {
    const sent = new Int32Array(sessions.length);
    const text = seededRandom(options.seed + 1);
    for (let m = 0; m < total; m++) {
      const s = owner[m];
      const assistant = sent[s]++ % 2 === 1;
      yield {
        sessionId: sessions[s].id,
        timestamp: start + m * step,
        role: sent[s] === 1 && text() < 0.1 ? 'system' : assistant ? 'assistant' : 'user',
        content: content(text, m),
        metadata:
          assistant && text() < 0.5
            ? JSON.stringify({ model: 'default', tokens: Math.floor(text() * 900) })
            : null,
      };
    }
  }
  return { sessions, messages, total };
}

async function migrateEmpty(databaseUrl: string): Promise<void> {
  const dataSource = new DataSource(
    buildDataSourceOptions(validateEnv({ DATABASE_URL: databaseUrl })),
  );
  await dataSource.initialize();
  try {
    await dataSource.runMigrations();
    const [{ n }]: { n: number | string }[] = await dataSource.query(
      `SELECT COUNT(*) AS "n" FROM "sessions"`,
    );
    if (Number(n) > 0)
      throw new Error(`the database already holds ${n} sessions; seed an empty one`);
  } finally {
    await dataSource.destroy();
  }
}

const SQLITE_BATCH = 50_000;

function seedSqlite(path: string, data: ReturnType<typeof plan>, progress: (line: string) => void) {
  const db = new Database(path);
  try {
    // A bulk load into a fresh file: nothing to lose if it dies half-way, so no fsync per batch.
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = OFF');
    db.pragma('cache_size = -262144');
    const insertSession = db.prepare(
      `INSERT INTO "sessions" ("id", "name", "created_at", "last_updated_at", "llm_model_name", "rag_document_ids", "metadata_tags", "message_count", "archived", "pinned")
       VALUES (?, ?, ?, ?, 'default', ?, ?, ?, ?, ?)`,
    );
    const insertMessage = db.prepare(
      `INSERT INTO "chat_messages" ("session_id", "timestamp", "role", "content", "metadata") VALUES (?, ?, ?, ?, ?)`,
    );
    db.transaction(() => {
      for (const s of data.sessions) {
        insertSession.run(
          s.id,
          s.name,
          s.createdAt,
          s.lastUpdatedAt,
          s.ragDocumentIds,
          s.metadataTags,
          s.messageCount,
          s.archived ? 1 : 0,
          s.pinned ? 1 : 0,
        );
      }
    })();
    const batch: MessageRow[] = [];
    const flush = db.transaction(() => {
      for (const m of batch)
        insertMessage.run(m.sessionId, m.timestamp, m.role, m.content, m.metadata);
    });
    let done = 0;
    for (const message of data.messages()) {
      batch.push(message);
      if (batch.length === SQLITE_BATCH) {
        flush();
        done += batch.length;
        batch.length = 0;
        if (done % 500_000 === 0) progress(`${done.toLocaleString('en')} messages`);
      }
    }
    flush();
    db.pragma('wal_checkpoint(TRUNCATE)');
  } finally {
    db.close();
  }
}

const POSTGRES_BATCH = 5_000;

async function seedPostgres(
  url: string,
  data: ReturnType<typeof plan>,
  progress: (line: string) => void,
) {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('SET synchronous_commit = off');
    for (let i = 0; i < data.sessions.length; i += POSTGRES_BATCH) {
      const rows = data.sessions.slice(i, i + POSTGRES_BATCH);
      await client.query(
        `INSERT INTO "sessions" ("id", "name", "created_at", "last_updated_at", "llm_model_name", "rag_document_ids", "metadata_tags", "message_count", "archived", "pinned")
         SELECT id, name, created_at, last_updated_at, 'default', rag, tags, count, archived, pinned
         FROM unnest($1::varchar[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::int[], $8::boolean[], $9::boolean[])
           AS t(id, name, created_at, last_updated_at, rag, tags, count, archived, pinned)`,
        [
          rows.map((s) => s.id),
          rows.map((s) => s.name),
          rows.map((s) => s.createdAt),
          rows.map((s) => s.lastUpdatedAt),
          rows.map((s) => s.ragDocumentIds),
          rows.map((s) => s.metadataTags),
          rows.map((s) => s.messageCount),
          rows.map((s) => s.archived),
          rows.map((s) => s.pinned),
        ],
      );
    }
    const batch: MessageRow[] = [];
    const flush = () =>
      client.query(
        `INSERT INTO "chat_messages" ("session_id", "timestamp", "role", "content", "metadata")
         SELECT * FROM unnest($1::varchar[], $2::bigint[], $3::varchar[], $4::text[], $5::text[])`,
        [
          batch.map((m) => m.sessionId),
          batch.map((m) => m.timestamp),
          batch.map((m) => m.role),
          batch.map((m) => m.content),
          batch.map((m) => m.metadata),
        ],
      );
    let done = 0;
    for (const message of data.messages()) {
      batch.push(message);
      if (batch.length === POSTGRES_BATCH) {
        await flush();
        done += batch.length;
        batch.length = 0;
        if (done % 500_000 === 0) progress(`${done.toLocaleString('en')} messages`);
      }
    }
    if (batch.length > 0) await flush();
  } finally {
    await client.end();
  }
}

/**
 * After the bulk load, which bypassed the service: the list's session counts, rebuilt at once; and
 * the conversation trees, as the service builds them from appends without `parent_id` (and as the
 * v1.2 upgrade migration chains older messages): each message follows the one before it in its
 * session's (timestamp, id) order, and each session's newest message is its current one.
 */
async function recountSessions(databaseUrl: string): Promise<void> {
  const dataSource = await new DataSource({
    // Statements over every row of a large store: no statement timeout.
    ...buildDataSourceOptions(
      validateEnv({ DATABASE_URL: databaseUrl, DB_STATEMENT_TIMEOUT_MS: '0' }),
    ),
    entities,
  }).initialize();
  try {
    await dataSource.transaction(async (manager) => {
      await SessionCountsRepository.recount(manager);
      await manager.query(
        `UPDATE "chat_messages" SET "parent_id" = c."previous"
         FROM (SELECT "id", LAG("id") OVER (PARTITION BY "session_id" ORDER BY "timestamp", "id") AS "previous"
               FROM "chat_messages") c
         WHERE "chat_messages"."id" = c."id" AND c."previous" IS NOT NULL`,
      );
      await manager.query(
        `UPDATE "sessions" SET "current_message_id" = (
           SELECT m."id" FROM "chat_messages" m WHERE m."session_id" = "sessions"."id"
           ORDER BY m."timestamp" DESC, m."id" DESC LIMIT 1)
         WHERE "message_count" > 0`,
      );
    });
    // A table as a running server's would be: autovacuum, shortly after a load and an update this
    // size, removes the old row versions, marks the pages all-visible (index-only scans need no
    // table fetch) and gathers the statistics.
    if (dataSource.options.type === 'postgres') {
      for (const table of ['sessions', 'chat_messages']) {
        await dataSource.query(`VACUUM (ANALYZE) "${table}"`);
      }
    }
  } finally {
    await dataSource.destroy();
  }
}

/** Seeds an empty database (migrating it first); `databaseUrl` as DATABASE_URL. */
export async function seedLarge(
  databaseUrl: string,
  options: LargeSeedOptions = LARGE_DEFAULTS,
  progress: (line: string) => void = () => {},
): Promise<SeedResult> {
  const started = Date.now();
  await migrateEmpty(databaseUrl);
  const data = plan(options, Date.now());
  const target = validateEnv({ DATABASE_URL: databaseUrl }).DATABASE;
  if (target.type === 'sqlite') seedSqlite(target.path, data, progress);
  else await seedPostgres(target.url, data, progress);
  await recountSessions(databaseUrl);
  return {
    sessions: data.sessions.length,
    messages: data.total,
    seconds: (Date.now() - started) / 1000,
  };
}

async function main(): Promise<void> {
  const args = new Options();
  const databaseUrl =
    args.text('--database-url', 'SEED_DATABASE_URL') ?? 'sqlite:./data/large.sqlite';
  const options: LargeSeedOptions = {
    sessions: args.integer('--sessions', 'SEED_SESSIONS', LARGE_DEFAULTS.sessions),
    messages: args.integer('--messages', 'SEED_MESSAGES', LARGE_DEFAULTS.messages),
    deepMessages: args.integer('--deep', 'SEED_DEEP', LARGE_DEFAULTS.deepMessages),
    seed: args.integer('--seed', 'SEED_SEED', LARGE_DEFAULTS.seed),
  };
  args.rejectUnknown();
  const result = await seedLarge(databaseUrl, options, (line) =>
    process.stderr.write(`  ${line}\n`),
  );
  const target = validateEnv({ DATABASE_URL: databaseUrl }).DATABASE;
  const size =
    target.type === 'sqlite'
      ? `, ${(statSync(target.path).size / 2 ** 20).toFixed(0)} MiB on disk`
      : '';
  console.log(
    `seeded ${result.sessions.toLocaleString('en')} sessions and ${result.messages.toLocaleString('en')} messages ` +
      `in ${result.seconds.toFixed(1)} s (${Math.round(result.messages / result.seconds).toLocaleString('en')} messages/s)${size}`,
  );
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(
      `seed:large failed: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    process.exitCode = 1;
  });
}
