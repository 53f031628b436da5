import { Client } from 'pg';
import request from 'supertest';
import {
  badRequest,
  createSession,
  ISO_MS,
  type MessageBody,
  messageAt,
  messagesOf,
  postMessage,
  readSession,
  SESSIONS,
} from './helpers/api';
import { onPostgres } from './helpers/database-target';
import { invariantViolations } from './helpers/invariants';
import { countRows, createTestApp, resetDatabase, TestApp } from './helpers/test-app';

/** v1.2 conversation trees: parent links, the session's current message, and what keeps them whole. */
describe('Conversation trees (e2e)', () => {
  let t: TestApp;
  let sessionId: string;

  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());
  beforeEach(async () => {
    await resetDatabase(t.db);
    sessionId = (await createSession(t.http)).id;
  });
  afterEach(async () => {
    expect(await invariantViolations(t.db, { messagesDeleted: true })).toEqual([]);
  });

  const post = (body: object, session = sessionId) => postMessage(t.http, session, body);
  const current = async (session = sessionId) =>
    (await readSession(t.http, session)).current_message_id;
  /** Every message of the session as [content, parent's content or null], oldest first. */
  async function shape(session = sessionId): Promise<[string, string | null][]> {
    const res = await request(t.http).get(messagesOf(session));
    const messages = res.body as MessageBody[];
    const byId = new Map(messages.map((m) => [m.id, m.content]));
    return messages.map((m) => [m.content, m.parent_id === null ? null : byId.get(m.parent_id)!]);
  }

  describe('the v1.2 fields', () => {
    it('are on every session and message the API answers with', async () => {
      const created = await request(t.http).post(SESSIONS).send({ name: 'Fields' });
      expect(created.body).toEqual({
        id: expect.any(String),
        name: 'Fields',
        created_at: expect.stringMatching(ISO_MS),
        last_updated_at: expect.stringMatching(ISO_MS),
        llm_model_name: 'default',
        rag_document_ids: null,
        metadata_tags: null,
        message_count: 0,
        archived: false,
        pinned: false,
        current_message_id: null,
        forked_from: null,
        expires_at: null,
      });
      const id = created.body.id as string;
      const res = await request(t.http).post(messagesOf(id)).send({ content: 'Hello Lisbon' });
      const message = {
        id: expect.any(Number),
        session_id: id,
        timestamp: expect.stringMatching(ISO_MS),
        role: 'user',
        content: 'Hello Lisbon',
        metadata: null,
        parent_id: null,
        status: 'complete',
        generation: null,
      };
      expect({ status: res.status, body: res.body }).toEqual({ status: 201, body: message });
      const session = {
        ...created.body,
        last_updated_at: res.body.timestamp,
        message_count: 1,
        current_message_id: res.body.id,
      };

      expect((await request(t.http).get(messageAt(id, res.body.id))).body).toEqual(res.body);
      expect((await request(t.http).get(messagesOf(id))).body).toEqual([res.body]);
      expect((await request(t.http).get(`${SESSIONS}/${id}`)).body).toEqual(session);
      expect((await request(t.http).get(SESSIONS)).body).toEqual(expect.arrayContaining([session]));
      const patched = await request(t.http).patch(`${SESSIONS}/${id}`).send({ pinned: true });
      expect(patched.body).toEqual({ ...session, pinned: true });
      const search = await request(t.http).get('/api/v1/search').query({ q: 'lisbon' });
      expect(search.body).toEqual([
        { session: { ...session, pinned: true }, message: res.body, snippet: expect.any(String) },
      ]);
      const exported = await request(t.http).get(`${SESSIONS}/${id}/export`);
      expect(exported.body).toEqual({
        session: { ...session, pinned: true },
        messages: [res.body],
      });
    });
  });

  describe('POST /api/v1/sessions/:id/messages with parent_id', () => {
    it('without parent_id follows the current message: a chain, as before v1.2', async () => {
      const a = await post({ content: 'a' });
      const b = await post({ content: 'b' });
      const c = await post({ content: 'c' });
      expect([a.parent_id, b.parent_id, c.parent_id]).toEqual([null, a.id, b.id]);
      expect(await current()).toBe(c.id);
    });

    it('with a message of the session: a child of it (a sibling of its other children)', async () => {
      const a = await post({ content: 'a' });
      const b = await post({ content: 'b' });
      const edited = await post({ content: 'b, edited', parent_id: a.id });
      expect(edited.parent_id).toBe(a.id);
      expect(await current()).toBe(edited.id);
      // The next message without parent_id continues the branch the user is on now.
      const next = await post({ content: 'c' });
      expect(next.parent_id).toBe(edited.id);
      expect(await shape()).toEqual([
        ['a', null],
        ['b', 'a'],
        ['b, edited', 'a'],
        ['c', 'b, edited'],
      ]);
      expect(b.parent_id).toBe(a.id);
    });

    it('with null: a new root, which becomes the current message', async () => {
      const a = await post({ content: 'a' });
      const root = await post({ content: 'new root', parent_id: null });
      expect(root.parent_id).toBeNull();
      expect(await current()).toBe(root.id);
      expect(a.parent_id).toBeNull();
      const session = await readSession(t.http, sessionId);
      expect(session.message_count).toBe(2);
      expect(session.last_updated_at).toBe(root.timestamp);
    });

    it('accepts parent_id with an Idempotency-Key, and replays the same message', async () => {
      const a = await post({ content: 'a' });
      const send = () =>
        request(t.http)
          .post(messagesOf(sessionId))
          .set('Idempotency-Key', 'tree-1')
          .send({ content: 'reply', parent_id: a.id });
      const first = await send();
      const again = await send();
      expect(first.status).toBe(201);
      expect(again.body).toEqual(first.body);
      expect(first.body.parent_id).toBe(a.id);
      expect(await current()).toBe(first.body.id);
    });

    describe('refuses a parent that is not a message of this session: 400 naming parent_id', () => {
      const cases: [string, (ids: { other: number; own: number }) => unknown][] = [
        ["another session's message", ({ other }) => other],
        ['a message id that does not exist', ({ own }) => own + 1_000_000],
        ['the largest message id', () => 999_999_999_999_999],
        ['zero', () => 0],
        ['a negative number', () => -1],
        ['beyond the largest message id', () => 1e16],
        ['a fraction', ({ own }) => own + 0.5],
        ['a numeric string', ({ own }) => String(own)],
        ['a boolean', () => true],
        ['an object', ({ own }) => ({ id: own })],
        ['an array', ({ own }) => [own]],
      ];
      it.each(cases)('%s', async (name, parentOf) => {
        const otherSession = (await createSession(t.http)).id;
        const other = await post({ content: 'elsewhere' }, otherSession);
        const own = await post({ content: 'own' });
        for (const key of [undefined, `refused ${name}`]) {
          const req = request(t.http).post(messagesOf(sessionId));
          if (key) req.set('Idempotency-Key', key);
          const res = await req.send({
            content: 'x',
            parent_id: parentOf({ other: other.id, own: own.id }),
          });
          expect({ status: res.status, body: res.body }).toEqual({
            status: 400,
            body: badRequest(messagesOf(sessionId), [
              { field: 'parent_id', message: expect.stringContaining('parent_id') },
            ]),
          });
        }
        // Nothing written: no message, no count, no move of the session.
        const session = await readSession(t.http, sessionId);
        expect(session).toMatchObject({
          message_count: 1,
          current_message_id: own.id,
          last_updated_at: own.timestamp,
        });
        expect(await countRows(t.db, 'chat_messages')).toBe(2);
      });
    });

    it('two appends to the same parent at once: two siblings', async () => {
      const a = await post({ content: 'a' });
      await post({ content: 'b' });
      const replies = await Promise.all(
        ['x', 'y'].map((content) =>
          request(t.http).post(messagesOf(sessionId)).send({ content, parent_id: a.id }),
        ),
      );
      expect(replies.map((r) => r.status)).toEqual([201, 201]);
      expect(replies.map((r) => (r.body as MessageBody).parent_id)).toEqual([a.id, a.id]);
      // The current message is the one stored last (they are stamped in the order they commit).
      const [first, second] = replies
        .map((r) => r.body as MessageBody)
        .sort((p, q) => p.timestamp.localeCompare(q.timestamp) || p.id - q.id);
      expect(first.id).not.toBe(second.id);
      expect(await current()).toBe(second.id);
    });

    it('appends without parent_id at once still form one chain: each follows the one before', async () => {
      const n = 12;
      const replies = await Promise.all(
        Array.from({ length: n }, (_, i) =>
          request(t.http)
            .post(messagesOf(sessionId))
            .send({ content: `m${i}` }),
        ),
      );
      expect(replies.every((r) => r.status === 201)).toBe(true);
      const messages = (await request(t.http).get(messagesOf(sessionId))).body as MessageBody[];
      expect(messages.map((m) => m.parent_id)).toEqual([
        null,
        ...messages.slice(0, -1).map((m) => m.id),
      ]);
      expect(await current()).toBe(messages[n - 1].id);
    });

    // The append stays one statement on PostgreSQL, with a parent given or not.
    (onPostgres ? it : it.skip)('takes one round trip on PostgreSQL with parent_id', async () => {
      const a = await post({ content: 'a' });
      const spy = jest.spyOn(Client.prototype, 'query');
      try {
        for (const parent_id of [a.id, null]) {
          spy.mockClear();
          const res = await request(t.http)
            .post(messagesOf(sessionId))
            .send({ content: 'b', parent_id });
          expect(res.status).toBe(201);
          expect(spy).toHaveBeenCalledTimes(1);
        }
        spy.mockClear();
        const refused = await request(t.http)
          .post(messagesOf(sessionId))
          .send({ content: 'b', parent_id: a.id + 1000 });
        expect(refused.status).toBe(400);
        expect(spy).toHaveBeenCalledTimes(1);
      } finally {
        spy.mockRestore();
      }
    });
  });

  describe('DELETE /api/v1/sessions/:id/messages/:message_id', () => {
    const remove = (message: MessageBody) =>
      request(t.http).delete(messageAt(sessionId, message.id)).expect(204);

    it("moves the message's children up to its parent; the current message stays", async () => {
      const a = await post({ content: 'a' });
      const b = await post({ content: 'b' });
      await post({ content: 'c' });
      const d = await post({ content: 'd', parent_id: b.id });
      await remove(b);
      expect(await shape()).toEqual([
        ['a', null],
        ['c', 'a'],
        ['d', 'a'],
      ]);
      expect(await current()).toBe(d.id);
      expect((await readSession(t.http, sessionId)).message_count).toBe(3);
      expect(a.parent_id).toBeNull();
    });

    it("makes a deleted root's children roots", async () => {
      const a = await post({ content: 'a' });
      await post({ content: 'b' });
      await post({ content: 'c', parent_id: a.id });
      await post({ content: 'other root', parent_id: null });
      await remove(a);
      expect(await shape()).toEqual([
        ['b', null],
        ['c', null],
        ['other root', null],
      ]);
    });

    it('moves the current message to the newest leaf under the deleted one’s parent', async () => {
      const a = await post({ content: 'a' });
      const b = await post({ content: 'b' });
      const c = await post({ content: 'c' });
      // Under a: b (with c below it), then e (newer, with f below it), then g, a leaf of b's branch.
      const e = await post({ content: 'e', parent_id: a.id });
      const f = await post({ content: 'f' });
      const g = await post({ content: 'g', parent_id: c.id });
      expect(await current()).toBe(g.id);
      // g's parent is c, a leaf once g is gone.
      await remove(g);
      expect(await current()).toBe(c.id);
      // c's parent is b, a leaf once c is gone.
      await remove(c);
      expect(await current()).toBe(b.id);
      // b's parent is a, whose newest child is e, whose newest child is f.
      await remove(b);
      expect(await current()).toBe(f.id);
      expect(e.parent_id).toBe(a.id);
    });

    it('moves it, for a root, to the newest leaf under the newest remaining root', async () => {
      const first = await post({ content: 'first root' });
      await post({ content: 'first root, old child' });
      const newer = await post({ content: 'first root, newer child', parent_id: first.id });
      await post({ content: 'older second root', parent_id: null });
      const newestRoot = await post({ content: 'newest root', parent_id: null });
      const lone = await post({ content: 'lone root', parent_id: null });
      await remove(lone);
      expect(await current()).toBe(newestRoot.id);
      // A deleted current root with a child: the child becomes a root, and is the newest root.
      const child = await post({ content: 'child of newest root' });
      await remove(newestRoot);
      expect(await current()).toBe(child.id);
      await remove(child);
      // Now the newest root is the older second root, a leaf.
      const second = (await shape()).find(([content]) => content === 'older second root');
      expect(second).toEqual(['older second root', null]);
      const messages = (await request(t.http).get(messagesOf(sessionId))).body as MessageBody[];
      expect(await current()).toBe(messages.find((m) => m.content === 'older second root')!.id);
      expect(newer.parent_id).toBe(first.id);
    });

    it('sets the current message to null when nothing is left', async () => {
      const a = await post({ content: 'a' });
      const b = await post({ content: 'b' });
      await remove(b);
      expect(await current()).toBe(a.id);
      await remove(a);
      const session = await readSession(t.http, sessionId);
      expect(session).toMatchObject({ message_count: 0, current_message_id: null });
      // The next message is a root again.
      const next = await post({ content: 'again' });
      expect(next.parent_id).toBeNull();
      expect(await current()).toBe(next.id);
    });

    it('keeps the tree whole when messages of one session are deleted at once', async () => {
      const messages: MessageBody[] = [];
      for (let i = 0; i < 8; i++) {
        messages.push(
          await post({ content: `m${i}`, ...(i % 3 === 2 ? { parent_id: messages[0].id } : {}) }),
        );
      }
      const results = await Promise.all(
        messages
          .filter((_, i) => i % 2 === 1)
          .map((m) => request(t.http).delete(messageAt(sessionId, m.id))),
      );
      expect(results.map((r) => r.status)).toEqual([204, 204, 204, 204]);
      expect((await readSession(t.http, sessionId)).message_count).toBe(4);
    });

    it('deleting a session removes its whole tree', async () => {
      const a = await post({ content: 'a' });
      await post({ content: 'b' });
      await post({ content: 'c', parent_id: a.id });
      await request(t.http).delete(`${SESSIONS}/${sessionId}`).expect(204);
      expect(await countRows(t.db, 'chat_messages')).toBe(0);
    });
  });
});
