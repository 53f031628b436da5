import request from 'supertest';
import {
  cancelOf,
  createSession,
  eventually,
  type MessageBody,
  messageAt,
  messagesOf,
  postMessage,
  readSession,
  repliesOf,
  SESSIONS,
  streamOf,
} from './helpers/api';
import { invariantViolations } from './helpers/invariants';
import { baseUrlOf, SseClient } from './helpers/sse';
import { createTestApp, resetDatabase, type TestApp } from './helpers/test-app';
import { type FakeLlm, startFakeLlm } from './support/fake-llm';
import { MAX_REPLIES_PER_OWNER } from '../src/replies/generation-manager';
import { RepliesService } from '../src/replies/replies.service';
import { LOCAL_OWNER } from '../src/auth/owner.decorator';

describe('Replies from a language model (e2e)', () => {
  let fake: FakeLlm;
  let t: TestApp;
  let base: string;
  let sessionId: string;

  beforeAll(async () => {
    fake = await startFakeLlm();
    t = await createTestApp({ LLM_BASE_URL: fake.baseUrl, LLM_TIMEOUT_MS: '3000' });
    await t.app.listen(0, '127.0.0.1');
    base = baseUrlOf(t.http);
  });
  afterAll(async () => {
    await t.close();
    await fake.close();
  });
  beforeEach(async () => {
    await resetDatabase(t.db);
    fake.requests.length = 0;
    fake.setDefault({ stream: ['Hello', ', ', 'world'] });
    sessionId = (await createSession(t.http)).id;
  });
  afterEach(async () => {
    expect(await invariantViolations(t.db, { messagesDeleted: true })).toEqual([]);
  });

  const ask = (body: object = {}, session = sessionId) =>
    request(t.http).post(repliesOf(session)).send(body);
  const message = async (id: number, session = sessionId) =>
    (await request(t.http).get(messageAt(session, id)).expect(200)).body as MessageBody;

  describe('POST …/replies as JSON', () => {
    it('stores the complete reply as a child of the current message, which it becomes', async () => {
      const question = await postMessage(t.http, sessionId, { content: 'Say hello' });
      const res = await ask({ temperature: 0.5, max_tokens: 20 }).expect(201);
      expect(res.body).toEqual({
        id: expect.any(Number),
        session_id: sessionId,
        timestamp: expect.any(String),
        role: 'assistant',
        content: 'Hello, world',
        metadata: null,
        parent_id: question.id,
        status: 'complete',
        generation: {
          model: 'default',
          finish_reason: 'stop',
          usage: { prompt_tokens: expect.any(Number), completion_tokens: expect.any(Number) },
          error: null,
        },
      });
      expect(await message(res.body.id)).toEqual(res.body);
      expect((await readSession(t.http, sessionId)).current_message_id).toBe(res.body.id);
      expect(fake.requests).toHaveLength(1);
      expect(fake.requests[0].body).toMatchObject({
        model: 'default',
        stream: true,
        temperature: 0.5,
        max_tokens: 20,
        messages: [{ role: 'user', content: 'Say hello' }],
      });
    });

    it('sends the branch up to the parent as the prompt, and regenerating makes a sibling', async () => {
      const system = await postMessage(t.http, sessionId, { role: 'system', content: 'Be brief' });
      const q1 = await postMessage(t.http, sessionId, { content: 'First question' });
      const a1 = (await ask().expect(201)).body as MessageBody;
      // An edit of the first question: a sibling, so the old branch leaves the prompt.
      const edit = await postMessage(t.http, sessionId, {
        content: 'Edited question',
        parent_id: system.id,
      });
      fake.next({ stream: ['Second'] });
      const a2 = (await ask().expect(201)).body as MessageBody;
      expect(a2.parent_id).toBe(edit.id);
      expect(fake.requests[1].body).toMatchObject({
        messages: [
          { role: 'system', content: 'Be brief' },
          { role: 'user', content: 'Edited question' },
        ],
      });
      // Regenerate the first answer: a reply under its parent, beside it.
      fake.next({ stream: ['Again'] });
      const again = (await ask({ parent_id: q1.id, model: 'other-model' }).expect(201))
        .body as MessageBody;
      expect(again).toMatchObject({ parent_id: q1.id, content: 'Again' });
      expect(fake.requests[2].body).toMatchObject({
        model: 'other-model',
        messages: [
          { role: 'system', content: 'Be brief' },
          { role: 'user', content: 'First question' },
        ],
      });
      const branch = await request(t.http)
        .get(`${messagesOf(sessionId)}?branch=current`)
        .expect(200);
      expect((branch.body as { id: number; sibling_ids: number[] }[]).at(-1)).toMatchObject({
        id: again.id,
        sibling_ids: [a1.id, again.id],
      });
    });

    it('refuses a reply with nothing to answer (400 naming parent_id), writing nothing', async () => {
      const res = await ask().expect(400);
      expect(res.body.errors).toEqual([{ field: 'parent_id', message: expect.any(String) }]);
      await ask({ parent_id: null }).expect(400);
      expect((await readSession(t.http, sessionId)).message_count).toBe(0);
      expect(fake.requests).toHaveLength(0);
    });

    it('validates the body and the parent as POST messages does', async () => {
      await postMessage(t.http, sessionId, { content: 'Hi' });
      for (const body of [
        { temperature: 3 },
        { temperature: 'hot' },
        { max_tokens: 0 },
        { max_tokens: 40000 },
        { model: '' },
        { parent_id: 'x' },
        { extra: 1 },
      ]) {
        await ask(body).expect(400);
      }
      const res = await ask({ parent_id: 999999 }).expect(400);
      expect(res.body.errors).toEqual([{ field: 'parent_id', message: expect.any(String) }]);
      await request(t.http)
        .post(repliesOf('00000000-0000-4000-8000-000000000000'))
        .send({})
        .expect(404);
      expect(fake.requests).toHaveLength(0);
    });

    it('answers 502 with the stored failed reply when the model fails, never a 500', async () => {
      await postMessage(t.http, sessionId, { content: 'Hi' });
      const failures = [
        { status: 500 },
        { raw: ['data: {not json\n\n'] },
        { stream: ['partial '], dropAfter: 1 },
      ];
      for (const script of failures) {
        fake.next(script);
        const res = await ask().expect(502);
        expect(res.body).toMatchObject({ status: 502, message_id: expect.any(Number) });
        const failed = await message(res.body.message_id as number);
        expect(failed.status).toBe('failed');
        expect(failed.generation).toMatchObject({ error: expect.any(String) });
        expect((failed.generation as { error: string }).error).not.toMatch(/\n/);
      }
    });

    it('asks again once when the connection closes before any answer', async () => {
      await postMessage(t.http, sessionId, { content: 'Hi' });
      fake.next({ reset: true });
      fake.next({ stream: ['second ', 'try'] });
      const res = await ask().expect(201);
      expect(res.body).toMatchObject({ status: 'complete', content: 'second try' });
      expect(fake.requests).toHaveLength(2);
      // Twice in a row is a failure: one retry, not a loop.
      fake.next({ reset: true });
      fake.next({ reset: true });
      const failed = await ask().expect(502);
      expect(failed.body.detail).toMatch(/could not reach the model server/);
      expect(fake.requests).toHaveLength(4);
    });

    it('answers 504 when the model takes longer than LLM_TIMEOUT_MS, keeping the text', async () => {
      await postMessage(t.http, sessionId, { content: 'Hi' });
      fake.next({ stream: ['slow start', new Promise(() => undefined)] });
      const res = await ask().expect(504);
      const failed = await message(res.body.message_id as number);
      expect(failed).toMatchObject({ status: 'failed', content: 'slow start' });
      await eventually(() => fake.requests[0].aborted);
    });

    it('answers 404 when the session is deleted meanwhile, and writes nothing after', async () => {
      await postMessage(t.http, sessionId, { content: 'Hi' });
      const gate = fake.gate();
      fake.next({ stream: ['a', gate.wait, 'b'] });
      const pending = ask();
      const replied = pending.then((res) => res);
      await eventually(() => fake.requests.length === 1);
      await request(t.http).delete(`${SESSIONS}/${sessionId}`).expect(204);
      gate.open();
      expect((await replied).status).toBe(404);
      await eventually(() => fake.requests[0].aborted || fake.openStreams === 0);
      expect(await readRows()).toBe(0);
    });
  });

  async function readRows(): Promise<number> {
    const [{ n }] = await t.db.read((m) => m.query(`SELECT COUNT(*) AS "n" FROM "chat_messages"`));
    return Number(n);
  }

  describe('POST …/replies as server-sent events', () => {
    it('streams message, deltas whose ids are the text length, then done', async () => {
      await postMessage(t.http, sessionId, { content: 'Hi' });
      fake.next({ stream: ['Hel', 'lo ', 'wörld 🌍'], delayMs: 20 });
      const sse = new SseClient(`${base}${repliesOf(sessionId)}`, { method: 'POST', body: {} });
      await sse.ended;
      expect(sse.status).toBe(200);
      expect(sse.headers['content-type']).toBe('text/event-stream; charset=utf-8');
      expect(sse.headers['cache-control']).toMatch(/no-cache/);
      expect(sse.headers['x-accel-buffering']).toBe('no');
      const names = sse.events.map((e) => e.event);
      expect(names[0]).toBe('message');
      expect(names.at(-1)).toBe('done');
      expect(names.slice(1, -1).every((n) => n === 'delta')).toBe(true);
      expect(sse.events[0].data).toMatchObject({ status: 'in_progress', content: '' });
      expect(sse.content).toBe('Hello wörld 🌍');
      let length = 0;
      for (const delta of sse.named('delta')) {
        length += (delta.data as { content: string }).content.length;
        expect(delta.id).toBe(String(length));
      }
      const done = sse.named('done')[0].data as MessageBody;
      expect(done).toMatchObject({ status: 'complete', content: 'Hello wörld 🌍' });
      expect(await message(done.id)).toEqual(done);
    });

    it('goes on generating when the client goes away; a resume gets the rest', async () => {
      await postMessage(t.http, sessionId, { content: 'Hi' });
      const gate = fake.gate();
      fake.next({ stream: ['one ', 'two ', gate.wait, 'three'] });
      const sse = new SseClient(`${base}${repliesOf(sessionId)}`, { method: 'POST', body: {} });
      await sse.until((c) => c.content === 'one two ');
      const id = (sse.events[0].data as MessageBody).id;
      const lastId = sse.named('delta').at(-1)!.id!;
      sse.close();
      await sse.ended;
      gate.open();
      await eventually(async () => (await message(id)).status === 'complete');
      expect((await message(id)).content).toBe('one two three');

      const resumed = new SseClient(`${base}${streamOf(sessionId, id)}`, {
        headers: { 'Last-Event-ID': lastId },
      });
      await resumed.ended;
      expect(resumed.events.map((e) => [e.event, e.id])).toEqual([
        ['delta', '13'],
        ['done', undefined],
      ]);
      expect(resumed.content).toBe('three');
      const byQuery = new SseClient(`${base}${streamOf(sessionId, id)}?offset=4`);
      await byQuery.ended;
      expect(byQuery.content).toBe('two three');
      const atEnd = new SseClient(`${base}${streamOf(sessionId, id)}?offset=13`);
      await atEnd.ended;
      expect(atEnd.events.map((e) => e.event)).toEqual(['done']);
    });

    it('lets a second client follow a reply live from where it joins', async () => {
      await postMessage(t.http, sessionId, { content: 'Hi' });
      const gate = fake.gate();
      fake.next({ stream: ['early ', gate.wait, 'late'] });
      const first = new SseClient(`${base}${repliesOf(sessionId)}`, { method: 'POST', body: {} });
      await first.until((c) => c.content === 'early ');
      const id = (first.events[0].data as MessageBody).id;
      const second = new SseClient(`${base}${streamOf(sessionId, id)}?offset=0`);
      await second.until((c) => c.content === 'early ');
      gate.open();
      await Promise.all([first.ended, second.ended]);
      expect(second.content).toBe('early late');
      expect(second.named('done')[0].data).toMatchObject({ status: 'complete' });
    });

    it('refuses offsets that are not non-negative integers or past the end (400 naming offset)', async () => {
      const posted = await postMessage(t.http, sessionId, { content: 'Four' });
      for (const query of ['?offset=-1', '?offset=abc', '?offset=5']) {
        const res = await request(t.http).get(`${streamOf(sessionId, posted.id)}${query}`);
        expect(res.status).toBe(400);
        expect(res.body.errors).toEqual([{ field: 'offset', message: expect.any(String) }]);
      }
      // A posted message streams as one delta and done.
      const sse = new SseClient(`${base}${streamOf(sessionId, posted.id)}?offset=1`);
      await sse.ended;
      expect(sse.events.map((e) => [e.event, e.id])).toEqual([
        ['delta', '4'],
        ['done', undefined],
      ]);
      await request(t.http).get(streamOf(sessionId, 999999)).expect(404);
    });
  });

  describe('streams read from the database', () => {
    it('share a timer and a subscription only while a stream watches', async () => {
      const posted = await postMessage(t.http, sessionId, { content: 'Stored' });
      const replies = t.app.get(RepliesService);
      const following = () => (replies as unknown as { followed: Map<string, unknown> }).followed;
      const message = await replies.owned(LOCAL_OWNER, sessionId, String(posted.id));
      const first = replies.source(LOCAL_OWNER, message);
      const second = replies.source(LOCAL_OWNER, message);
      // A source read but never watched (its client left before the stream started) holds nothing.
      expect(await first.view()).toMatchObject({ content: 'Stored', ended: { id: posted.id } });
      expect(following().size).toBe(0);
      const stops = [first.watch(() => undefined), second.watch(() => undefined)];
      expect(following().size).toBe(1);
      stops[0]();
      expect(following().size).toBe(1);
      stops[1]();
      expect(following().size).toBe(0);
    });
  });

  describe('cancel', () => {
    it('stops the generation, keeps the text so far, and a second cancel is a 409', async () => {
      await postMessage(t.http, sessionId, { content: 'Hi' });
      fake.next({ stream: ['kept ', new Promise(() => undefined)] });
      const sse = new SseClient(`${base}${repliesOf(sessionId)}`, { method: 'POST', body: {} });
      await sse.until((c) => c.content === 'kept ');
      const id = (sse.events[0].data as MessageBody).id;
      const cancelled = await request(t.http).post(cancelOf(sessionId, id)).expect(200);
      expect(cancelled.body).toMatchObject({ id, status: 'cancelled', content: 'kept ' });
      await sse.ended;
      expect(sse.named('done')[0].data).toEqual(cancelled.body);
      await eventually(() => fake.requests[0].aborted);
      await request(t.http).post(cancelOf(sessionId, id)).expect(409);
      const posted = await postMessage(t.http, sessionId, { content: 'Again' });
      await request(t.http).post(cancelOf(sessionId, posted.id)).expect(409);
      await request(t.http).post(cancelOf(sessionId, 999999)).expect(404);
    });

    it('answers a JSON reply cancelled meanwhile with 200 and the cancelled message', async () => {
      await postMessage(t.http, sessionId, { content: 'Hi' });
      fake.next({ stream: ['so far', new Promise(() => undefined)] });
      const pending = ask().then((res) => res);
      await eventually(async () => (await currentReply())?.content === 'so far');
      const id = (await currentReply())!.id;
      await request(t.http).post(cancelOf(sessionId, id)).expect(200);
      const res = await pending;
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ id, status: 'cancelled', content: 'so far' });
    });
  });

  async function currentReply(): Promise<MessageBody | undefined> {
    const session = await readSession(t.http, sessionId);
    if (session.current_message_id === null) return undefined;
    const m = await message(session.current_message_id);
    return m.role === 'assistant' ? m : undefined;
  }

  describe('a reply in progress', () => {
    it('cannot be a parent (409) nor forked (409) until it ends', async () => {
      await postMessage(t.http, sessionId, { content: 'Hi' });
      const gate = fake.gate();
      fake.next({ stream: ['x', gate.wait] });
      const pending = ask().then((res) => res);
      await eventually(async () => (await currentReply()) !== undefined);
      const reply = (await currentReply())!;
      expect(reply.status).toBe('in_progress');
      await request(t.http).post(messagesOf(sessionId)).send({ content: 'Too soon' }).expect(409);
      await request(t.http)
        .post(messagesOf(sessionId))
        .send({ content: 'Too soon', parent_id: reply.id })
        .expect(409);
      await ask().expect(409);
      await request(t.http)
        .post(`${SESSIONS}/${sessionId}/fork`)
        .send({ message_id: reply.id })
        .expect(409);
      gate.open();
      expect((await pending).status).toBe(201);
      await request(t.http).post(messagesOf(sessionId)).send({ content: 'Now' }).expect(201);
    });

    it('ends cancelled for a stream open when it is deleted, with nothing written after', async () => {
      await postMessage(t.http, sessionId, { content: 'Hi' });
      const gate = fake.gate();
      fake.next({ stream: ['gone ', gate.wait, 'never stored'] });
      const sse = new SseClient(`${base}${repliesOf(sessionId)}`, { method: 'POST', body: {} });
      await sse.until((c) => c.content === 'gone ');
      const id = (sse.events[0].data as MessageBody).id;
      await request(t.http).delete(messageAt(sessionId, id)).expect(204);
      await sse.ended;
      expect(sse.named('done')[0].data).toMatchObject({ id, status: 'cancelled' });
      gate.open();
      await eventually(() => fake.requests[0].aborted || fake.openStreams === 0);
      await new Promise((resolve) => setTimeout(resolve, 700));
      await request(t.http).get(messageAt(sessionId, id)).expect(404);
      expect((await readSession(t.http, sessionId)).message_count).toBe(1);
    });
  });

  describe('what a model may send', () => {
    it('stores U+0000 and lone surrogates as U+FFFD and joins a pair split across chunks', async () => {
      await postMessage(t.http, sessionId, { content: 'Hi' });
      const emoji = '😀';
      fake.next({ stream: ['a\u0000b', emoji[0], emoji[1], '\udc00c'] });
      const res = await ask().expect(201);
      expect(res.body).toMatchObject({ status: 'complete', content: 'a\ufffdb😀\ufffdc' });
      // What is stored exports and imports again.
      const exported = await request(t.http).get(`${SESSIONS}/${sessionId}/export`).expect(200);
      await request(t.http).delete(`${SESSIONS}/${sessionId}`).expect(204);
      await request(t.http).post('/api/v1/import').send(exported.body).expect(201);
    });

    it('ends a reply at 100,000 characters, complete with finish_reason length', async () => {
      await postMessage(t.http, sessionId, { content: 'Hi' });
      // More than fits, then nothing: only a reply that stops its request at the limit completes.
      fake.next({ stream: [...Array<string>(101).fill('x'.repeat(1000)), new Promise(() => {})] });
      const res = await ask().expect(201);
      expect(res.body).toMatchObject({
        status: 'complete',
        generation: { finish_reason: 'length', error: null },
      });
      expect((res.body as MessageBody).content).toHaveLength(100_000);
      await eventually(() => fake.requests[0].aborted);
    });
  });

  describe('racing appends', () => {
    it('never stores a message under a reply in progress, however appends and replies race', async () => {
      for (let round = 0; round < 5; round++) {
        const session = (await createSession(t.http)).id;
        await postMessage(t.http, session, { content: 'Hi' });
        fake.requests.length = 0;
        const gate = fake.gate();
        fake.setDefault({ stream: ['held', gate.wait] });
        const racing = Array.from({ length: 6 }, (_, i) =>
          i % 2 === 0
            ? ask({}, session).then((res) => res.status)
            : request(t.http)
                .post(messagesOf(session))
                .send({ content: `racer ${i}` })
                .then((res) => res.status),
        );
        await eventually(() => fake.requests.length >= 1);
        await new Promise((resolve) => setTimeout(resolve, 300));
        // While the reply that got in is held: it is the only one in progress, and no message (of
        // the racers that got in before or after it) has it for a parent.
        const [row] = await t.db.read((m) =>
          m.query(`SELECT
             (SELECT COUNT(*) FROM "chat_messages" WHERE "status" = 'in_progress') AS "busy",
             (SELECT COUNT(*) FROM "chat_messages" c JOIN "chat_messages" p ON p."id" = c."parent_id"
               WHERE p."status" = 'in_progress') AS "under"`),
        );
        expect([Number(row.busy), Number(row.under)]).toEqual([1, 0]);
        gate.open();
        const statuses = await Promise.all(racing);
        expect(statuses.every((s) => s === 201 || s === 409)).toBe(true);
        expect(statuses.filter((s) => s === 409).length).toBeGreaterThanOrEqual(2);
        expect(fake.requests).toHaveLength(1);
      }
    });
  });

  describe('limits', () => {
    it('refuses the 129th reply in progress of one owner with 429, storing nothing', async () => {
      await postMessage(t.http, sessionId, { content: 'Hi' });
      const gate = fake.gate();
      fake.setDefault({ stream: ['held', gate.wait] });
      const sessions = await Promise.all(
        Array.from({ length: MAX_REPLIES_PER_OWNER }, async () => {
          const id = (await createSession(t.http)).id;
          await postMessage(t.http, id, { content: 'Hi' });
          return id;
        }),
      );
      const held = sessions.map(
        (id) => new SseClient(`${base}${repliesOf(id)}`, { method: 'POST', body: {} }),
      );
      await Promise.all(held.map((c) => c.until((x) => x.content === 'held', 20_000)));
      const count = (await readSession(t.http, sessionId)).message_count;
      const refused = await ask().expect(429);
      expect(refused.body.detail).toContain(String(MAX_REPLIES_PER_OWNER));
      expect((await readSession(t.http, sessionId)).message_count).toBe(count);
      gate.open();
      await Promise.all(held.map((c) => c.ended));
      await ask().expect(201);
    }, 60_000);
  });

  describe('Idempotency-Key', () => {
    it('replays the reply as it is now, as JSON, without asking the model again', async () => {
      await postMessage(t.http, sessionId, { content: 'Hi' });
      const first = await ask().set('Idempotency-Key', 'reply-1').expect(201);
      const again = await ask().set('Idempotency-Key', 'reply-1').expect(201);
      expect(again.headers['idempotent-replayed']).toBe('true');
      expect(again.body).toEqual(first.body);
      expect(fake.requests).toHaveLength(1);
    });
  });
});

describe('The prompt of a reply on a long branch (e2e)', () => {
  let fake: FakeLlm;
  let t: TestApp;
  const WINDOW = 300;

  beforeAll(async () => {
    fake = await startFakeLlm();
    fake.setDefault({ stream: ['ok'] });
    t = await createTestApp({ LLM_BASE_URL: fake.baseUrl, LLM_CONTEXT_MESSAGES: String(WINDOW) });
  });
  afterAll(async () => {
    await t.close();
    await fake.close();
  });

  it('sends the newest LLM_CONTEXT_MESSAGES usable messages of the path, and its first system message', async () => {
    // A 700-message chain (read in several chunks) behind an edit: a system message at the root,
    // failed and empty replies along the way (never sent), and a sibling branch left out.
    const sessionId = '00000000-0000-4000-8000-00000000a11e';
    const base = Date.UTC(2026, 0, 1);
    const messages = Array.from({ length: 700 }, (_, i) => {
      const failed = i % 7 === 3;
      return {
        id: 5000 + i,
        session_id: sessionId,
        timestamp: new Date(base + i * 1000).toISOString(),
        role: i === 0 ? 'system' : i % 2 ? 'user' : 'assistant',
        content: i === 0 ? 'Be brief.' : failed ? '' : `message ${i}`,
        metadata: null,
        parent_id: i === 0 ? null : 5000 + i - 1,
        status: failed ? 'failed' : 'complete',
        generation: null,
      };
    });
    messages.push({
      ...messages[699],
      id: 6000,
      timestamp: new Date(base + 800_000).toISOString(),
      content: 'off the branch',
      parent_id: 5698,
    });
    const session = {
      id: sessionId,
      name: 'Long',
      created_at: new Date(base).toISOString(),
      last_updated_at: new Date(base + 800_000).toISOString(),
      llm_model_name: 'default',
      rag_document_ids: null,
      metadata_tags: null,
      message_count: messages.length,
      archived: false,
      pinned: false,
      current_message_id: 5699,
      forked_from: null,
      expires_at: null,
    };
    await request(t.http).post('/api/v1/import').send({ session, messages }).expect(201);
    const res = await request(t.http).post(repliesOf(sessionId)).send({}).expect(201);
    expect(res.body).toMatchObject({ parent_id: 5699, content: 'ok' });

    const usable = messages
      .slice(0, 700)
      .filter((m) => m.status === 'complete' && m.content !== '');
    const expected = [usable[0], ...usable.slice(-WINDOW)].map(({ role, content }) => ({
      role,
      content,
    }));
    expect((fake.requests[0].body as { messages: unknown[] }).messages).toEqual(expected);
  });
});

describe('Replies without LLM_BASE_URL (e2e)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ LLM_BASE_URL: '' });
  });
  afterAll(() => t.close());

  it('answers 503 naming LLM_BASE_URL before any other check; the rest works', async () => {
    const session = await createSession(t.http);
    const posted = await postMessage(t.http, session.id, { content: 'Hi' });
    for (const body of [{}, { temperature: 'bad' }]) {
      const res = await request(t.http).post(repliesOf(session.id)).send(body).expect(503);
      expect(res.body).toMatchObject({
        status: 503,
        detail: expect.stringContaining('LLM_BASE_URL'),
      });
    }
    await request(t.http)
      .post(repliesOf('00000000-0000-4000-8000-000000000000'))
      .send({})
      .expect(503);
    const sse = await request(t.http)
      .get(`${streamOf(session.id, posted.id)}`)
      .expect(200);
    expect(sse.text).toContain('event: done');
    await request(t.http).post(cancelOf(session.id, posted.id)).expect(409);
  });
});
