import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import request from 'supertest';
import { validateEnv } from '../src/config/env.validation';
import { chatGptSessionId } from '../src/import/chatgpt-conversation';
import { ISO_MS } from './helpers/api';
import { countRows, createTestApp, resetDatabase, TestApp } from './helpers/test-app';

const IMPORT = '/api/v1/import';
const FIXTURE = join(__dirname, 'fixtures', 'chatgpt-conversations.json');

interface Exported {
  session: Record<string, unknown> & { id: string };
  messages: (Record<string, unknown> & { id: number })[];
}

/**
 * Message ids are kept only when the database never issued them (deleting rows between tests does
 * not make ids new again) and lie within reach of the highest it issued: every file gets ids above
 * those of the files before it, and above the high-water mark (see `syncIds`).
 */
let nextIds = 0;

function exported(id: string, messages: Partial<Exported['messages'][number]>[] = []): Exported {
  const firstId = (nextIds += 1000);
  return {
    session: {
      id,
      name: 'Imported',
      created_at: '2025-01-01T10:00:00.000Z',
      last_updated_at: '2025-01-01T10:05:00.000Z',
      llm_model_name: 'gpt-x',
      rag_document_ids: ['doc-1'],
      metadata_tags: { project: 'moving' },
      message_count: messages.length,
      archived: false,
      pinned: true,
    },
    messages: messages.map((m, i) => ({
      id: firstId + i,
      session_id: id,
      timestamp: new Date(Date.UTC(2025, 0, 1, 10) + i * 60_000).toISOString(),
      role: 'user',
      content: `message ${i}`,
      metadata: null,
      ...m,
    })),
  };
}

/**
 * An export as the service stores it: v1.2's fields added, each message following the one before it
 * in (timestamp, id) order, the newest one current, as the files here are v1.1 exports, without
 * tree fields (import-trees.e2e-spec.ts imports whole trees).
 */
function asStored(file: Exported): Exported {
  const key = (m: Exported['messages'][number]) => [String(m.timestamp), m.id] as const;
  const messages = [...file.messages].sort((a, b) => {
    const [[ta, ia], [tb, ib]] = [key(a), key(b)];
    return ta === tb ? ia - ib : ta < tb ? -1 : 1;
  });
  const chained = messages.map((m, i) => ({
    ...m,
    parent_id: i === 0 ? null : messages[i - 1].id,
    status: 'complete',
    generation: null,
  }));
  return {
    session: {
      ...file.session,
      current_message_id: chained.at(-1)?.id ?? null,
      forked_from: null,
      expires_at: null,
    },
    messages: chained,
  };
}

/** A ChatGPT conversation, typed loosely enough to break it in tests. */
type Conversation = Record<string, unknown> & {
  mapping: Record<string, { message: Record<string, unknown> }>;
};

const A = '11111111-1111-4111-8111-111111111111';
const B = '22222222-2222-4222-8222-222222222222';

describe('Import (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp({ DEFAULT_MODEL_NAME: 'local-default' });
  });
  afterAll(() => t.close());
  beforeEach(async () => {
    await resetDatabase(t.db);
    nextIds = Math.max(nextIds, await highWater());
  });

  /** The highest message id the database has issued. */
  async function highWater(): Promise<number> {
    const [row]: { n: number | string | null }[] = await t.db.read((m) =>
      m.query(
        t.db.isSqlite
          ? `SELECT "seq" AS "n" FROM "sqlite_sequence" WHERE "name" = 'chat_messages'`
          : `SELECT CASE WHEN "is_called" THEN "last_value" ELSE "last_value" - 1 END AS "n"
             FROM "chat_messages_id_seq"`,
      ),
    );
    return Number(row?.n ?? 0);
  }

  async function importJson(body: unknown) {
    return request(t.http)
      .post(IMPORT)
      .set('Content-Type', 'application/json')
      .send(JSON.stringify(body));
  }

  async function importNdjson(text: string) {
    return request(t.http).post(IMPORT).set('Content-Type', 'application/x-ndjson').send(text);
  }

  async function stored(id: string): Promise<Exported> {
    const session = await request(t.http).get(`/api/v1/sessions/${id}`);
    expect(session.status).toBe(200);
    const messages = await request(t.http).get(`/api/v1/sessions/${id}/messages`);
    return { session: session.body, messages: messages.body };
  }

  async function counts() {
    return [await countRows(t.db, 'sessions'), await countRows(t.db, 'chat_messages')];
  }

  describe('our own exports', () => {
    it('imports one export object, keeping ids, timestamps and every field', async () => {
      const file = exported(A, [
        { content: 'Hello', metadata: { source: 'web', nested: { deep: [1, null] } } },
        { content: 'Hi!', role: 'assistant' },
      ]);
      const res = await importJson(file);
      expect({ status: res.status, body: res.body }).toEqual({
        status: 201,
        body: {
          imported: 1,
          skipped: 0,
          sessions: [A],
          message_ids: 'kept',
          renumbered_sessions: [],
        },
      });
      await expect(stored(A)).resolves.toEqual(asStored(file));
    });

    it('imports an array of exports and NDJSON with blank lines and CRLF', async () => {
      const array = await importJson([exported(A, [{}]), exported(B, [{ id: nextIds + 1 }])]);
      expect(array.body).toEqual({
        imported: 2,
        skipped: 0,
        sessions: [A, B],
        message_ids: 'kept',
        renumbered_sessions: [],
      });
      await resetDatabase(t.db);
      const lines = [exported(B), exported(A, [{}, {}])].map((e) => JSON.stringify(e));
      const ndjson = await importNdjson(`\n${lines[0]}\r\n\n${lines[1]}\n\n`);
      expect({ status: ndjson.status, body: ndjson.body }).toEqual({
        status: 201,
        body: {
          imported: 2,
          skipped: 0,
          sessions: [B, A],
          message_ids: 'kept',
          renumbered_sessions: [],
        },
      });
      const { messages } = await stored(A);
      expect(messages.map((m) => m.content)).toEqual(['message 0', 'message 1']);
    });

    it('creates nothing when the same file is imported again', async () => {
      const file = [exported(A, [{}, {}]), exported(B)];
      expect((await importJson(file)).status).toBe(201);
      const before = await counts();
      const again = await importJson(file);
      expect({ status: again.status, body: again.body }).toEqual({
        status: 201,
        body: {
          imported: 0,
          skipped: 2,
          sessions: [A, B],
          message_ids: 'kept',
          renumbered_sessions: [],
        },
      });
      await expect(counts()).resolves.toEqual(before);
      const ndjson = await importNdjson(file.map((e) => JSON.stringify(e)).join('\n'));
      expect(ndjson.body).toEqual({
        imported: 0,
        skipped: 2,
        sessions: [A, B],
        message_ids: 'kept',
        renumbered_sessions: [],
      });
    });

    it('never merges into an existing session: it is skipped whole, others are imported', async () => {
      const original = exported(A, [{}]);
      await importJson(original);
      const changed = exported(A, [{ content: 'a different history' }, {}]);
      const res = await importJson([changed, exported(B)]);
      // The skipped session's message ids are taken, but they are not imported: B's ids are kept.
      expect(res.body).toEqual({
        imported: 1,
        skipped: 1,
        sessions: [A, B],
        message_ids: 'kept',
        renumbered_sessions: [],
      });
      await expect(stored(A)).resolves.toEqual(asStored(original));
    });

    it('renumbers every message when one id was issued here already, keeping their order', async () => {
      const local = (await request(t.http).post('/api/v1/sessions').send({})).body.id as string;
      const issued: number[] = [];
      for (let i = 0; i < 3; i++) {
        const m = await request(t.http)
          .post(`/api/v1/sessions/${local}/messages`)
          .send({ content: `local ${i}` });
        issued.push(m.body.id);
      }
      const highest = Math.max(...issued);
      await request(t.http).delete(`/api/v1/sessions/${local}/messages/${issued[2]}`);
      // One of the ids is a message here, so none of the session's is kept (one of them is free
      // again, and the id above them is free too): a session's ids are all kept or none is.
      const file = exported(A, [
        { id: issued[0] },
        { id: issued[2] },
        { id: highest + 10, timestamp: '2025-01-01T10:00:00.000Z' },
      ]);
      const res = await importJson(file);
      expect(res.body).toEqual({
        imported: 1,
        skipped: 0,
        sessions: [A],
        message_ids: 'renumbered',
        renumbered_sessions: [A],
      });
      const { messages } = await stored(A);
      // Same time, so (timestamp, id) order: the file's order survives the renumbering.
      expect(messages.map((m) => m.content)).toEqual(['message 0', 'message 2', 'message 1']);
      const ids = messages.map((m) => m.id);
      expect(ids.every((id) => id > highest)).toBe(true);
      expect(ids[0]).toBeLessThan(ids[1]);
      // Later appends get ids above everything imported.
      const next = await request(t.http)
        .post(`/api/v1/sessions/${A}/messages`)
        .send({ content: 'after the import' });
      expect(next.body.id).toBeGreaterThan(Math.max(...ids));
    });

    it('renumbers only the sessions whose ids are taken, above every id kept, and names them', async () => {
      const local = (await request(t.http).post('/api/v1/sessions').send({})).body.id as string;
      const taken = await request(t.http)
        .post(`/api/v1/sessions/${local}/messages`)
        .send({ content: 'local' });
      const renumbered = exported(A, [{ id: taken.body.id }, {}]);
      const kept = exported(B, [{}, {}]);
      const res = await importJson([renumbered, kept]);
      expect(res.body).toEqual({
        imported: 2,
        skipped: 0,
        sessions: [A, B],
        message_ids: 'renumbered',
        renumbered_sessions: [A],
      });
      await expect(stored(B)).resolves.toEqual(asStored(kept));
      const ids = (await stored(A)).messages.map((m) => m.id);
      const highest = Math.max(...kept.messages.map((m) => m.id));
      expect(ids).toEqual([highest + 1, highest + 2]);
    });

    it('stamps a message appended after an import later than the imported history', async () => {
      await importJson(exported(A, [{}, {}]));
      const res = await request(t.http)
        .post(`/api/v1/sessions/${A}/messages`)
        .send({ content: 'new' });
      expect(res.status).toBe(201);
      const session = (await stored(A)).session;
      expect(session).toMatchObject({ message_count: 3, last_updated_at: res.body.timestamp });
    });

    it('makes imported messages and names searchable at once', async () => {
      await importJson(exported(A, [{ content: 'the imported zanzibar note' }]));
      const res = await request(t.http).get('/api/v1/search').query({ q: 'zanzibar' });
      expect(res.body.map((h: { snippet: string }) => h.snippet)).toEqual([
        'the imported [zanzibar] note',
      ]);
      const byName = await request(t.http).get('/api/v1/search').query({ q: 'imported' });
      expect(byName.body[0]).toMatchObject({ message: null, snippet: '[Imported]' });
    });

    it('accepts an export whose counts and activity time disagree with its messages, and fixes them', async () => {
      const file = exported(A, [{}, { timestamp: '2025-01-01T11:00:00.000Z' }]);
      file.session.message_count = 7;
      expect((await importJson(file)).status).toBe(201);
      expect((await stored(A)).session).toMatchObject({
        message_count: 2,
        last_updated_at: '2025-01-01T11:00:00.000Z',
      });
    });

    it('imports an empty array and an empty NDJSON body as nothing', async () => {
      for (const res of [await importJson([]), await importNdjson('\n')]) {
        expect({ status: res.status, body: res.body }).toEqual({
          status: 201,
          body: {
            imported: 0,
            skipped: 0,
            sessions: [],
            message_ids: 'kept',
            renumbered_sessions: [],
          },
        });
      }
    });
  });

  describe('ChatGPT conversations.json', () => {
    const conversations = JSON.parse(readFileSync(FIXTURE, 'utf8')) as Record<string, unknown>[];
    const ids = [
      chatGptSessionId('6a1e3c2b-0b6f-4b8e-9d3a-3f7f1f0e2a11'),
      chatGptSessionId('7b2f4d3c-1c70-4c9f-8e4b-4a8a2a1f3b22'),
      chatGptSessionId('legacy-conversation-3'),
    ];
    const at = (seconds: number) => new Date(seconds * 1000).toISOString();
    const T = 1714550400;

    function message(
      session: string,
      timestamp: string,
      role: string,
      content: string,
      metadata: object,
    ) {
      return { id: expect.any(Number), session_id: session, timestamp, role, content, metadata };
    }

    it('imports every text node of each conversation with its tree shape and create times', async () => {
      const res = await request(t.http)
        .post(IMPORT)
        .set('Content-Type', 'application/json')
        .send(readFileSync(FIXTURE, 'utf8'));
      expect({ status: res.status, body: res.body }).toEqual({
        status: 201,
        body: {
          imported: 3,
          skipped: 0,
          sessions: ids,
          message_ids: 'kept',
          renumbered_sessions: [],
        },
      });
      const [trip, untitled, skewed] = await Promise.all(ids.map(stored));
      const { current_message_id, ...session } = trip.session;
      expect(session).toEqual({
        id: ids[0],
        name: 'Trip to Lisbon',
        created_at: at(T),
        last_updated_at: at(T + 95),
        llm_model_name: 'gpt-4o',
        rag_document_ids: null,
        metadata_tags: {
          source: 'chatgpt',
          conversation_id: '6a1e3c2b-0b6f-4b8e-9d3a-3f7f1f0e2a11',
        },
        message_count: 11,
        archived: false,
        pinned: false,
        forked_from: null,
        expires_at: null,
      });
      // Each message's parent by its ChatGPT id, so the tree reads at a glance.
      const nodeOf = new Map(
        trip.messages.map((m) => [
          m.id,
          (m.metadata as { chatgpt_message_id: string }).chatgpt_message_id,
        ]),
      );
      const tree = trip.messages.map(({ parent_id, ...m }) => ({
        ...m,
        parent: parent_id === null ? null : nodeOf.get(parent_id as number),
      }));
      const node = (
        parent: string | null,
        timestamp: string,
        role: string,
        content: string,
        metadata: object,
      ) => ({
        ...message(ids[0], timestamp, role, content, metadata),
        parent,
        status: 'complete',
        generation: null,
      });
      const chatgpt = (id: string, model?: string) => ({
        source: 'chatgpt',
        chatgpt_message_id: id,
        ...(model ? { model } : {}),
      });
      // Oldest first (by timestamp, then the ids the import gave in that order).
      expect(tree).toEqual([
        // The hidden, empty system message is skipped: the visible one becomes the root.
        node(
          null,
          at(T + 1),
          'system',
          'You are a helpful travel assistant.',
          chatgpt('sys-visible'),
        ),
        node(
          'sys-visible',
          '2024-05-01T08:00:10.250Z',
          'user',
          'Where should we go in May?',
          chatgpt('u1'),
        ),
        // A regenerated reply: the abandoned answer and its follow-up stay as a branch.
        node('u1', at(T + 20), 'assistant', 'Maybe Paris?', chatgpt('a1-old', 'gpt-4o')),
        node('a1-old', at(T + 30), 'user', 'Paris is too expensive.', chatgpt('u2-old')),
        node(
          'u1',
          '2024-05-01T08:00:40.500Z',
          'assistant',
          'Lisbon is lovely in May.',
          chatgpt('a1-new', 'gpt-4o'),
        ),
        // Text parts joined; the image part left out.
        node('a1-new', at(T + 60), 'user', 'What about this photo?\nIs it Lisbon?', chatgpt('u2')),
        // Code, tool output, a message to DALL·E and reasoning between u2 and a2 are skipped: a2
        // attaches to u2. No create time means its parent's time.
        node(
          'u2',
          at(T + 60),
          'assistant',
          "Yes, that's the Belém tower.",
          chatgpt('a2', 'gpt-4o'),
        ),
        // An edited user message (a sibling of u2) with two answers, reached through skipped
        // reasoning.
        node('a1-new', at(T + 70), 'user', 'What about Porto instead?', chatgpt('u2-edit')),
        node(
          'u2-edit',
          at(T + 80),
          'assistant',
          'Porto is great for wine.',
          chatgpt('a-porto-1', 'gpt-4o'),
        ),
        node(
          'u2-edit',
          at(T + 85),
          'assistant',
          'Porto has the Ribeira.',
          chatgpt('a-porto-2', 'gpt-4o'),
        ),
        // The whitespace-only user message is skipped: a3 attaches to a2.
        node('a2', at(T + 95), 'assistant', 'Anything else?', chatgpt('a3')),
      ]);
      const ordered = trip.messages.map((m) => m.id);
      expect([...ordered].sort((a, b) => a - b)).toEqual(ordered);
      // current_node a3 is kept: it is the current message, and its branch is the one shown.
      expect(nodeOf.get(current_message_id as number)).toBe('a3');
      const branch = await request(t.http).get(
        `/api/v1/sessions/${ids[0]}/messages?branch=current`,
      );
      expect(branch.body.map((m: { content: string }) => m.content)).toEqual([
        'You are a helpful travel assistant.',
        'Where should we go in May?',
        'Lisbon is lovely in May.',
        'What about this photo?\nIs it Lisbon?',
        "Yes, that's the Belém tower.",
        'Anything else?',
      ]);
      expect(untitled.session).toMatchObject({
        name: null,
        archived: true,
        llm_model_name: 'gpt-4o-mini',
        message_count: 2,
      });
      expect(untitled.messages.map((m) => [m.role, m.content])).toEqual([
        ['user', 'Translate "bonjour"'],
        ['assistant', 'It means "hello".'],
      ]);
      const T3 = 1719792000;
      expect(skewed.session).toMatchObject({
        name: 'Clock skew',
        llm_model_name: 'local-default',
        created_at: at(T3),
        last_updated_at: at(T3 + 200),
      });
      // An answer stamped before its question keeps the question's time, so the order holds.
      expect(skewed.messages.map((m) => [m.content, m.timestamp])).toEqual([
        ['first\nsecond part', at(T3 + 100)],
        ['an answer stamped before the question', at(T3 + 100)],
        ['later', at(T3 + 200)],
      ]);
      for (const { session } of [trip, untitled, skewed]) {
        expect(session.created_at).toMatch(ISO_MS);
      }
    });

    it.each([
      ['a skipped node: its nearest kept ancestor', 'u3-empty', 'a2'],
      ['skipped reasoning above two answers', 'porto-thoughts', 'u2-edit'],
      ['a kept node off the last branch', 'u2-old', 'u2-old'],
      ['the root, above every kept node: the newest message', 'root', 'a3'],
    ])('makes current_node %s the current message', async (_label, currentNode, expected) => {
      const [trip] = JSON.parse(readFileSync(FIXTURE, 'utf8')) as Record<string, unknown>[];
      expect((await importJson([{ ...trip, current_node: currentNode }])).status).toBe(201);
      const { session, messages } = await stored(ids[0]);
      const current = messages.find((m) => m.id === session.current_message_id);
      expect(current?.metadata).toMatchObject({ chatgpt_message_id: expected });
    });

    it('creates nothing when the same conversations are imported again', async () => {
      expect((await importJson(conversations)).status).toBe(201);
      const before = await counts();
      const again = await importJson(conversations);
      expect(again.body).toEqual({
        imported: 0,
        skipped: 3,
        sessions: ids,
        message_ids: 'kept',
        renumbered_sessions: [],
      });
      await expect(counts()).resolves.toEqual(before);
    });

    it('imports a file mixing our exports and ChatGPT conversations', async () => {
      const res = await importJson([exported(A), conversations[1]]);
      expect(res.body).toEqual({
        imported: 2,
        skipped: 0,
        sessions: [A, ids[1]],
        message_ids: 'kept',
        renumbered_sessions: [],
      });
    });
  });

  describe('malformed files import nothing', () => {
    const chatgpt = () =>
      JSON.parse(readFileSync(FIXTURE, 'utf8')) as Record<string, Record<string, unknown>>[];
    const withMessage = (m: Record<string, unknown>) => exported(A, [m]);

    it.each<[string, unknown, string, RegExp]>([
      [
        'a bad role',
        withMessage({ role: 'robot' }),
        '[1].messages[0].role',
        /session 1111.*role must be one of user, assistant, system/,
      ],
      [
        'empty content',
        withMessage({ content: '' }),
        '[1].messages[0].content',
        /content must be 1 to 100000 characters/,
      ],
      [
        'content over 100,000 characters',
        withMessage({ content: 'c'.repeat(100_001) }),
        '[1].messages[0].content',
        /100000/,
      ],
      ['content with NUL', withMessage({ content: 'a\u0000b' }), '[1].messages[0].content', /NUL/],
      [
        'a bad timestamp',
        withMessage({ timestamp: 'yesterday' }),
        '[1].messages[0].timestamp',
        /ISO 8601/,
      ],
      [
        'a message of another session',
        withMessage({ session_id: B }),
        '[1].messages[0].session_id',
        /session's id/,
      ],
      [
        'a message id that is not a positive integer',
        withMessage({ id: -3 }),
        '[1].messages[0].id',
        /positive integer/,
      ],
      ['array metadata', withMessage({ metadata: [1] }), '[1].messages[0].metadata', /JSON object/],
      [
        'metadata over 16 KiB',
        withMessage({ metadata: { pad: 'p'.repeat(17_000) } }),
        '[1].messages[0].metadata',
        /16384 bytes/,
      ],
      [
        'an unknown message field',
        withMessage({ author: 'me' }),
        '[1].messages[0].author',
        /not a field/,
      ],
      [
        'a session id that is no UUID',
        { ...exported(A), session: { ...exported(A).session, id: 'abc' } },
        '[1].session.id',
        /UUID/,
      ],
      [
        'a name of 201 characters',
        { ...exported(A), session: { ...exported(A).session, name: 'n'.repeat(201) } },
        '[1].session.name',
        /1 to 200/,
      ],
      [
        'bad tags',
        { ...exported(A), session: { ...exported(A).session, metadata_tags: { k: 1 } } },
        '[1].session.metadata_tags',
        /metadata_tags\['k'\]/,
      ],
      [
        'a string flag',
        { ...exported(A), session: { ...exported(A).session, archived: 'yes' } },
        '[1].session.archived',
        /true or false/,
      ],
      [
        'messages that are no array',
        { session: exported(A).session, messages: {} },
        '[1].messages',
        /array of messages/,
      ],
      ['an unknown top-level field', { ...exported(A), extra: 1 }, '[1].extra', /not a field/],
      ['a number', 42, '[1]', /neither an export .* nor a ChatGPT conversation/],
      ['an empty object', {}, '[1]', /neither an export/],
      [
        'a session that is in the file twice',
        exported(B),
        '[1]',
        /session 2222.* is in the file twice \(\[0\] and \[1\]\)/,
      ],
      [
        'a message id that is in the file twice',
        exported(A, [{ id: 7 }]),
        '[1]',
        /message id 7 is in the file twice/,
      ],
    ])('answers 400 naming the place for %s', async (_label, bad, field, message) => {
      const first = _label.includes('twice') ? exported(B, [{ id: 7 }]) : exported(B);
      const res = await importJson([first, bad]);
      expect(res.status).toBe(400);
      expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
      expect(res.body).toMatchObject({
        title: 'Bad Request',
        detail: expect.stringMatching(/^Nothing was imported: /),
        instance: IMPORT,
      });
      expect(res.body.errors).toContainEqual({ field, message: expect.stringMatching(message) });
      await expect(counts()).resolves.toEqual([0, 0]);
    });

    it.each<[string, (c: Record<string, Record<string, unknown>>[]) => unknown, string, RegExp]>([
      [
        'a mapping that is no object',
        (c) => [{ ...c[0], mapping: [] }],
        '[0].mapping',
        /conversation 'Trip to Lisbon' \(id 6a1e3c2b-.*\): mapping must be an object of nodes/,
      ],
      [
        'a missing current_node',
        (c) => [{ ...c[0], current_node: 'nowhere' }],
        '[0].current_node',
        /must be the id of a node/,
      ],
      [
        'a parent that is not in the mapping',
        (c) => {
          c[1].mapping.q = { ...(c[1].mapping.q as object), parent: 'ghost' };
          return c;
        },
        '[1].mapping["q"].parent',
        /names node "ghost", which is not in mapping/,
      ],
      [
        'parent links in a cycle',
        (c) => {
          c[2].mapping.n1 = { ...(c[2].mapping.n1 as object), parent: 'n3' };
          return c;
        },
        '[2].mapping["n3"]',
        /cycle/,
      ],
      [
        'text parts that are no array',
        (c) => {
          const node = c[1].mapping.a as { message: { content: Record<string, unknown> } };
          node.message.content.parts = 'It means hello';
          return c;
        },
        '[1].mapping["a"].message.content.parts',
        /must be an array/,
      ],
      [
        'a message without an author role',
        (c) => {
          const node = c[1].mapping.q as { message: Record<string, unknown> };
          node.message.author = {};
          return c;
        },
        '[1].mapping["q"].message.author.role',
        /must be a string/,
      ],
      [
        'a create time that is text',
        (c) => {
          const node = c[1].mapping.q as { message: Record<string, unknown> };
          node.message.create_time = '2024-06-01';
          return c;
        },
        '[1].mapping["q"].message.create_time',
        /seconds since the epoch/,
      ],
      [
        'a conversation without an id',
        (c) => [{ ...c[1], id: undefined, conversation_id: undefined }],
        '[0].id',
        /conversation's id/,
      ],
    ])(
      'answers 400 naming the conversation and field for %s',
      async (_label, mutate, field, message) => {
        const res = await importJson(mutate(chatgpt()));
        expect(res.status).toBe(400);
        expect(res.body.errors).toContainEqual({ field, message: expect.stringMatching(message) });
        await expect(counts()).resolves.toEqual([0, 0]);
      },
    );

    it('names the NDJSON line that is not JSON, and the field of a line that is wrong', async () => {
      const good = JSON.stringify(exported(A));
      const res = await importNdjson(
        `${good}\n{"session": \n${JSON.stringify(withMessage({ role: 'x' }))}`,
      );
      expect(res.status).toBe(400);
      expect(res.body.errors).toEqual([
        { field: 'line 2', message: expect.stringMatching(/^line 2 is not valid JSON: /) },
        {
          field: 'line 3: messages[0].role',
          message: expect.stringMatching(/^session 1111.*: messages\[0\]\.role must be one of/),
        },
      ]);
      await expect(counts()).resolves.toEqual([0, 0]);
    });

    it('lists at most 20 problems', async () => {
      const res = await importJson(Array.from({ length: 30 }, () => 1));
      expect(res.body.errors).toHaveLength(21);
      expect(res.body.errors[20]).toEqual({
        field: 'body',
        message: 'more than 20 problems; only the first 20 are listed',
      });
    });

    it('answers 400 to an import without a body, malformed JSON and too deep a body', async () => {
      const none = await request(t.http).post(IMPORT);
      expect({ status: none.status, errors: none.body.errors }).toEqual({
        status: 400,
        errors: [{ field: 'body', message: 'the request has no body' }],
      });
      const malformed = await request(t.http)
        .post(IMPORT)
        .set('Content-Type', 'application/json')
        .send('[{"session":');
      expect({ status: malformed.status, detail: malformed.body.detail }).toEqual({
        status: 400,
        detail: 'Malformed JSON in request body.',
      });
      const deep = await request(t.http)
        .post(IMPORT)
        .set('Content-Type', 'application/json')
        .send(`${'['.repeat(70)}${']'.repeat(70)}`);
      const where = '[0]'.repeat(64);
      expect({ status: deep.status, errors: deep.body.errors }).toEqual({
        status: 400,
        errors: [{ field: where, message: `${where} is nested more than 64 levels deep` }],
      });
      await expect(counts()).resolves.toEqual([0, 0]);
    });

    it('names the field where an export nests too deep, with the problems found before it', async () => {
      let metadata: unknown = { leaf: true };
      for (let i = 0; i < 70; i++) metadata = { a: metadata };
      const good = exported(A, [{ content: 'fine' }]);
      const bad = exported(B, [{ content: 'fine' }, { content: 'deep', metadata }]);
      const file = [{ ...good, messages: [{ ...good.messages[0], role: 'robot' }] }, bad];
      const res = await importJson(file);
      // [1] → messages → [1] → metadata are 4 levels of the file's 64, the 60 others are "a".
      const where = `[1].messages[1].metadata${'.a'.repeat(60)}`;
      expect({ status: res.status, detail: res.body.detail, errors: res.body.errors }).toEqual({
        status: 400,
        detail: expect.stringMatching(/^Nothing was imported: /),
        errors: [
          { field: '[0].messages[0].role', message: expect.stringMatching(/role must be one of/) },
          { field: where, message: `${where} is nested more than 64 levels deep` },
        ],
      });

      const line = JSON.stringify({ ...bad, session: { ...bad.session, id: A } });
      const ndjson = await importNdjson(`${JSON.stringify(good)}\n${line}`);
      const inLine = `messages[1].metadata${'.a'.repeat(61)}`;
      expect({ status: ndjson.status, errors: ndjson.body.errors }).toEqual({
        status: 400,
        errors: [
          {
            field: `line 2: ${inLine}`,
            message: `line 2: ${inLine} is nested more than 64 levels deep`,
          },
        ],
      });
      await expect(counts()).resolves.toEqual([0, 0]);
    });
  });

  describe('message ids: shared by every owner, so an import cannot move them out of reach', () => {
    /** Every message of the session can be fetched and deleted by the id the API answered. */
    async function expectFetchable(session: string): Promise<number[]> {
      const { messages } = await stored(session);
      for (const m of messages) {
        expect(Number.isSafeInteger(m.id) && m.id > 0 && m.id <= 999_999_999_999_999).toBe(true);
        const one = await request(t.http).get(`/api/v1/sessions/${session}/messages/${m.id}`);
        expect({ status: one.status, id: one.body.id }).toEqual({ status: 200, id: m.id });
      }
      return messages.map((m) => m.id);
    }

    it.each([
      ['the largest id a path takes', 999_999_999_999_999],
      ['2^53 - 1', Number.MAX_SAFE_INTEGER],
      ['one past the headroom', 'headroom + 2'],
    ])(
      'renumbers a file holding %s, and every later id stays exact and fetchable',
      async (_label, far) => {
        const h = await highWater();
        const id = far === 'headroom + 2' ? h + 2 + 1_000_001 : (far as number);
        const res = await importJson(exported(A, [{ id: h + 1 }, { id }]));
        expect(res.body).toMatchObject({ imported: 1, message_ids: 'renumbered' });
        const ids = await expectFetchable(A);
        // The shared sequence moved by what the rows need, no more.
        expect(Math.max(...ids)).toBeLessThanOrEqual(h + 2);
        expect(await highWater()).toBe(Math.max(...ids));
        const next = await request(t.http)
          .post(`/api/v1/sessions/${A}/messages`)
          .send({ content: 'after' });
        expect(next.body.id).toBe(Math.max(...ids) + 1);
        const again = await request(t.http).get(`/api/v1/sessions/${A}/messages/${next.body.id}`);
        expect(again.status).toBe(200);
        expect(
          (await request(t.http).delete(`/api/v1/sessions/${A}/messages/${next.body.id}`)).status,
        ).toBe(204);
      },
    );

    it('keeps ids up to one per message plus 1,000,000 above the highest issued', async () => {
      const h = await highWater();
      const top = h + 2 + 1_000_000;
      const res = await importJson(exported(A, [{ id: h + 1 }, { id: top }]));
      expect(res.body).toMatchObject({ imported: 1, message_ids: 'kept', renumbered_sessions: [] });
      await expect(expectFetchable(A)).resolves.toEqual([h + 1, top]);
      const next = await request(t.http).post(`/api/v1/sessions/${A}/messages`).send({
        content: 'after',
      });
      expect(next.body.id).toBe(top + 1);
    });

    it('answers 400 to an id a double cannot hold exactly (beyond 2^53)', async () => {
      const text = JSON.stringify(exported(A, [{ id: 1 }])).replace(
        '"id":1,',
        '"id":9007199254740993,',
      );
      const res = await request(t.http)
        .post(IMPORT)
        .set('Content-Type', 'application/json')
        .send(text);
      expect(res.status).toBe(400);
      expect(res.body.errors).toContainEqual({
        field: 'messages[0].id',
        message: expect.stringMatching(/positive integer/),
      });
      await expect(counts()).resolves.toEqual([0, 0]);
    });
  });

  describe('times: checked where they enter', () => {
    const now = () => Date.now();
    const iso = (ms: number) => new Date(ms).toISOString();

    it.each<[string, (e: Exported) => void, string, RegExp]>([
      [
        'a created_at in the year 9999',
        (e) => (e.session.created_at = '9999-12-31T23:59:59.999Z'),
        'session.created_at',
        /minutes after the server's clock/,
      ],
      [
        'a message an hour in the future',
        (e) => (e.messages[0].timestamp = iso(now() + 3_600_000)),
        'messages[0].timestamp',
        /minutes after the server's clock/,
      ],
      [
        'a time before 1970',
        (e) => (e.session.last_updated_at = '1969-12-31T23:59:59.999Z'),
        'session.last_updated_at',
        /before 1970/,
      ],
      [
        'a day that is not on the calendar',
        (e) => (e.messages[0].timestamp = '2025-02-29T10:00:00.000Z'),
        'messages[0].timestamp',
        /ISO 8601/,
      ],
      [
        'hour 24',
        (e) => (e.messages[0].timestamp = '2025-01-01T24:00:00Z'),
        'messages[0].timestamp',
        /ISO 8601/,
      ],
      [
        'a six-digit year',
        (e) => (e.messages[0].timestamp = '+275760-09-13T00:00:00.000Z'),
        'messages[0].timestamp',
        /ISO 8601/,
      ],
    ])('answers 400 to %s and stores nothing', async (_label, mutate, field, message) => {
      const file = exported(A, [{}]);
      mutate(file);
      const res = await importJson(file);
      expect(res.status).toBe(400);
      expect(res.body.errors).toContainEqual({ field, message: expect.stringMatching(message) });
      await expect(counts()).resolves.toEqual([0, 0]);
    });

    it('accepts times a few minutes ahead of the clock, and stamps later appends after them', async () => {
      const ahead = iso(now() + 5 * 60_000);
      const res = await importJson(exported(A, [{ timestamp: ahead }]));
      expect(res.status).toBe(201);
      const next = await request(t.http).post(`/api/v1/sessions/${A}/messages`).send({
        content: 'later',
      });
      expect(next.status).toBe(201);
      expect(next.body.timestamp > ahead).toBe(true);
    });

    const chatgpt = () => JSON.parse(readFileSync(FIXTURE, 'utf8')) as Conversation[];

    it.each<[string, (c: Conversation[]) => void, string]>([
      ['create_time 1e13 seconds', (c) => (c[1].create_time = 1e13), '[1].create_time'],
      ['a negative update_time', (c) => (c[1].update_time = -1), '[1].update_time'],
      [
        'a message create_time 1e13 seconds',
        (c) => (c[1].mapping.q.message.create_time = 1e13),
        '[1].mapping["q"].message.create_time',
      ],
    ])('answers 400 to a ChatGPT conversation with %s', async (_label, mutate, field) => {
      const file = chatgpt();
      mutate(file);
      const res = await importJson(file);
      expect(res.status).toBe(400);
      expect(res.body.errors).toContainEqual({
        field,
        message: expect.stringMatching(/seconds\) must not be (before 1970|more than 10 minutes)/),
      });
      await expect(counts()).resolves.toEqual([0, 0]);
      // Nothing half-stored: list, export and appends still work.
      expect((await request(t.http).get('/api/v1/sessions')).status).toBe(200);
      expect((await request(t.http).get('/api/v1/export')).status).toBe(200);
    });

    describe('a stored time the format cannot write (left by an older version)', () => {
      async function poison(lastUpdatedAt: number): Promise<void> {
        expect((await importJson(exported(A, [{}]))).status).toBe(201);
        await t.db.write((m) =>
          m.query(t.db.sql(`UPDATE "sessions" SET "last_updated_at" = ? WHERE "id" = ?`), [
            lastUpdatedAt,
            A,
          ]),
        );
      }

      it('refuses an append with a 409 and commits nothing', async () => {
        // The last instant the format writes: the next message would be stamped after it.
        await poison(Date.parse('9999-12-31T23:59:59.999Z'));
        const res = await request(t.http).post(`/api/v1/sessions/${A}/messages`).send({
          content: 'x',
        });
        expect({ status: res.status, detail: res.body.detail }).toEqual({
          status: 409,
          detail: expect.stringMatching(/after the year 9999/),
        });
        await expect(counts()).resolves.toEqual([1, 1]);
        const [row]: { message_count: number | string }[] = await t.db.read((m) =>
          m.query(t.db.sql(`SELECT "message_count" FROM "sessions" WHERE "id" = ?`), [A]),
        );
        expect(Number(row.message_count)).toBe(1);
      });

      it('refuses a PATCH with a 409 and changes nothing', async () => {
        await poison(1e16);
        const res = await request(t.http).patch(`/api/v1/sessions/${A}`).send({ name: 'new' });
        expect(res.status).toBe(409);
        const [row]: { name: string }[] = await t.db.read((m) =>
          m.query(t.db.sql(`SELECT "name" FROM "sessions" WHERE "id" = ?`), [A]),
        );
        expect(row.name).toBe('Imported');
      });
    });
  });

  describe("field rules: the API's own, so whatever is stored imports again", () => {
    const session = (fields: Record<string, unknown>) => {
      const file = exported(A);
      Object.assign(file.session, fields);
      return file;
    };

    it.each<[string, unknown, string, RegExp]>([
      [
        'a name with a lone surrogate',
        session({ name: 'a\ud800b' }),
        '[0].session.name',
        /valid Unicode/,
      ],
      [
        'a rag document id with NUL',
        session({ rag_document_ids: ['ok', 'a\u0000b'] }),
        '[0].session.rag_document_ids',
        /each of rag_document_ids must be valid Unicode text/,
      ],
      [
        'an llm_model_name of 201 characters',
        session({ llm_model_name: 'm'.repeat(201) }),
        '[0].session.llm_model_name',
        /llm_model_name must be 1 to 200 characters/,
      ],
      [
        'an empty llm_model_name',
        session({ llm_model_name: '' }),
        '[0].session.llm_model_name',
        /1 to 200/,
      ],
      [
        'content with a lone surrogate',
        exported(A, [{ content: '\udc00' }]),
        '[0].messages[0].content',
        /valid Unicode/,
      ],
      [
        'metadata 17 levels deep',
        exported(A, [
          { metadata: JSON.parse(`${'{"a":'.repeat(17)}1${'}'.repeat(17)}`) as object },
        ]),
        '[0].messages[0].metadata',
        /16 levels/,
      ],
    ])('answers 400 to %s, as the API would', async (_label, file, field, message) => {
      const res = await importJson([file]);
      expect(res.status).toBe(400);
      expect(res.body.errors).toContainEqual({ field, message: expect.stringMatching(message) });
      await expect(counts()).resolves.toEqual([0, 0]);
    });

    it('answers 400 to a metadata number JSON cannot carry back (1e400)', async () => {
      const text = JSON.stringify([exported(A, [{ metadata: { n: 1 } }])]).replace(
        '"n":1',
        '"n":1e400',
      );
      const res = await request(t.http)
        .post(IMPORT)
        .set('Content-Type', 'application/json')
        .send(text);
      expect(res.status).toBe(400);
      expect(res.body.errors).toContainEqual({
        field: '[0].messages[0].metadata',
        message: expect.stringMatching(/too large for JSON/),
      });
    });

    it('refuses in the API what the import refuses: NUL and lone surrogates in rag_document_ids', async () => {
      for (const id of ['a\u0000b', '\ud800']) {
        const res = await request(t.http)
          .post('/api/v1/sessions')
          .send({ rag_document_ids: [id] });
        expect({ status: res.status, errors: res.body.errors }).toEqual({
          status: 400,
          errors: [
            {
              field: 'rag_document_ids',
              message:
                'each of rag_document_ids must be valid Unicode text without NUL (U+0000) characters',
            },
          ],
        });
      }
    });

    const chatgpt = () => JSON.parse(readFileSync(FIXTURE, 'utf8')) as Conversation[];
    const question = (c: Conversation[]) => c[1].mapping.q.message;

    it.each<[string, (c: Conversation[]) => void, string, RegExp]>([
      [
        'a message id of 20,000 characters',
        (c) => (question(c).id = 'i'.repeat(20_000)),
        '[1].mapping["q"].message.id',
        /at most 200 characters/,
      ],
      [
        'a model slug of 201 characters',
        (c) => (c[1].default_model_slug = 's'.repeat(201)),
        '[1].default_model_slug',
        /llm_model_name must be 1 to 200/,
      ],
      [
        'a title with a lone surrogate',
        (c) => (c[1].title = 'trip \ud800'),
        '[1].title',
        /valid Unicode/,
      ],
      [
        'text with a lone surrogate',
        (c) => ((question(c).content as { parts: string[] }).parts = ['\udfff']),
        '[1].mapping["q"].message.content.parts',
        /valid Unicode/,
      ],
    ])('answers 400 to a ChatGPT conversation with %s', async (_label, mutate, field, message) => {
      const file = chatgpt();
      mutate(file);
      const res = await importJson(file);
      expect(res.status).toBe(400);
      expect(res.body.errors).toContainEqual({ field, message: expect.stringMatching(message) });
      await expect(counts()).resolves.toEqual([0, 0]);
    });

    it('imports what it exports: a ChatGPT conversation with ids at their limit round-trips', async () => {
      const file = chatgpt();
      question(file).id = 'i'.repeat(200);
      file[1].default_model_slug = 's'.repeat(200);
      file[1].title = `${'t'.repeat(250)}`;
      expect((await importJson([file[1]])).status).toBe(201);
      const id = chatGptSessionId('7b2f4d3c-1c70-4c9f-8e4b-4a8a2a1f3b22');
      const exportedFile = await request(t.http).get(`/api/v1/sessions/${id}/export`);
      expect(exportedFile.body.session).toMatchObject({
        name: 't'.repeat(200),
        llm_model_name: 's'.repeat(200),
      });
      await resetDatabase(t.db);
      const again = await importJson(exportedFile.body);
      // The ids are free again: the messages come back under them, so the export is the same.
      expect(again.body).toMatchObject({ imported: 1, message_ids: 'kept' });
      const back = await request(t.http).get(`/api/v1/sessions/${id}/export`);
      expect(back.body).toEqual(exportedFile.body);
    });
  });

  describe('body types and sizes', () => {
    it.each([['text/plain'], ['application/xml'], ['multipart/form-data; boundary=x']])(
      'answers 415 to %s',
      async (type) => {
        const res = await request(t.http).post(IMPORT).set('Content-Type', type).send('x');
        expect({
          status: res.status,
          type: res.headers['content-type'],
          detail: res.body.detail,
        }).toEqual({
          status: 415,
          type: 'application/problem+json; charset=utf-8',
          detail: `Unsupported Content-Type '${type}': send application/json or application/x-ndjson.`,
        });
      },
    );

    it('accepts a body over 1 MiB, and answers 413 over 50 MiB', async () => {
      const big = exported(
        A,
        Array.from({ length: 30 }, () => ({ content: 'x'.repeat(99_000) })),
      );
      const accepted = await importJson(big);
      expect({ status: accepted.status, imported: accepted.body.imported }).toEqual({
        status: 201,
        imported: 1,
      });
      const tooBig = await importNdjson('x'.repeat(50 * 1024 * 1024 + 1));
      expect({ status: tooBig.status, detail: tooBig.body.detail }).toEqual({
        status: 413,
        detail: 'Request body exceeds the 52428800 byte limit.',
      });
    });

    it('keeps the 1 MiB limit and the JSON-only rule everywhere else', async () => {
      const res = await request(t.http)
        .post('/api/v1/sessions')
        .set('Content-Type', 'application/x-ndjson')
        .send('{}');
      expect(res.status).toBe(415);
      const big = await request(t.http)
        .post('/api/v1/sessions')
        .send({ name: 'n'.repeat(1024 * 1024) });
      expect(big.status).toBe(413);
    });
  });
});

/**
 * The import checks an export's fields with the API's own DTOs, so it must refuse exactly what
 * `POST /api/v1/sessions` and `POST …/messages` refuse, and store what they store. Each row gives one
 * field a value (as raw JSON text: `1e400` has no JavaScript literal that serializes to it) and what
 * both must do with it; the POST and the import must agree, and name the field when they refuse.
 */

type Verdict = 'accepts' | 'refuses';
/** One hostile (or borderline) value of one field, as JSON text. */
type Row = [label: string, field: string, json: string, verdict: Verdict];

const j = (value: unknown) => JSON.stringify(value);
const nested = (levels: number) => `${'{"a":'.repeat(levels - 1)}{}${'}'.repeat(levels - 1)}`;
const tags = (count: number) =>
  j(Object.fromEntries(Array.from({ length: count }, (_, i) => [`k${i}`, 'v'])));

const SESSION_ROWS: Row[] = [
  ['name with NUL', 'name', j('a\u0000b'), 'refuses'],
  ['name with a lone high surrogate', 'name', j('a\ud800b'), 'refuses'],
  ['name with a lone low surrogate', 'name', j('\udc00'), 'refuses'],
  ['name of 201 characters', 'name', j('n'.repeat(201)), 'refuses'],
  ['name of 200 characters', 'name', j('n'.repeat(200)), 'accepts'],
  ['name of 200 astral characters (400 UTF-16 units)', 'name', j('😀'.repeat(200)), 'accepts'],
  ['name of only spaces', 'name', j('   '), 'refuses'],
  ['name padded with spaces', 'name', j('  Trip  '), 'accepts'],
  ['name that is a number', 'name', '42', 'refuses'],
  ['17 tags', 'metadata_tags', tags(17), 'refuses'],
  ['16 tags', 'metadata_tags', tags(16), 'accepts'],
  ['a tag key of 65 characters', 'metadata_tags', j({ ['k'.repeat(65)]: 'v' }), 'refuses'],
  ['an empty tag key', 'metadata_tags', j({ '': 'v' }), 'refuses'],
  ['a tag value of 513 characters', 'metadata_tags', j({ k: 'v'.repeat(513) }), 'refuses'],
  ['a tag value of 512 characters', 'metadata_tags', j({ k: 'v'.repeat(512) }), 'accepts'],
  ['a tag value that is a number', 'metadata_tags', j({ k: 1 }), 'refuses'],
  ['a tag value that is an object', 'metadata_tags', j({ k: { a: 'b' } }), 'refuses'],
  ['tags as an array', 'metadata_tags', j(['a']), 'refuses'],
  ['a tag value with NUL (JSON escapes it)', 'metadata_tags', j({ k: 'a\u0000' }), 'accepts'],
  ['101 rag ids', 'rag_document_ids', j(Array.from({ length: 101 }, (_, i) => `d${i}`)), 'refuses'],
  ['100 rag ids', 'rag_document_ids', j(Array.from({ length: 100 }, (_, i) => `d${i}`)), 'accepts'],
  ['an empty rag id', 'rag_document_ids', j(['']), 'refuses'],
  ['a rag id of 201 characters', 'rag_document_ids', j(['d'.repeat(201)]), 'refuses'],
  ['a rag id with NUL', 'rag_document_ids', j(['d\u0000']), 'refuses'],
  ['a rag id with a lone surrogate', 'rag_document_ids', j(['d\udfff']), 'refuses'],
  ['a rag id that is a number', 'rag_document_ids', j([7]), 'refuses'],
  ['rag ids as a string', 'rag_document_ids', j('doc-1'), 'refuses'],
  ['archived as a string', 'archived', j('yes'), 'refuses'],
  ['pinned as null', 'pinned', 'null', 'refuses'],
  ['expires_at in the past', 'expires_at', j('2020-01-01T00:00:00Z'), 'refuses'],
  [
    'expires_at in the future, with an offset',
    'expires_at',
    j('2099-01-01T10:00:00+02:00'),
    'accepts',
  ],
  ['expires_at as epoch milliseconds', 'expires_at', '4102444800000', 'refuses'],
  ['expires_at without a time', 'expires_at', j('2099-01-01'), 'refuses'],
  ['expires_at after the year 9999', 'expires_at', j('+010000-01-01T00:00:00Z'), 'refuses'],
  ['expires_at null', 'expires_at', 'null', 'accepts'],
];

const MESSAGE_ROWS: Row[] = [
  ['content with NUL', 'content', j('a\u0000b'), 'refuses'],
  ['content with a lone high surrogate', 'content', j('end\ud83d'), 'refuses'],
  ['content with a lone low surrogate', 'content', j('\ude00start'), 'refuses'],
  ['content of 100,001 characters', 'content', j('c'.repeat(100_001)), 'refuses'],
  ['content of 100,000 characters', 'content', j('c'.repeat(100_000)), 'accepts'],
  ['empty content', 'content', j(''), 'refuses'],
  ['content of only whitespace (kept verbatim)', 'content', j(' \n\t '), 'accepts'],
  ['content that is an object', 'content', j({ text: 'x' }), 'refuses'],
  ['an unknown role', 'role', j('robot'), 'refuses'],
  ['metadata 17 levels deep', 'metadata', nested(17), 'refuses'],
  ['metadata 16 levels deep', 'metadata', nested(16), 'accepts'],
  // Deeper than a POST body may nest (32) but not an import file (64): both still refuse it.
  ['metadata 40 levels deep', 'metadata', nested(40), 'refuses'],
  // Deeper than an import file may nest too: both refuse before any DTO sees it.
  ['metadata 70 levels deep', 'metadata', nested(70), 'refuses'],
  ['metadata over 16 KiB', 'metadata', j({ blob: 'm'.repeat(16 * 1024) }), 'refuses'],
  ['metadata of exactly 16 KiB', 'metadata', j({ blob: 'm'.repeat(16 * 1024 - 11) }), 'accepts'],
  ['metadata holding 1e400', 'metadata', '{"n":1e400}', 'refuses'],
  ['metadata holding -1e400 in an array', 'metadata', '{"a":[1,-1e400]}', 'refuses'],
  ['metadata holding the largest double', 'metadata', '{"n":1.7976931348623157e308}', 'accepts'],
  ['metadata as an array', 'metadata', '[1]', 'refuses'],
  ['metadata as a string', 'metadata', j('x'), 'refuses'],
  ['metadata holding NUL and a lone surrogate', 'metadata', j({ t: '\u0000\ud800' }), 'accepts'],
  ['null metadata', 'metadata', 'null', 'accepts'],
  ['parent_id null (a root)', 'parent_id', 'null', 'accepts'],
  ['parent_id 0', 'parent_id', '0', 'refuses'],
  ['parent_id as a string', 'parent_id', j('1'), 'refuses'],
  ['parent_id as a fraction', 'parent_id', '1.5', 'refuses'],
  ['parent_id beyond the largest id', 'parent_id', '1000000000000000', 'refuses'],
];

/** The model name is the server's (DEFAULT_MODEL_NAME); an import restores it under the same rule. */
const MODEL_ROWS: [label: string, name: string, verdict: Verdict][] = [
  ['with NUL', 'gpt\u0000x', 'refuses'],
  ['with a lone surrogate', 'gpt\ud800', 'refuses'],
  ['of 201 characters', 'g'.repeat(201), 'refuses'],
  ['of 200 characters', 'g'.repeat(200), 'accepts'],
  ['of 200 astral characters', '🤖'.repeat(200), 'accepts'],
];

/** Stands for the row's value in an object, until `withRaw` puts the raw JSON text in its place. */
const RAW = '__raw_value__';

/** JSON text of `value` with the `RAW` placeholder replaced by raw JSON text. */
function withRaw(value: unknown, json: string): string {
  const text = JSON.stringify(value);
  const placeholder = JSON.stringify(RAW);
  const at = text.indexOf(placeholder);
  if (at === -1) throw new Error('placeholder missing');
  return `${text.slice(0, at)}${json}${text.slice(at + placeholder.length)}`;
}

function exportObject(
  id: string,
  session: Record<string, unknown>,
  message?: Record<string, unknown>,
): Record<string, unknown> {
  return {
    session: {
      id,
      name: 'Imported',
      created_at: '2025-01-01T10:00:00.000Z',
      last_updated_at: '2025-01-01T10:05:00.000Z',
      llm_model_name: 'gpt-x',
      rag_document_ids: null,
      metadata_tags: null,
      message_count: message ? 1 : 0,
      archived: false,
      pinned: false,
      ...session,
    },
    messages: message
      ? [{ timestamp: '2025-01-01T10:01:00.000Z', role: 'user', content: 'hello', ...message }]
      : [],
  };
}

/** The fields a 400 names, or null for a 2xx. */
function outcome(res: request.Response): { status: number; fields: string[] | null } {
  if (res.status >= 200 && res.status < 300) return { status: res.status, fields: null };
  const errors = (res.body?.errors ?? []) as { field: string }[];
  return { status: res.status, fields: errors.map((e) => e.field) };
}

/** True when `name` is `field` or a place inside it (`metadata.a.a`, `rag_document_ids[3]`). */
const names = (name: string, field: string) =>
  name === field || name.startsWith(`${field}.`) || name.startsWith(`${field}[`);

describe('Import refuses exactly what POST refuses (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp();
  });

  afterAll(async () => {
    await t.close();
  });

  beforeEach(async () => {
    await resetDatabase(t.db);
  });

  async function post(path: string, body: string) {
    return request(t.http).post(path).set('Content-Type', 'application/json').send(body);
  }

  async function rows(): Promise<[number, number]> {
    return [await countRows(t.db, 'sessions'), await countRows(t.db, 'chat_messages')];
  }

  /** Both answers agree with the verdict; a refusal names the field in both and stores nothing. */
  async function expectAgreement(
    verdict: Verdict,
    api: request.Response,
    apiField: string,
    imported: request.Response,
    importField: string,
    rowsBefore: [number, number],
  ): Promise<void> {
    const a = outcome(api);
    const i = outcome(imported);
    if (verdict === 'accepts') {
      expect({ api: a.status, import: i.status }).toEqual({ api: 201, import: 201 });
      expect(imported.body).toMatchObject({ imported: 1, skipped: 0 });
      return;
    }
    expect({ api: a.status, import: i.status }).toEqual({ api: 400, import: 400 });
    expect({ api: a.fields?.some((f) => names(f, apiField)) }).toEqual({ api: true });
    expect({ import: i.fields?.some((f) => names(f, importField)) }).toEqual({ import: true });
    await expect(rows()).resolves.toEqual(rowsBefore);
  }

  describe('session fields: POST /api/v1/sessions and an imported session', () => {
    it.each(SESSION_ROWS)('%s', async (_label, field, json, verdict) => {
      const api = await post('/api/v1/sessions', withRaw({ [field]: RAW }, json));
      if (api.status === 201) await resetDatabase(t.db);
      const id = randomUUID();
      const imported = await post(
        '/api/v1/import',
        withRaw(exportObject(id, { [field]: RAW }), json),
      );
      await expectAgreement(verdict, api, field, imported, `session.${field}`, [0, 0]);
      if (verdict === 'accepts') {
        // Both store the same value (the name trimmed by both).
        const restored = await request(t.http).get(`/api/v1/sessions/${id}`);
        expect(restored.body[field]).toEqual(api.body[field]);
      }
    });
  });

  describe('message fields: POST …/messages and an imported message', () => {
    it.each(MESSAGE_ROWS)('%s', async (_label, field, json, verdict) => {
      const session = await request(t.http).post('/api/v1/sessions').send({});
      const base = field === 'content' ? {} : { content: 'hello' };
      const api = await post(
        `/api/v1/sessions/${session.body.id}/messages`,
        withRaw({ ...base, [field]: RAW }, json),
      );
      await request(t.http).delete(`/api/v1/sessions/${session.body.id}`).expect(204);
      const id = randomUUID();
      const imported = await post(
        '/api/v1/import',
        withRaw(exportObject(id, {}, { [field]: RAW }), json),
      );
      await expectAgreement(verdict, api, field, imported, `messages[0].${field}`, [0, 0]);
      if (verdict === 'accepts') {
        const restored = await request(t.http).get(`/api/v1/sessions/${id}/messages`);
        expect(restored.body).toHaveLength(1);
        expect(restored.body[0][field]).toEqual(api.body[field]);
      }
    });
  });

  describe('llm_model_name: the rule DEFAULT_MODEL_NAME is held to, and no client may set it', () => {
    it.each(MODEL_ROWS)('a model name %s', async (_label, name, verdict) => {
      const api = await post('/api/v1/sessions', j({ llm_model_name: name }));
      expect({ status: api.status, fields: outcome(api).fields }).toEqual({
        status: 400,
        fields: ['llm_model_name'],
      });
      const configured = (() => {
        try {
          validateEnv({ DEFAULT_MODEL_NAME: name });
          return 'accepts';
        } catch (error) {
          expect((error as Error).message).toMatch(/^Invalid configuration: DEFAULT_MODEL_NAME /);
          return 'refuses';
        }
      })();
      const id = randomUUID();
      const imported = await post('/api/v1/import', j(exportObject(id, { llm_model_name: name })));
      expect({ configured, imported: imported.status }).toEqual({
        configured: verdict,
        imported: verdict === 'accepts' ? 201 : 400,
      });
      if (verdict === 'refuses') {
        expect(outcome(imported).fields).toEqual(['session.llm_model_name']);
        await expect(rows()).resolves.toEqual([0, 0]);
      } else {
        const restored = await request(t.http).get(`/api/v1/sessions/${id}`);
        expect(restored.body.llm_model_name).toBe(name);
      }
    });
  });
});
