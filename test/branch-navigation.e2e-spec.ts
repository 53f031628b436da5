import request from 'supertest';
import {
  badRequest,
  createSession,
  type MessageBody,
  messagesOf,
  postMessage,
  readSession,
  SESSIONS,
  sessionNotFound,
  UNKNOWN_ID,
} from './helpers/api';
import { ChatMessagesRepository } from '../src/messages/chat-messages.repository';
import { invariantViolations } from './helpers/invariants';
import { createTestApp, resetDatabase, TestApp } from './helpers/test-app';

type Listed = MessageBody & { sibling_ids: number[] };

/**
 * v1.2 branches as a client walks them: `?branch=` listings with `sibling_ids`, and PATCH
 * `current_message_id` descending to the newest leaf.
 *
 * The tree every test starts from (contents; `→` = child, newest child last):
 *
 *   q1 → a1 → q2 → a2
 *             q2 → a2b            (a regenerated answer: a sibling of a2)
 *        a1 → q2e → a2e           (an edited question: a sibling of q2, the newest)
 *   r2                            (a second root, posted last: the current message)
 */
describe('Branch listings and switching (e2e)', () => {
  let t: TestApp;
  let sessionId: string;
  const ids: Record<string, number> = {};

  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());
  beforeEach(async () => {
    await resetDatabase(t.db);
    sessionId = (await createSession(t.http)).id;
    const add = async (content: string, parent?: string | null) => {
      const body =
        parent === undefined ? { content } : { content, parent_id: parent && ids[parent] };
      ids[content] = (await postMessage(t.http, sessionId, body)).id;
    };
    await add('q1', null);
    await add('a1');
    await add('q2');
    await add('a2');
    await add('a2b', 'q2');
    await add('q2e', 'a1');
    await add('a2e');
    await add('r2', null);
  });
  afterEach(async () => {
    expect(await invariantViolations(t.db, { messagesDeleted: true })).toEqual([]);
  });

  const list = (query: Record<string, string | number>, session = sessionId) =>
    request(t.http).get(messagesOf(session)).query(query);
  const contents = (body: Listed[]) => body.map((m) => m.content);
  const patch = (body: object, session = sessionId) =>
    request(t.http).patch(`${SESSIONS}/${session}`).send(body);

  describe('GET …/messages?branch=', () => {
    it('lists the path from the root to a message, root first, each with its siblings', async () => {
      const res = await list({ branch: ids.a2 });
      expect(res.status).toBe(200);
      expect(res.headers['x-total-count']).toBe('4');
      expect(res.headers.link).toBeUndefined();
      const body = res.body as Listed[];
      expect(contents(body)).toEqual(['q1', 'a1', 'q2', 'a2']);
      expect(body.map((m) => m.sibling_ids)).toEqual([
        [ids.q1, ids.r2],
        [ids.a1],
        [ids.q2, ids.q2e],
        [ids.a2, ids.a2b],
      ]);
      expect(body.map((m) => m.parent_id)).toEqual([null, ids.q1, ids.a1, ids.q2]);
      // Every other field as the plain listing has it.
      const plain = (await list({})).body as MessageBody[];
      for (const m of body) {
        expect(m).toEqual({ ...plain.find((p) => p.id === m.id), sibling_ids: m.sibling_ids });
      }
    });

    it('lists the current branch, and follows it when it moves', async () => {
      expect(contents((await list({ branch: 'current' })).body as Listed[])).toEqual(['r2']);
      expect((await patch({ current_message_id: ids.q1 })).status).toBe(200);
      expect(contents((await list({ branch: 'current' })).body as Listed[])).toEqual([
        'q1',
        'a1',
        'q2e',
        'a2e',
      ]);
    });

    it("answers an empty session's current branch with [] and a total of 0", async () => {
      const empty = await createSession(t.http);
      const res = await list({ branch: 'current' }, empty.id);
      expect([res.status, res.body, res.headers['x-total-count']]).toEqual([200, [], '0']);
    });

    it('pages within the path: skip, limit, order, after and before, with a Link that stays on the branch', async () => {
      expect((await patch({ current_message_id: ids.a2b })).status).toBe(200);
      const page = await list({ branch: 'current', limit: 2 });
      expect(contents(page.body as Listed[])).toEqual(['q1', 'a1']);
      expect(page.headers['x-total-count']).toBe('4');
      const link = /<([^>]+)>; rel="next"/.exec(page.headers.link)![1];
      expect(link).toContain(`branch=${ids.a2b}`);
      // The current branch moves; the link keeps to the branch the first page was on.
      await patch({ current_message_id: ids.r2 });
      const next = await request(t.http).get(link);
      expect(contents(next.body as Listed[])).toEqual(['q2', 'a2b']);

      const branch = ids.a2b;
      expect(contents((await list({ branch, skip: 1, limit: 2 })).body as Listed[])).toEqual([
        'a1',
        'q2',
      ]);
      expect(contents((await list({ branch, order: 'desc' })).body as Listed[])).toEqual([
        'a2b',
        'q2',
        'a1',
        'q1',
      ]);
      expect(contents((await list({ branch, after: ids.a1 })).body as Listed[])).toEqual([
        'q2',
        'a2b',
      ]);
      expect(
        contents((await list({ branch, before: ids.a2b, limit: 2 })).body as Listed[]),
      ).toEqual(['a1', 'q2']);
      expect(
        contents((await list({ branch, after: ids.q1, before: ids.a2b })).body as Listed[]),
      ).toEqual(['a1', 'q2']);
      expect(
        contents((await list({ branch, order: 'desc', after: ids.q2 })).body as Listed[]),
      ).toEqual(['a1', 'q1']);
    });

    it.each([
      ['a message of another session', async () => (await otherMessage()).toString()],
      ['an unknown message', () => Promise.resolve('999999999')],
      ['a word other than current', () => Promise.resolve('latest')],
      ['zero', () => Promise.resolve('0')],
      ['a negative id', () => Promise.resolve('-3')],
    ])('refuses %s as the branch with a 400 naming branch', async (_, value) => {
      const res = await list({ branch: await value() });
      expect(res.status).toBe(400);
      expect(res.body).toEqual(
        badRequest(expect.any(String), [expect.objectContaining({ field: 'branch' })]),
      );
    });

    it('refuses a cursor off the path with a 400 naming it, and skip with a cursor', async () => {
      for (const param of ['after', 'before']) {
        const res = await list({ branch: ids.a2, [param]: ids.a2b });
        expect(res.status).toBe(400);
        expect(res.body.errors).toEqual([expect.objectContaining({ field: param })]);
      }
      const res = await list({ branch: ids.a2, after: ids.q1, skip: 1 });
      expect(res.status).toBe(400);
      expect(res.body.errors).toEqual([expect.objectContaining({ field: 'skip' })]);
    });

    it('answers 404 for an unknown session', async () => {
      const res = await list({ branch: 'current' }, UNKNOWN_ID);
      expect(res.status).toBe(404);
      expect(res.body).toEqual(sessionNotFound(UNKNOWN_ID, expect.any(String)));
    });

    it('streams a branch page too large to hold at once, with the same messages', async () => {
      const big = await createSession(t.http);
      const text = (i: number) => `${i}`.padEnd(90_000, 'x');
      let parent: number | null = null;
      for (let i = 0; i < 25; i++) {
        parent = (await postMessage(t.http, big.id, { content: text(i), parent_id: parent })).id;
      }
      // A sibling off the path, which the listing must leave out.
      await postMessage(t.http, big.id, { content: 'off the path', parent_id: null });
      const res = await list({ branch: parent! }, big.id);
      expect(res.status).toBe(200);
      const body = res.body as Listed[];
      expect(body.map((m) => m.content)).toEqual(Array.from({ length: 25 }, (_, i) => text(i)));
      expect(body[0].sibling_ids).toHaveLength(2);
      expect(body.slice(1).every((m) => m.sibling_ids.length === 1)).toBe(true);
    });
  });

  describe('PATCH current_message_id', () => {
    it('stores the newest leaf under the message, following the newest child at every level', async () => {
      const before = await readSession(t.http, sessionId);
      const cases: [string, string][] = [
        ['q1', 'a2e'],
        ['q2', 'a2b'],
        ['a2', 'a2'],
        ['r2', 'r2'],
      ];
      for (const [target, leaf] of cases) {
        const res = await patch({ current_message_id: ids[target] });
        expect(res.status).toBe(200);
        expect(res.body.current_message_id).toBe(ids[leaf]);
        expect(res.body.last_updated_at).toBe(before.last_updated_at);
        expect((await readSession(t.http, sessionId)).current_message_id).toBe(ids[leaf]);
      }
    });

    it('makes the next message without parent_id a child of the stored leaf', async () => {
      await patch({ current_message_id: ids.q2 });
      const reply = await postMessage(t.http, sessionId, { content: 'follow-up' });
      expect(reply.parent_id).toBe(ids.a2b);
      expect((await readSession(t.http, sessionId)).current_message_id).toBe(reply.id);
    });

    it('goes with the other fields of a PATCH, in one change', async () => {
      const res = await patch({ name: 'Renamed', current_message_id: ids.a1 });
      expect(res.status).toBe(200);
      expect([res.body.name, res.body.current_message_id]).toEqual(['Renamed', ids.a2e]);
    });

    it.each([
      ['null', null],
      ['a string', '3'],
      ['a fraction', 1.5],
      ['zero', 0],
      ['an unknown message', 999_999_999],
    ])('refuses %s with a 400 naming current_message_id, changing nothing', async (_, value) => {
      const before = await readSession(t.http, sessionId);
      const res = await patch({ name: 'Not stored', current_message_id: value });
      expect(res.status).toBe(400);
      expect(res.body.errors).toEqual([expect.objectContaining({ field: 'current_message_id' })]);
      expect(await readSession(t.http, sessionId)).toEqual(before);
    });

    it("refuses a message of another session (400) and another owner's session (404)", async () => {
      const before = await readSession(t.http, sessionId);
      const res = await patch({ current_message_id: await otherMessage() });
      expect(res.status).toBe(400);
      expect(res.body.errors).toEqual([expect.objectContaining({ field: 'current_message_id' })]);
      expect(await readSession(t.http, sessionId)).toEqual(before);
      expect((await patch({ current_message_id: ids.q1 }, UNKNOWN_ID)).status).toBe(404);
    });
  });

  describe('POST …/fork', () => {
    const fork = (body: object, session = sessionId, headers: Record<string, string> = {}) =>
      request(t.http).post(`${SESSIONS}/${session}/fork`).set(headers).send(body);

    it('copies the path to the message into a new session, re-stamped now, and names its source', async () => {
      await patch({ metadata_tags: { team: 'red' }, rag_document_ids: ['d1'], pinned: true });
      const source = await readSession(t.http, sessionId);
      const sourcePath = (await list({ branch: ids.a2b })).body as Listed[];
      const started = Date.now();
      const res = await fork({ message_id: ids.a2b });
      expect(res.status).toBe(201);
      const forked = res.body as typeof source;
      expect(forked).toEqual({
        ...source,
        id: expect.not.stringMatching(sessionId),
        created_at: expect.any(String),
        last_updated_at: expect.any(String),
        message_count: 4,
        archived: false,
        pinned: false,
        current_message_id: expect.any(Number),
        forked_from: { session_id: sessionId, message_id: ids.a2b },
        expires_at: null,
      });
      expect(Date.parse(forked.created_at)).toBeGreaterThanOrEqual(started - 5);
      const copies = (await list({}, forked.id)).body as MessageBody[];
      expect(copies.map((m) => [m.role, m.content, m.metadata, m.status, m.generation])).toEqual(
        sourcePath.map((m) => [m.role, m.content, m.metadata, m.status, m.generation]),
      );
      expect(copies.map((m) => m.parent_id)).toEqual([
        null,
        ...copies.slice(0, -1).map((m) => m.id),
      ]);
      expect(copies.every((m) => !Object.values(ids).includes(m.id))).toBe(true);
      const times = copies.map((m) => Date.parse(m.timestamp));
      expect(times).toEqual([...times].sort((a, b) => a - b));
      expect(new Set(times).size).toBe(times.length);
      expect(times[0]).toBeGreaterThanOrEqual(Date.parse(forked.created_at));
      expect(forked.current_message_id).toBe(copies.at(-1)!.id);
      expect(forked.last_updated_at).toBe(copies.at(-1)!.timestamp);
      // The most recently active session, and the source untouched.
      const listed = (await request(t.http).get(SESSIONS).query({ archived: 'any' })).body as {
        id: string;
      }[];
      expect(listed[0].id).toBe(forked.id);
      expect(await readSession(t.http, sessionId)).toEqual(source);
    });

    it('forks at the current message by default, with the name given', async () => {
      await patch({ current_message_id: ids.a2e });
      const res = await fork({ name: 'Second try' });
      expect(res.status).toBe(201);
      expect([res.body.name, res.body.forked_from]).toEqual([
        'Second try',
        { session_id: sessionId, message_id: ids.a2e },
      ]);
      const copies = (await list({}, res.body.id as string)).body as MessageBody[];
      expect(copies.map((m) => m.content)).toEqual(['q1', 'a1', 'q2e', 'a2e']);
    });

    it('forks an empty session into an empty one', async () => {
      const empty = await createSession(t.http, { name: 'Blank' });
      const res = await fork({}, empty.id);
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({
        name: 'Blank',
        message_count: 0,
        current_message_id: null,
        forked_from: { session_id: empty.id, message_id: null },
      });
    });

    it.each([
      ['null', null],
      ['a string', '3'],
      ['an unknown message', 999_999_999],
    ])('refuses %s as message_id with a 400 naming it, creating nothing', async (_, value) => {
      const res = await fork({ message_id: value });
      expect(res.status).toBe(400);
      expect(res.body.errors).toEqual([expect.objectContaining({ field: 'message_id' })]);
      expect(await sessionCount()).toBe(1);
    });

    it("refuses another session's message (400) and an unknown session (404)", async () => {
      const res = await fork({ message_id: await otherMessage() });
      expect(res.status).toBe(400);
      expect(res.body.errors).toEqual([expect.objectContaining({ field: 'message_id' })]);
      expect((await fork({}, UNKNOWN_ID)).status).toBe(404);
      expect(await sessionCount()).toBe(2);
    });

    it('refuses a name the session rules refuse', async () => {
      const res = await fork({ name: 'x'.repeat(201) });
      expect(res.status).toBe(400);
      expect(res.body.errors).toEqual([expect.objectContaining({ field: 'name' })]);
    });

    it('answers a retry with the same Idempotency-Key with the same fork, made once', async () => {
      const key = { 'Idempotency-Key': 'fork-once' };
      const first = await fork({ message_id: ids.a1 }, sessionId, key);
      const again = await fork({ message_id: ids.a1 }, sessionId, key);
      expect(first.status).toBe(201);
      expect([again.status, again.body]).toEqual([201, first.body]);
      expect(await sessionCount()).toBe(2);
    });

    const sessionCount = async () =>
      Number(
        (await request(t.http).get(SESSIONS).query({ archived: 'any' })).headers['x-total-count'],
      );
  });

  describe('small and large sessions', () => {
    it('walks branches alike in memory (a session read whole) and by the recursive statements', async () => {
      // A random tree of 60 messages: each posted under a random earlier message, or as a root.
      const tree = await createSession(t.http);
      const posted: number[] = [];
      let seed = 7;
      const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
      for (let i = 0; i < 60; i++) {
        const pick = Math.floor(random() * (posted.length + 1));
        const parent = pick === posted.length ? null : posted[pick];
        posted.push(
          (await postMessage(t.http, tree.id, { content: `n${i}`, parent_id: parent })).id,
        );
      }
      const repository = t.app.get(ChatMessagesRepository);
      const walks = await t.db.read(async (m) => {
        const results: unknown[][] = [];
        for (const id of [...posted, 999_999_999]) {
          const whole = await repository.path(m, tree.id, id, 60);
          const parents = [id, null, posted[0]];
          results.push([
            whole?.entries,
            (await repository.path(m, tree.id, id, 60, 0))?.entries,
            await repository.leafUnder(m, tree.id, id, 60),
            await repository.leafUnder(m, tree.id, id, 60, 0),
            // Siblings from the tree read whole, and from the index.
            whole && [...(await repository.children(m, tree.id, parents, whole.shape))],
            whole && [...(await repository.children(m, tree.id, parents))],
          ]);
        }
        return results;
      });
      for (const [inMemory, recursive, leafInMemory, leafRecursive, kids, kidsRead] of walks) {
        expect(recursive).toEqual(inMemory);
        expect(leafRecursive).toEqual(leafInMemory);
        expect(kids).toEqual(kidsRead);
      }
      expect(walks.filter(([, , , , kids]) => kids)).toHaveLength(posted.length);
      // And both agree with the tree the API shows.
      const listed = (await list({}, tree.id)).body as MessageBody[];
      const parentOf = new Map(listed.map((m) => [m.id, m.parent_id]));
      for (const [i, id] of posted.entries()) {
        const expected: number[] = [];
        for (let x: number | null = id; x !== null; x = parentOf.get(x)!) expected.unshift(x);
        expect((walks[i][0] as { id: number }[]).map((e) => e.id)).toEqual(expected);
        // The newest child is the last in the listing's (timestamp, id) order.
        let leaf = id;
        for (let kids = listed.filter((m) => m.parent_id === leaf); kids.length > 0;) {
          leaf = kids.at(-1)!.id;
          kids = listed.filter((m) => m.parent_id === leaf);
        }
        expect(walks[i][2]).toBe(leaf);
      }
      // An unknown message: no path, no leaf.
      expect(walks.at(-1)).toEqual([undefined, undefined, null, null, null, null]);
    });
  });

  async function otherMessage(): Promise<number> {
    const other = await createSession(t.http);
    return (await postMessage(t.http, other.id, { content: 'elsewhere' })).id;
  }
});
