import { setTimeout as sleep } from 'node:timers/promises';
import { DataSource } from 'typeorm';
import { validateEnv } from '../src/config/env.validation';
import { buildDataSourceOptions } from '../src/database/database.options';
import { seededRandom } from '../bench/random';
import { freshDatabaseUrl, onPostgres } from './helpers/database-target';
import { invariantViolations, readerOf } from './helpers/invariants';
import { RunningServer, startServer } from './helpers/server-process';

/**
 * Crash durability of the built server: concurrent session creations, appends and session deletes,
 * SIGKILL at a seeded random moment, restart on the same database, and then:
 * - every write answered 201 (or 204) is there, byte for byte as answered;
 * - every row that is there was sent by us and is complete (unanswered writes may or may not exist);
 * - the invariants hold (no orphans, message_count and last_updated_at right).
 * CRASH_KILL_POINTS (default 4) and CRASH_SEED change the run.
 */
const KILL_POINTS = Number(process.env.CRASH_KILL_POINTS ?? 4);
const SEED = Number(process.env.CRASH_SEED ?? 4_242);
const WORKERS = 16;

type Json = Record<string, unknown>;

interface Sent {
  kind: 'session' | 'message';
  body: Json;
  /** The session a message was sent to. */
  sessionId?: string;
}

/** Everything the load sent, and what the server acknowledged, keyed by a tag unique to each write. */
class Ledger {
  readonly sent = new Map<string, Sent>();
  /** Tag → the 201 body. */
  readonly acknowledged = new Map<string, Json>();
  /** Session ids whose DELETE was answered 204 / was still unanswered at the crash. */
  readonly deleted = new Set<string>();
  readonly deleting = new Set<string>();
  /** Sessions acknowledged and not (being) deleted: where the next appends go. */
  readonly live: string[] = [];
  /** Tags of the writes sent and not yet answered. */
  readonly inFlight = new Set<string>();
  readonly unexpected: string[] = [];
  writes = 0;
}

/**
 * Content whose every character follows from its tag and length, so a torn row cannot pass. Cut
 * by code points: half of a surrogate pair is not text (see the fuzz tests).
 */
function contentFor(tag: string, length: number): string {
  const filler = Array.from(`${tag} Lorem ipsum dolor sit amet, ünïcødé ✓ 🙂 — `);
  const points = Array.from({ length }, (_, i) => filler[i % filler.length]);
  return `${tag}|${points.join('')}`;
}

async function send(
  base: string,
  method: string,
  path: string,
  body?: Json,
): Promise<{ status: number; body: Json } | undefined> {
  try {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: body ? { 'Content-Type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Json) : {} };
  } catch {
    return undefined; // no complete answer: the write is in flight (or never arrived)
  }
}

async function worker(
  base: string,
  ledger: Ledger,
  random: () => number,
  name: string,
  stopped: () => boolean,
): Promise<void> {
  for (let n = 0; !stopped(); n++) {
    const tag = `${name}.${n}`;
    const roll = random();
    if (ledger.live.length === 0 || roll < 0.2) {
      const body: Json = {
        name: tag,
        rag_document_ids: random() < 0.5 ? null : [`doc-${tag}`, 'shared'],
        metadata_tags: random() < 0.5 ? null : { tag, kind: 'crash-test' },
        pinned: random() < 0.3,
        archived: random() < 0.2,
      };
      ledger.sent.set(tag, { kind: 'session', body });
      ledger.inFlight.add(tag);
      const reply = await send(base, 'POST', '/api/v1/sessions', body);
      if (reply) ledger.inFlight.delete(tag);
      if (reply?.status === 201) {
        ledger.acknowledged.set(tag, reply.body);
        ledger.live.push(String(reply.body.id));
        ledger.writes++;
      } else if (reply) ledger.unexpected.push(`POST session ${tag}: ${reply.status}`);
    } else if (roll < 0.23 && ledger.live.length > 4) {
      const [sessionId] = ledger.live.splice(Math.floor(random() * ledger.live.length), 1);
      ledger.deleting.add(sessionId);
      const reply = await send(base, 'DELETE', `/api/v1/sessions/${sessionId}`);
      if (reply?.status === 204) {
        ledger.deleting.delete(sessionId);
        ledger.deleted.add(sessionId);
        ledger.writes++;
      } else if (reply) ledger.unexpected.push(`DELETE ${sessionId}: ${reply.status}`);
    } else {
      const sessionId = ledger.live[Math.floor(random() * ledger.live.length)];
      // Mostly short messages, some long enough to span several database pages.
      const length =
        random() < 0.8 ? 1 + Math.floor(random() * 400) : Math.floor(random() * 40_000);
      const body: Json = {
        content: contentFor(tag, length),
        role: (['user', 'assistant', 'system'] as const)[Math.floor(random() * 3)],
        ...(random() < 0.5
          ? { metadata: { tag, length, nested: { list: [1, 'two', null] } } }
          : {}),
      };
      ledger.sent.set(tag, { kind: 'message', body, sessionId });
      ledger.inFlight.add(tag);
      const reply = await send(base, 'POST', `/api/v1/sessions/${sessionId}/messages`, body);
      if (reply) ledger.inFlight.delete(tag);
      if (reply?.status === 201) {
        ledger.acknowledged.set(tag, reply.body);
        ledger.writes++;
      } else if (reply) {
        // 404 is right for a session deleted meanwhile; anything else is not.
        const gone = ledger.deleted.has(sessionId) || ledger.deleting.has(sessionId);
        if (reply.status !== 404 || !gone)
          ledger.unexpected.push(`POST message ${tag}: ${reply.status}`);
      }
    }
  }
}

/** Every item of a list, following `Link: rel="next"` to the end. */
async function readAll(base: string, path: string): Promise<{ items: Json[]; totals: number[] }> {
  const items: Json[] = [];
  const totals: number[] = [];
  let next: string | undefined = path;
  while (next) {
    const res = await fetch(`${base}${next}`);
    expect(res.status).toBe(200);
    items.push(...((await res.json()) as Json[]));
    totals.push(Number(res.headers.get('x-total-count')));
    next = /<([^>]+)>; rel="next"/.exec(res.headers.get('link') ?? '')?.[1];
  }
  return { items, totals };
}

const tagOf = (content: string) => content.slice(0, content.indexOf('|'));

/** Checks the restarted server against the ledger; returns what it verified. */
async function verify(server: RunningServer, url: string, ledger: Ledger) {
  const { base } = server;
  const stored = await readAll(base, '/api/v1/sessions?archived=any&limit=1000');
  const sessions = new Map(stored.items.map((s) => [String(s.name), s]));
  expect(stored.totals.every((t) => t === stored.items.length)).toBe(true);

  const problems: string[] = [];
  const present = new Set<string>(sessions.keys());
  let messagesSeen = 0;
  for (const [tag, session] of sessions) {
    const sent = ledger.sent.get(tag);
    if (sent?.kind !== 'session') {
      problems.push(`session ${tag} was never sent`);
      continue;
    }
    expect({ tag, ...session }).toMatchObject({ tag, ...sent.body });
    const ack = ledger.acknowledged.get(tag);
    // Appends since the 201 move message_count, last_updated_at and current_message_id; nothing
    // else may change.
    const moved = { message_count: 0, last_updated_at: '', current_message_id: null };
    if (ack) expect({ ...session, ...moved }).toEqual({ ...ack, ...moved });
    if (ledger.deleted.has(String(session.id))) problems.push(`deleted session ${tag} is back`);

    const history = await readAll(
      base,
      `/api/v1/sessions/${String(session.id)}/messages?limit=1000`,
    );
    messagesSeen += history.items.length;
    expect({ tag, count: session.message_count, totals: new Set(history.totals) }).toEqual({
      tag,
      count: history.items.length,
      totals: new Set([history.items.length]),
    });
    let previous = '';
    for (const message of history.items) {
      const messageTag = tagOf(String(message.content));
      const sentMessage = ledger.sent.get(messageTag);
      if (sentMessage?.kind !== 'message' || sentMessage.sessionId !== session.id) {
        problems.push(`message ${messageTag} in session ${tag} was never sent there`);
        continue;
      }
      // Complete, whether acknowledged or not: exactly what was sent.
      expect({ tag: messageTag, ...message }).toMatchObject({
        tag: messageTag,
        role: 'user',
        metadata: null,
        ...sentMessage.body,
      });
      present.add(messageTag);
      const ack = ledger.acknowledged.get(messageTag);
      if (ack) expect(message).toEqual(ack);
      expect(String(message.timestamp) > previous).toBe(true);
      previous = String(message.timestamp);
    }
    const ids = new Set(history.items.map((m) => m.id));
    for (const [messageTag, sentMessage] of ledger.sent) {
      const ack = ledger.acknowledged.get(messageTag);
      if (sentMessage.sessionId === session.id && ack && !ids.has(ack.id))
        problems.push(`acknowledged message ${messageTag} (id ${String(ack.id)}) is missing`);
    }
  }

  let verified = 0;
  for (const [tag, ack] of ledger.acknowledged) {
    const sent = ledger.sent.get(tag)!;
    const sessionId = sent.kind === 'session' ? String(ack.id) : sent.sessionId!;
    if (ledger.deleted.has(sessionId) || ledger.deleting.has(sessionId)) continue;
    verified++;
    if (sent.kind === 'session' && !sessions.has(tag))
      problems.push(`acknowledged session ${tag} is missing`);
  }
  for (const id of ledger.deleted) {
    const res = await fetch(`${base}/api/v1/sessions/${id}`);
    if (res.status !== 404) problems.push(`deleted session ${id} answers ${res.status}`);
  }
  expect(problems).toEqual([]);

  const dataSource = await new DataSource(
    buildDataSourceOptions(validateEnv({ DATABASE_URL: url })),
  ).initialize();
  try {
    expect(await invariantViolations(readerOf(dataSource))).toEqual([]);
  } finally {
    await dataSource.destroy();
  }
  return { verified, present, sessions: sessions.size, messages: messagesSeen };
}

describe(`Crash durability (e2e, built server, SIGKILL${onPostgres ? ', PostgreSQL' : ', SQLite file'})`, () => {
  it(`keeps every acknowledged write and no torn one across ${KILL_POINTS} kill points`, async () => {
    const url = await freshDatabaseUrl('crash');
    const random = seededRandom(SEED);
    const ledger = new Ledger();
    const summary: string[] = [];
    let kills = 0;
    let finalVerified = 0;
    let server = await startServer({ DATABASE_URL: url });
    for (let point = 1; point <= KILL_POINTS; point++) {
      let stopped = false;
      const workers = Array.from({ length: WORKERS }, (_, w) =>
        worker(
          server.base,
          ledger,
          seededRandom(SEED * 1000 + point * 100 + w),
          `k${point}w${w}`,
          () => stopped,
        ),
      );
      // The first kill point comes almost at once; the others anywhere in the first 1.5 s.
      const delay = point === 1 ? 30 : 100 + Math.floor(random() * 1400);
      await sleep(delay);
      const writesBefore = ledger.writes;
      stopped = true;
      const exit = await server.kill();
      expect(exit.signal).toBe('SIGKILL');
      await Promise.all(workers);
      const inFlight = [...ledger.inFlight];
      ledger.inFlight.clear();
      expect(ledger.unexpected).toEqual([]);

      server = await startServer({ DATABASE_URL: url });
      const result = await verify(server, url, ledger);
      summary.push(
        `kill ${point} at ${delay} ms: ${ledger.writes} writes acknowledged so far (${writesBefore} before the kill signal), ` +
          `${result.verified} verified present and intact; ${inFlight.length} creates/appends and ${ledger.deleting.size} deletes unanswered at the kill, ` +
          `${inFlight.filter((tag) => result.present.has(tag)).length} of those creates/appends committed (complete); ` +
          `${result.sessions} sessions / ${result.messages} messages stored`,
      );
      kills++;
      finalVerified = result.verified;
      // Writes in flight at the crash are settled now; later rounds only track what is known.
      for (const id of ledger.deleting) {
        const res = await fetch(`${server.base}/api/v1/sessions/${id}`);
        if (res.status === 404) ledger.deleted.add(id);
        else ledger.live.push(id);
      }
      ledger.deleting.clear();
    }
    expect((await server.stop()).code).toBe(0);
    process.stderr.write(
      `Crash durability (${onPostgres ? 'PostgreSQL' : 'SQLite'}): ${kills} kill points, ${ledger.writes} writes acknowledged; ` +
        `after the last restart ${finalVerified} acknowledged creates/appends verified present and intact ` +
        `and ${ledger.deleted.size} deleted sessions verified gone\n  ${summary.join('\n  ')}\n`,
    );
    expect(ledger.writes).toBeGreaterThan(KILL_POINTS * 20);
  }, 120_000);
});
