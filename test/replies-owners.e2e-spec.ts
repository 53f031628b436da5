import fc from 'fast-check';
import request from 'supertest';
import { ApiKeysService } from '../src/auth/api-keys.service';
import { isStorableText } from '../src/common/fields/json-bounds';
import {
  bearer,
  cancelOf,
  eventually,
  type MessageBody,
  messageAt,
  messagesOf,
  notFound,
  repliesOf,
  SESSIONS,
  sessionNotFound,
  streamOf,
} from './helpers/api';
import { jsonObject, jsonValue, text } from './helpers/arbitraries';
import { freePort } from './helpers/server-process';
import { baseUrlOf, SseClient } from './helpers/sse';
import { createTestApp, resetDatabase, type TestApp } from './helpers/test-app';
import { type FakeLlm, startFakeLlm } from './support/fake-llm';

/**
 * Replies and owners (AUTH_MODE=api-key): another owner can neither reply in, follow, nor cancel
 * the first owner's sessions and replies, and trying changes nothing. Then a fast-check property
 * over `POST …/replies` bodies, and a model server that refuses connections.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 100);
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_202);

type Row = Record<string, unknown>;

/** Every row of both tables, in id order: what a refused request must leave as it was. */
async function snapshot(t: TestApp): Promise<{ sessions: Row[]; messages: Row[] }> {
  return t.db.read(async (m) => ({
    sessions: await m.query<Row[]>('SELECT * FROM "sessions" ORDER BY "id"'),
    messages: await m.query<Row[]>('SELECT * FROM "chat_messages" ORDER BY "id"'),
  }));
}

describe('Replies and owners (e2e, AUTH_MODE=api-key)', () => {
  let fake: FakeLlm;
  let t: TestApp;
  let base: string;
  let alice: Record<string, string>;
  let bob: Record<string, string>;

  beforeAll(async () => {
    fake = await startFakeLlm();
    t = await createTestApp({
      AUTH_MODE: 'api-key',
      RATE_LIMIT_PER_MINUTE: '0',
      LLM_BASE_URL: fake.baseUrl,
      LLM_TIMEOUT_MS: '10000',
    });
    await t.app.listen(0, '127.0.0.1');
    base = baseUrlOf(t.http);
  });
  afterAll(async () => {
    await t.close();
    await fake.close();
  });
  beforeEach(async () => {
    await resetDatabase(t.db);
    const keys = t.app.get(ApiKeysService);
    alice = bearer((await keys.create('alice')).key);
    bob = bearer((await keys.create('bob')).key);
    fake.requests.length = 0;
    fake.setDefault({ stream: ['Hello', ' there'] });
  });

  const as = (who: Record<string, string>) => ({
    post: (path: string, body: unknown = {}) =>
      request(t.http)
        .post(path)
        .set(who)
        .send(body as object),
    get: (path: string) => request(t.http).get(path).set(who),
  });

  async function sessionWithMessage(
    who: Record<string, string>,
    content: string,
  ): Promise<{ sessionId: string; messageId: number }> {
    const session = await as(who).post(SESSIONS, {}).expect(201);
    const sessionId = (session.body as { id: string }).id;
    const posted = await as(who).post(messagesOf(sessionId), { content }).expect(201);
    return { sessionId, messageId: (posted.body as MessageBody).id };
  }

  it("refuses another owner's reply, stream and cancel with 404, writing nothing and asking no model", async () => {
    const a = await sessionWithMessage(alice, 'Alice asks');
    const b = await sessionWithMessage(bob, 'Bob asks');
    const before = await snapshot(t);

    // Replying in Alice's session, by default or to her message.
    for (const body of [{}, { parent_id: a.messageId }, { model: 'm', temperature: 1 }]) {
      const res = await as(bob).post(repliesOf(a.sessionId), body);
      expect(res.status).toBe(404);
      expect(res.body).toEqual(sessionNotFound(a.sessionId, repliesOf(a.sessionId)));
    }
    // Replying in his own session to Alice's message: not a message of that session.
    const cross = await as(bob).post(repliesOf(b.sessionId), { parent_id: a.messageId });
    expect(cross.status).toBe(400);
    expect(cross.body.errors).toEqual([{ field: 'parent_id', message: expect.any(String) }]);
    expect(await snapshot(t)).toEqual(before);
    expect(fake.requests).toHaveLength(0);

    // Alice's reply, held in progress by the fake server.
    const gate = fake.gate();
    fake.next({ stream: ['Alice ', 'gets ', gate.wait, 'this'] });
    const sse = new SseClient(`${base}${repliesOf(a.sessionId)}`, {
      method: 'POST',
      body: {},
      headers: alice,
    });
    await sse.until((c) => c.content === 'Alice gets ');
    const id = (sse.events[0].data as MessageBody).id;
    // Let its text be stored (every 500 ms), so a leak would have something to show.
    await new Promise((resolve) => setTimeout(resolve, 700));
    const during = await snapshot(t);

    for (const sessionId of [a.sessionId, b.sessionId]) {
      // Following it: through Alice's session id or his own, from the start or resuming.
      for (const path of [streamOf(sessionId, id), `${streamOf(sessionId, id)}?offset=0`]) {
        const res = await as(bob).get(path).set('Accept', 'text/event-stream');
        expect(res.status).toBe(404);
        expect(res.body).toEqual(notFound(streamOf(sessionId, id)));
        expect(res.text).not.toContain('Alice gets');
      }
      const resumed = await as(bob)
        .get(streamOf(sessionId, id))
        .set({ Accept: 'text/event-stream', 'Last-Event-ID': '3' });
      expect(resumed.status).toBe(404);
      // Cancelling it.
      const cancel = await as(bob).post(cancelOf(sessionId, id));
      expect(cancel.status).toBe(404);
      expect(cancel.body).toEqual(notFound(cancelOf(sessionId, id)));
      // A reply to it (in her session) or under it (from his).
      expect((await as(bob).post(repliesOf(sessionId), { parent_id: id })).status).toBe(
        sessionId === a.sessionId ? 404 : 400,
      );
    }
    // Nothing changed, the upstream request still runs, and no other was made.
    expect(await snapshot(t)).toEqual(during);
    expect(fake.requests).toHaveLength(1);
    expect(fake.openStreams).toBe(1);
    const stored = await as(alice).get(messageAt(a.sessionId, id)).expect(200);
    expect(stored.body).toMatchObject({ status: 'in_progress', content: 'Alice gets ' });

    // Alice's reply ends as if Bob had never tried.
    gate.open();
    await sse.ended;
    const done = sse.named('done')[0].data as MessageBody;
    expect(done).toMatchObject({ id, status: 'complete', content: 'Alice gets this' });
    expect(sse.content).toBe('Alice gets this');
    expect(fake.requests[0].aborted).toBe(false);
    // Alice can follow and cancel-check her own; Bob still cannot read the finished reply.
    const own = new SseClient(`${base}${streamOf(a.sessionId, id)}?offset=6`, { headers: alice });
    await own.ended;
    expect(own.content).toBe('gets this');
    await as(alice).post(cancelOf(a.sessionId, id)).expect(409);
    await as(bob).get(streamOf(a.sessionId, id)).expect(404);
    await as(bob).post(cancelOf(a.sessionId, id)).expect(404);
    // Bob's own session was never touched.
    const bobs = await as(bob).get(`${SESSIONS}/${b.sessionId}`).expect(200);
    expect(bobs.body).toMatchObject({ message_count: 1, current_message_id: b.messageId });
  });

  it('answers 401 without a key on every reply endpoint, before asking the model', async () => {
    const a = await sessionWithMessage(alice, 'Hi');
    for (const res of [
      await request(t.http).post(repliesOf(a.sessionId)).send({}),
      await request(t.http).get(streamOf(a.sessionId, a.messageId)),
      await request(t.http).post(cancelOf(a.sessionId, a.messageId)),
    ]) {
      expect(res.status).toBe(401);
    }
    expect(fake.requests).toHaveLength(0);
  });

  /**
   * Any JSON body → 201 or 400 as the contract says (never a 500); a 400 changes nothing and asks
   * no model; an accepted body sends the model exactly its fields (`null` is no value for `model`,
   * `temperature` or `max_tokens`: 400). The session holds a system message and a question; the
   * replies accepted along the way become parents in turn.
   */
  describe('POST …/replies bodies (fast-check)', () => {
    const FIELDS = ['parent_id', 'model', 'temperature', 'max_tokens'] as const;
    /** A parent: one of the session's messages (by index), or any other value. */
    type Parent = { known: number } | { other: unknown };

    const validModel = fc.oneof(
      fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 }),
      fc.constantFrom('m', 'llama3.2', ' ', 'x'.repeat(200), 'ü'.repeat(200), '🙂'.repeat(200)),
    );
    const validFields = {
      parent_id: fc.nat().map((known): Parent => ({ known })),
      model: validModel,
      temperature: fc.oneof(
        fc.double({ min: 0, max: 2, noNaN: true }),
        fc.constantFrom(0, 2, 1, 0.7),
      ),
      max_tokens: fc.oneof(fc.integer({ min: 1, max: 32768 }), fc.constantFrom(1, 32768)),
    };
    const oddFields = {
      parent_id: fc.oneof(
        jsonValue,
        fc.constantFrom(0, -1, 1.5, 999_999_999, 1e16, '1', null, true),
      ),
      model: fc.oneof(text, jsonValue, fc.constantFrom('', 'x'.repeat(201), 'a\u0000b', '\ud800')),
      temperature: fc.oneof(jsonValue, fc.constantFrom(-0.001, 2.0001, 3, -1, '1', null, 1e308)),
      max_tokens: fc.oneof(jsonValue, fc.constantFrom(0, 32769, 1.5, -1, '10', null, 1e21)),
    };
    /** Each field absent, valid, or odd; sometimes an unknown field more. */
    const body = fc
      .record(
        {
          parent_id: fc.oneof(
            validFields.parent_id,
            oddFields.parent_id.map((other): Parent => ({ other })),
          ),
          model: fc.oneof({ weight: 3, arbitrary: validFields.model }, oddFields.model),
          temperature: fc.oneof(
            { weight: 3, arbitrary: validFields.temperature },
            oddFields.temperature,
          ),
          max_tokens: fc.oneof(
            { weight: 3, arbitrary: validFields.max_tokens },
            oddFields.max_tokens,
          ),
          extra: fc.tuple(text, jsonValue),
        },
        { requiredKeys: [] },
      )
      .map((spec) => ({ kind: 'fields' as const, spec }));
    /** Every field absent or valid. */
    const validBody = fc
      .record(validFields, { requiredKeys: [] })
      .map((spec) => ({ kind: 'fields' as const, spec: { ...spec, extra: undefined } }));
    const anyJson = fc
      .oneof(jsonValue, jsonObject, fc.constantFrom([], '', 0, null, true, [{}]))
      .map((value) => ({ kind: 'json' as const, value }));

    /** validator.js's isLength, as class-validator's @Length counts. */
    const lengthOf = (s: string) =>
      s.length -
      (s.match(/(\uFE0F|\uFE0E)/g) ?? []).length -
      (s.match(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g) ?? []).length;

    /** Whether the contract accepts `value` as a body, given the session's message ids. */
    function acceptable(value: unknown, ids: number[]): boolean {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
      const b = value as Record<string, unknown>;
      if (Object.keys(b).some((key) => !(FIELDS as readonly string[]).includes(key))) return false;
      if ('parent_id' in b && !ids.includes(b.parent_id as number)) return false;
      if ('model' in b) {
        const m = b.model;
        if (typeof m !== 'string' || !isStorableText(m)) return false;
        if (lengthOf(m) < 1 || lengthOf(m) > 200) return false;
      }
      if ('temperature' in b) {
        const x = b.temperature;
        if (typeof x !== 'number' || !(x >= 0 && x <= 2)) return false;
      }
      if ('max_tokens' in b) {
        const x = b.max_tokens;
        if (typeof x !== 'number' || !Number.isInteger(x) || x < 1 || x > 32768) return false;
      }
      return true;
    }

    it('answers 201 exactly to valid bodies, sending the model exactly their fields; a 400 changes nothing', async () => {
      const sessionId = ((await as(alice).post(SESSIONS, {}).expect(201)).body as { id: string })
        .id;
      // A system message, then a question under it: both can be answered.
      const system = (
        await as(alice)
          .post(messagesOf(sessionId), { role: 'system', content: 'Be brief' })
          .expect(201)
      ).body as MessageBody;
      const q = (await as(alice).post(messagesOf(sessionId), { content: 'Question' }).expect(201))
        .body as MessageBody;
      const ids = [system.id, q.id];
      const contents = new Map<number, string>([
        [system.id, system.content],
        [q.id, q.content],
      ]);
      fake.setDefault({ stream: ['ok'] });
      const statuses = new Map<number, number>();

      await fc.assert(
        fc.asyncProperty(
          fc.oneof({ weight: 2, arbitrary: validBody }, { weight: 2, arbitrary: body }, anyJson),
          async (choice) => {
            let value: unknown;
            if (choice.kind === 'json') value = choice.value;
            else {
              const spec = choice.spec;
              const b: Record<string, unknown> = {};
              if (spec.parent_id !== undefined) {
                b.parent_id =
                  'known' in spec.parent_id
                    ? ids[spec.parent_id.known % ids.length]
                    : spec.parent_id.other;
              }
              for (const key of ['model', 'temperature', 'max_tokens'] as const) {
                if (spec[key] !== undefined) b[key] = spec[key];
              }
              if (spec.extra) b[spec.extra[0]] = spec.extra[1];
              value = b;
            }
            const valid = acceptable(value, ids);
            const before = await snapshot(t);
            const current = (await as(alice).get(`${SESSIONS}/${sessionId}`).expect(200)).body as {
              current_message_id: number;
            };
            const asked = fake.requests.length;
            const res = await request(t.http)
              .post(repliesOf(sessionId))
              .set(alice)
              .set('Content-Type', 'application/json')
              .send(JSON.stringify(value));
            statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
            expect([201, 400, 404, 409]).toContain(res.status);
            expect(res.status).toBe(valid ? 201 : 400);
            if (res.status !== 201) {
              expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
              expect(await snapshot(t)).toEqual(before);
              expect(fake.requests.length).toBe(asked);
              return;
            }
            const b = value as Record<string, unknown>;
            const reply = res.body as MessageBody;
            const parent = 'parent_id' in b ? (b.parent_id as number) : current.current_message_id;
            expect(reply).toMatchObject({ parent_id: parent, status: 'complete', content: 'ok' });
            expect(fake.requests.length).toBe(asked + 1);
            const sent = fake.requests[asked].body as Record<string, unknown>;
            const expectedKeys = ['messages', 'model', 'stream', 'stream_options'];
            if ('temperature' in b) expectedKeys.push('temperature');
            if ('max_tokens' in b) expectedKeys.push('max_tokens');
            expect(Object.keys(sent).sort()).toEqual(expectedKeys.sort());
            expect(sent.model).toBe('model' in b ? b.model : 'default');
            expect(sent.stream).toBe(true);
            // JSON has no -0: compare as numbers.
            if ('temperature' in b) expect(sent.temperature === b.temperature).toBe(true);
            if ('max_tokens' in b) expect(sent.max_tokens).toBe(b.max_tokens);
            const messages = sent.messages as { role: string; content: string }[];
            expect(messages.at(-1)?.content).toBe(contents.get(parent));
            expect(messages[0]).toEqual({ role: 'system', content: 'Be brief' });
            ids.push(reply.id);
            contents.set(reply.id, reply.content);
          },
        ),
        { numRuns: RUNS, seed: SEED, endOnFailure: true },
      );
      // The property must have seen both sides.
      expect(statuses.get(201) ?? 0).toBeGreaterThan(RUNS / 10);
      expect(statuses.get(400) ?? 0).toBeGreaterThan(RUNS / 10);
    }, 120_000);
  });
});

describe('Replies from a model server that refuses connections (e2e)', () => {
  let t: TestApp;
  let base: string;

  beforeAll(async () => {
    // A port that was free a moment ago: nothing listens there.
    const closed = await freePort();
    t = await createTestApp({
      AUTH_MODE: 'none',
      RATE_LIMIT_PER_MINUTE: '0',
      LLM_BASE_URL: `http://127.0.0.1:${closed}/v1`,
    });
    await t.app.listen(0, '127.0.0.1');
    base = baseUrlOf(t.http);
  });
  afterAll(() => t.close());

  it('answers 502 with a stored failed reply (JSON), and ends a stream failed; never a 500', async () => {
    const session = (await request(t.http).post(SESSIONS).send({}).expect(201)).body as {
      id: string;
    };
    await request(t.http).post(messagesOf(session.id)).send({ content: 'Hi' }).expect(201);
    const res = await request(t.http).post(repliesOf(session.id)).send({});
    expect(res.status).toBe(502);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({ status: 502, message_id: expect.any(Number) });
    const failed = (
      await request(t.http).get(messageAt(session.id, res.body.message_id)).expect(200)
    ).body as MessageBody & { generation: { error: string } };
    expect(failed).toMatchObject({ status: 'failed', content: '', role: 'assistant' });
    expect(failed.generation.error).toMatch(/\S/);
    expect(failed.generation.error).not.toMatch(/\n|at .*\.js/);
    expect(res.body.detail).toContain(failed.generation.error);

    // The failed reply is a finished message: the next reply may answer the question again.
    const sse = new SseClient(`${base}${repliesOf(session.id)}`, {
      method: 'POST',
      body: { parent_id: failed.parent_id },
    });
    await sse.ended;
    expect(sse.status).toBe(200);
    expect(sse.events.map((e) => e.event)).toEqual(['message', 'done']);
    expect(sse.named('done')[0].data).toMatchObject({
      status: 'failed',
      generation: { error: failed.generation.error },
    });
    await eventually(async () => {
      const s = (await request(t.http).get(`${SESSIONS}/${session.id}`)).body as {
        message_count: number;
      };
      return s.message_count === 3;
    });
  });
});
