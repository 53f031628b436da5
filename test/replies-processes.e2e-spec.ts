import { setTimeout as sleep } from 'node:timers/promises';
import { DataSource } from 'typeorm';
import { validateEnv } from '../src/config/env.validation';
import { buildDataSourceOptions } from '../src/database/database.options';
import {
  cancelOf,
  eventually,
  type MessageBody,
  messageAt,
  repliesOf,
  SESSIONS,
  streamOf,
} from './helpers/api';
import { callJson } from './helpers/http';
import { freshDatabaseUrl, onPostgres } from './helpers/database-target';
import { type RunningServer, startServer } from './helpers/server-process';
import { SseClient } from './helpers/sse';
import { type FakeLlm, startFakeLlm } from './support/fake-llm';

/**
 * Replies served by built server processes (dist/main.js): a reply followed and cancelled from
 * another process (PostgreSQL), a process killed mid-generation and started again, a process
 * stopped (SIGTERM) mid-generation. The fake model server runs in this process, so its gates hold a
 * reply in progress for as long as a test needs.
 */
/** More than SAVE_EVERY_MS (500 ms): text received before this wait is stored. */
const STORED_AFTER_MS = 700;

/** A new session holding one question, through `base`. */
async function sessionWithQuestion(base: string): Promise<string> {
  const session = await callJson(base, 'POST', SESSIONS, {});
  expect(session.status).toBe(201);
  const id = String(session.body.id);
  expect(
    (await callJson(base, 'POST', `${SESSIONS}/${id}/messages`, { content: 'Hi' })).status,
  ).toBe(201);
  return id;
}

/** A connection of the test's own to the database, to read what is stored and to age a reply. */
async function connect(url: string): Promise<DataSource> {
  return new DataSource(buildDataSourceOptions(validateEnv({ DATABASE_URL: url }))).initialize();
}

interface StoredReply {
  status: string;
  content: string;
  generation: { error: string | null } | null;
  progress_at: number | null;
}

async function storedReply(db: DataSource, id: number): Promise<StoredReply> {
  const [row] = await db.query<Array<Record<string, unknown>>>(
    `SELECT "status", "content", "generation", "progress_at" FROM "chat_messages" WHERE "id" = ${Number(id)}`,
  );
  const generation = row.generation;
  return {
    status: String(row.status),
    content: String(row.content),
    generation: (typeof generation === 'string'
      ? JSON.parse(generation)
      : generation) as StoredReply['generation'],
    progress_at: row.progress_at === null ? null : Number(row.progress_at),
  };
}

describe('Replies across server processes (e2e, built server)', () => {
  let fake: FakeLlm;
  const env = (url: string) => ({
    DATABASE_URL: url,
    LLM_BASE_URL: fake.baseUrl,
    LLM_TIMEOUT_MS: '60000',
  });

  beforeAll(async () => {
    fake = await startFakeLlm();
  });
  afterAll(() => fake.close());
  beforeEach(() => {
    fake.setDefault({ stream: ['default'] });
  });

  (onPostgres ? describe : describe.skip)('two processes on one PostgreSQL database', () => {
    let a: RunningServer;
    let b: RunningServer;
    let db: DataSource;
    let url: string;

    beforeAll(async () => {
      url = await freshDatabaseUrl('replies_two');
      [a, b] = await Promise.all([startServer(env(url)), startServer(env(url))]);
      db = await connect(url);
    }, 60_000);
    afterAll(async () => {
      await db?.destroy();
      await Promise.all([a, b].filter(Boolean).map((s) => s.stop()));
    });

    it('resumes on B a reply generated on A, with live deltas within a second, then cancels another through B', async () => {
      const sessionId = await sessionWithQuestion(a.base);
      const gates = [fake.gate(), fake.gate()];
      fake.next({ stream: ['first ', gates[0].wait, 'second ', gates[1].wait, 'third'] });
      const onA = new SseClient(`${a.base}${repliesOf(sessionId)}`, { method: 'POST', body: {} });
      await onA.until((c) => c.content === 'first ');
      const id = (onA.events[0].data as MessageBody).id;
      const lastId = onA.named('delta').at(-1)!.id!;
      expect(lastId).toBe('6');

      // B follows it from where A's client stopped: nothing before the offset comes again.
      const onB = new SseClient(`${b.base}${streamOf(sessionId, id)}`, {
        headers: { 'Last-Event-ID': lastId },
      });
      await onB.until((c) => c.status === 200);
      await sleep(STORED_AFTER_MS);
      expect(onB.named('delta')).toEqual([]);

      // Each delta released upstream reaches A's client at once and B's within a second.
      const latencies: number[] = [];
      for (const [gate, after] of [
        [gates[0], 'first second '],
        [gates[1], 'first second third'],
      ] as const) {
        const released = Date.now();
        gate.open();
        const [atA, atB] = await Promise.all([
          onA.until((c) => c.content === after).then(() => Date.now()),
          onB.until((c) => c.content === after.slice(6)).then(() => Date.now()),
        ]);
        latencies.push(atB - released);
        // What B adds to A's own relay.
        console.log(
          `cross-process delta: released upstream → A's client ${atA - released} ms, → B's client ${atB - released} ms`,
        );
      }
      for (const ms of latencies) expect(ms).toBeLessThan(1500);

      await Promise.all([onA.ended, onB.ended]);
      const doneOnB = onB.named('done')[0].data as MessageBody;
      expect(doneOnB).toMatchObject({ id, status: 'complete', content: 'first second third' });
      expect(doneOnB).toEqual(onA.named('done')[0].data);
      // Delta ids are lengths of the whole text, so a further resume on either process works.
      expect(onB.named('delta').map((e) => e.id)).toEqual(['13', '18']);
      expect(onB.events.at(-1)?.event).toBe('done');

      // Another reply on A, cancelled through B.
      const gate = fake.gate();
      fake.next({ stream: ['keep ', 'this ', gate.wait, 'never'] });
      const second = new SseClient(`${a.base}${repliesOf(sessionId)}`, {
        method: 'POST',
        body: {},
      });
      await second.until((c) => c.content === 'keep this ');
      const secondId = (second.events[0].data as MessageBody).id;
      const upstream = fake.requests.at(-1)!;
      // At once, before A stores the text (it does every 500 ms): A, asked by B, stores all it has,
      // which its client has already shown.
      const asked = Date.now();
      const cancelled = await callJson(b.base, 'POST', cancelOf(sessionId, secondId));
      expect(cancelled.status).toBe(200);
      expect(cancelled.body).toMatchObject({
        id: secondId,
        status: 'cancelled',
        content: 'keep this ',
      });
      // A, asked through a notice, stops the upstream request.
      await eventually(() => upstream.aborted, 3000);
      const abortedAfter = Date.now() - asked;
      console.log(`cancel on B → A's upstream request aborted after ${abortedAfter} ms`);
      expect(abortedAfter).toBeLessThan(1500);
      await second.ended;
      expect(second.named('done')[0].data).toEqual(cancelled.body);
      gate.open();
      await sleep(STORED_AFTER_MS);
      // Nothing was written for it afterwards, on either side.
      for (const server of [a, b]) {
        expect((await callJson(server.base, 'GET', messageAt(sessionId, secondId))).body).toEqual(
          cancelled.body,
        );
        expect((await callJson(server.base, 'POST', cancelOf(sessionId, secondId))).status).toBe(
          409,
        );
      }
    }, 60_000);

    it("keeps B's stream of a reply A holds alive with a comment at least every 15 s", async () => {
      const sessionId = await sessionWithQuestion(a.base);
      const gate = fake.gate();
      fake.next({ stream: ['held ', gate.wait, 'done'] });
      const onA = new SseClient(`${a.base}${repliesOf(sessionId)}`, { method: 'POST', body: {} });
      await onA.until((c) => c.content === 'held ');
      const id = (onA.events[0].data as MessageBody).id;
      const onB = new SseClient(`${b.base}${streamOf(sessionId, id)}`);
      await onB.until((c) => c.content === 'held ');
      const since = Date.now();
      // B reads the stored reply every second; the keep-alive counts from the last thing sent.
      await onB.until((c) => c.comments.includes('keep-alive'), 17_000);
      expect(Date.now() - since).toBeLessThan(16_500);
      gate.open();
      await Promise.all([onA.ended, onB.ended]);
      expect(onB.content).toBe('held done');
    }, 40_000);

    it('never marks failed a reply whose owner process is alive: its progress time stays fresh while it waits for the model', async () => {
      const sessionId = await sessionWithQuestion(b.base);
      const gate = fake.gate();
      fake.next({ stream: ['alive ', gate.wait, 'and well'] });
      const sse = new SseClient(`${a.base}${repliesOf(sessionId)}`, { method: 'POST', body: {} });
      await sse.until((c) => c.content === 'alive ');
      const id = (sse.events[0].data as MessageBody).id;
      await sleep(STORED_AFTER_MS);

      // 3 s with no new text while B runs (and looks for stalled replies): A's sign of life
      // (progress_at, refreshed every 500 ms) never lags; the reply stays in progress.
      const seen = new Set<number>();
      const until = Date.now() + 3000;
      while (Date.now() < until) {
        const stored = await storedReply(db, id);
        expect(stored).toMatchObject({ status: 'in_progress', content: 'alive ' });
        expect(Date.now() - stored.progress_at!).toBeLessThan(1500);
        seen.add(stored.progress_at!);
        await sleep(200);
      }
      expect(seen.size).toBeGreaterThanOrEqual(4);
      // B reads it in progress too, and its own stream follows it to the end.
      expect((await callJson(b.base, 'GET', messageAt(sessionId, id))).body).toMatchObject({
        status: 'in_progress',
      });
      const onB = new SseClient(`${b.base}${streamOf(sessionId, id)}`);
      await onB.until((c) => c.content === 'alive ');
      gate.open();
      await Promise.all([sse.ended, onB.ended]);
      expect(sse.named('done')[0].data).toMatchObject({
        status: 'complete',
        content: 'alive and well',
      });
      expect(onB.named('done')[0].data).toEqual(sse.named('done')[0].data);
      expect(await storedReply(db, id)).toMatchObject({ status: 'complete', progress_at: null });
    }, 30_000);

    it('stops promptly on SIGTERM while following a reply generated by another process', async () => {
      const follower = await startServer(env(url));
      const sessionId = await sessionWithQuestion(a.base);
      const gate = fake.gate();
      fake.next({ stream: ['long ', gate.wait, 'reply'] });
      const sse = new SseClient(`${a.base}${repliesOf(sessionId)}`, { method: 'POST', body: {} });
      await sse.until((c) => c.content === 'long ');
      const id = (sse.events[0].data as MessageBody).id;
      const onFollower = new SseClient(`${follower.base}${streamOf(sessionId, id)}`);
      await onFollower.until((c) => c.content === 'long ');
      try {
        const stopping = Date.now();
        const exit = await Promise.race([
          follower.stop(),
          sleep(10_000).then(() => 'still running after 10 s'),
        ]);
        expect(exit).toEqual({ code: 0, signal: null });
        expect(Date.now() - stopping).toBeLessThan(5000);
        await onFollower.ended;
        // The reply goes on where it is generated; its stream resumes on another process.
        const resumed = new SseClient(`${b.base}${streamOf(sessionId, id)}`, {
          headers: { 'Last-Event-ID': onFollower.named('delta').at(-1)!.id! },
        });
        gate.open();
        await Promise.all([sse.ended, resumed.ended]);
        expect(resumed.content).toBe('reply');
        expect(resumed.named('done')[0].data).toMatchObject({ status: 'complete' });
      } finally {
        gate.open();
      }
    }, 40_000);
  });

  it('marks failed (interrupted) a reply whose process was killed, keeping the text stored before', async () => {
    const url = await freshDatabaseUrl('replies_kill');
    const first = await startServer(env(url));
    const sessionId = await sessionWithQuestion(first.base);
    const gate = fake.gate();
    fake.next({ stream: ['stored ', 'before ', gate.wait, 'never'] });
    const sse = new SseClient(`${first.base}${repliesOf(sessionId)}`, { method: 'POST', body: {} });
    await sse.until((c) => c.content === 'stored before ');
    const id = (sse.events[0].data as MessageBody).id;
    const upstream = fake.requests.at(-1)!;
    await sleep(STORED_AFTER_MS);

    expect(await first.kill()).toEqual({ code: null, signal: 'SIGKILL' });
    await sse.ended;
    await eventually(() => upstream.aborted);
    expect(sse.named('done')).toEqual([]);
    const db = await connect(url);
    try {
      // The kill left it in progress, with the text stored before it.
      expect(await storedReply(db, id)).toMatchObject({
        status: 'in_progress',
        content: 'stored before ',
      });
      if (onPostgres) {
        // On PostgreSQL a reply is marked failed once it has made no progress for 60 s
        // (STALLED_AFTER_MS), by whichever process looks first. Rather than wait a minute, this
        // ages its sign of life by 61 s, as if the minute had passed since the kill.
        await db.query(
          `UPDATE "chat_messages" SET "progress_at" = "progress_at" - 61000 WHERE "id" = ${id}`,
        );
      }
      const again = await startServer(env(url));
      // Marked at start (SQLite: every reply in progress; PostgreSQL: the stalled ones), so the
      // first read already sees it.
      const read = await callJson(again.base, 'GET', messageAt(sessionId, id));
      expect(read.status).toBe(200);
      expect(read.body).toMatchObject({
        id,
        status: 'failed',
        content: 'stored before ',
        generation: { error: expect.stringMatching(/interrupted/) },
      });
      expect((read.body.generation as { error: string }).error).not.toMatch(/\n/);
      expect(await storedReply(db, id)).toMatchObject({ status: 'failed', progress_at: null });
      // It is a finished message now: a stream ends at once, and a new reply can be asked for.
      const resumed = new SseClient(`${again.base}${streamOf(sessionId, id)}?offset=7`);
      await resumed.ended;
      expect(resumed.events.map((e) => e.event)).toEqual(['delta', 'done']);
      expect(resumed.content).toBe('before ');
      expect((await callJson(again.base, 'POST', cancelOf(sessionId, id))).status).toBe(409);
      const retry = await callJson(again.base, 'POST', repliesOf(sessionId), {
        parent_id: read.body.parent_id,
      });
      expect(retry.body).toMatchObject({ status: 'complete', content: 'default' });
      expect(await again.stop()).toEqual({ code: 0, signal: null });
    } finally {
      gate.open();
      await db.destroy();
    }
  }, 60_000);

  it('stops promptly on SIGTERM mid-generation, storing the reply failed (interrupted) with its text', async () => {
    const url = await freshDatabaseUrl('replies_sigterm');
    const server = await startServer(env(url));
    const sessionId = await sessionWithQuestion(server.base);
    const gate = fake.gate();
    fake.next({ stream: ['partial ', 'text ', gate.wait, 'never'] });
    const sse = new SseClient(`${server.base}${repliesOf(sessionId)}`, {
      method: 'POST',
      body: {},
    });
    await sse.until((c) => c.content === 'partial text ');
    const id = (sse.events[0].data as MessageBody).id;
    const upstream = fake.requests.at(-1)!;
    // And a JSON reply in another session, waiting for its end.
    const otherSession = await sessionWithQuestion(server.base);
    fake.next({ stream: ['waiting ', gate.wait, 'never'] });
    const waiting = callJson(server.base, 'POST', repliesOf(otherSession), {});
    await fake.receivedRequests(fake.requests.length + 1);
    // Not waiting for a store: the end is stored whatever the last progress save held.
    const stopping = Date.now();
    const exit = await server.stop();
    const took = Date.now() - stopping;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(took).toBeLessThan(5000);
    expect(upstream.aborted).toBe(true);
    // The JSON client was answered before the process went: its reply failed (502), stored.
    const answered = await waiting;
    expect(answered).toEqual({
      status: 502,
      body: expect.objectContaining({
        status: 502,
        message_id: expect.any(Number),
        detail: expect.stringMatching(/interrupted/),
      }),
    });
    await sse.ended;
    // The stream was told how its reply ended before the process went.
    expect(sse.named('done').map((e) => e.data)).toEqual([
      expect.objectContaining({ id, status: 'failed', content: 'partial text ' }),
    ]);
    gate.open();
    // Read without starting a server (a start on SQLite would mark it failed anyway).
    const db = await connect(url);
    try {
      const stored = await storedReply(db, id);
      expect(stored).toMatchObject({
        status: 'failed',
        content: 'partial text ',
        progress_at: null,
        generation: { error: expect.stringMatching(/interrupted/) },
      });
      expect(await storedReply(db, answered.body.message_id as number)).toMatchObject({
        status: 'failed',
        progress_at: null,
        generation: { error: expect.stringMatching(/interrupted/) },
      });
    } finally {
      await db.destroy();
    }
  }, 60_000);
});
