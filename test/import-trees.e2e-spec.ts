import request from 'supertest';
import { ApiKeysService } from '../src/auth/api-keys.service';
import {
  bearer,
  createSession,
  type MessageBody,
  messagesOf,
  postMessage,
  rawText,
  type SessionBody,
  SESSIONS,
} from './helpers/api';
import { freshDatabaseUrl } from './helpers/database-target';
import { invariantViolations } from './helpers/invariants';
import { countRows, createTestApp, resetDatabase, TestApp } from './helpers/test-app';

const IMPORT = '/api/v1/import';
const FUTURE = '2099-06-01T12:00:00.000Z';

interface Exported {
  session: SessionBody;
  messages: MessageBody[];
}

async function exportAll(t: TestApp): Promise<string> {
  const res = await rawText(request(t.http).get('/api/v1/export?archived=any'));
  expect(res.status).toBe(200);
  return res.body as string;
}

function importNdjson(t: TestApp, text: string) {
  return request(t.http).post(IMPORT).set('Content-Type', 'application/x-ndjson').send(text);
}

function importJson(t: TestApp, body: unknown) {
  return request(t.http)
    .post(IMPORT)
    .set('Content-Type', 'application/json')
    .send(JSON.stringify(body));
}

/** Every message id of an export (its own, its parent's, the current one) as its place in the list. */
function byPlace(e: Exported) {
  const place = (id: number | null) =>
    id === null ? null : e.messages.findIndex((m) => m.id === id);
  return {
    session: { ...e.session, id: '', current_message_id: place(e.session.current_message_id) },
    messages: e.messages.map((m) => ({
      ...m,
      id: 0,
      session_id: '',
      parent_id: place(m.parent_id),
    })),
  };
}

/**
 * Export → import → export of whole conversation trees (docs/API.md, v1.2): siblings, several roots,
 * a current message that is not the newest, a fork, expires_at, generated replies' status and
 * generation (an empty failed one too), restored exactly, ids kept when free and renumbered with
 * their links otherwise; and the import's checks of the tree.
 */
describe('Import of conversation trees (e2e)', () => {
  let t: TestApp;
  let tree: SessionBody;
  let fork: SessionBody;
  let empty: SessionBody;
  let m: MessageBody[];
  let original: string;

  beforeAll(async () => {
    t = await createTestApp({ DATABASE_URL: await freshDatabaseUrl('import-trees') });
  });
  afterAll(() => t.close());

  /** A branched session, a fork of it and an empty session with an expiry, straight from the API. */
  beforeEach(async () => {
    await resetDatabase(t.db);
    tree = await createSession(t.http, { name: 'Branches', pinned: true });
    const post = (body: object) => postMessage(t.http, tree.id, body);
    m = [];
    m.push(await post({ content: 'root A' }));
    m.push(await post({ content: 'answer 1', role: 'assistant' }));
    m.push(await post({ content: 'answer 2', role: 'assistant', parent_id: m[0].id }));
    m.push(await post({ content: 'follow-up', parent_id: m[2].id }));
    const gone = await post({ content: 'deleted later' });
    m.push(await post({ content: 'root B', parent_id: null, metadata: { n: 1 } }));
    m.push(await post({ content: 'under root B' }));
    expect((await request(t.http).delete(`${messagesOf(tree.id)}/${gone.id}`)).status).toBe(204);
    // Generated replies, as a build with a language model stores them.
    await t.db.write((q) =>
      q.query(
        t.db.sql(
          `UPDATE "chat_messages" SET "status" = ?, "generation" = ?, "content" = ? WHERE "id" = ?`,
        ),
        [
          'failed',
          JSON.stringify({ model: 'm', finish_reason: null, usage: null, error: 'timed out' }),
          '',
          m[1].id,
        ],
      ),
    );
    await t.db.write((q) =>
      q.query(
        t.db.sql(`UPDATE "chat_messages" SET "status" = ?, "generation" = ? WHERE "id" = ?`),
        [
          'cancelled',
          JSON.stringify({
            model: 'm',
            finish_reason: 'stop',
            usage: { prompt_tokens: 3, completion_tokens: 4 },
            error: null,
          }),
          m[2].id,
        ],
      ),
    );
    const patched = await request(t.http)
      .patch(`${SESSIONS}/${tree.id}`)
      .send({ current_message_id: m[1].id, expires_at: FUTURE });
    expect(patched.body).toMatchObject({ current_message_id: m[1].id, expires_at: FUTURE });
    const forked = await request(t.http)
      .post(`${SESSIONS}/${tree.id}/fork`)
      .send({ message_id: m[3].id, name: 'Fork' });
    expect(forked.status).toBe(201);
    fork = forked.body as SessionBody;
    empty = await createSession(t.http, { name: 'Temporary', expires_at: FUTURE });
    original = await exportAll(t);
  });

  async function deleteAll(): Promise<void> {
    for (const s of [tree, fork, empty]) {
      expect((await request(t.http).delete(`${SESSIONS}/${s.id}`)).status).toBe(204);
    }
  }

  const sortedIds = () => [tree.id, fork.id, empty.id].sort();

  it('exports the tree as the API built it', () => {
    const lines = original
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as Exported);
    const source = lines.find((l) => l.session.id === tree.id)!;
    expect(source.session).toMatchObject({ current_message_id: m[1].id, expires_at: FUTURE });
    expect(source.messages.map((x) => [x.content, x.parent_id, x.status])).toEqual([
      ['root A', null, 'complete'],
      ['', m[0].id, 'failed'],
      ['answer 2', m[0].id, 'cancelled'],
      ['follow-up', m[2].id, 'complete'],
      ['root B', null, 'complete'],
      ['under root B', m[4].id, 'complete'],
    ]);
    const copy = lines.find((l) => l.session.id === fork.id)!;
    expect(copy.session.forked_from).toEqual({ session_id: tree.id, message_id: m[3].id });
  });

  it.each([
    ['NDJSON', (text: string) => text, 'application/x-ndjson'],
    [
      'a JSON array of single-session exports',
      (text: string) => `[${text.trimEnd().split('\n').join(',')}]`,
      'application/json',
    ],
  ])(
    'deleted, then imported from %s: the same ids and the same bytes',
    async (_label, body, type) => {
      await deleteAll();
      await expect(countRows(t.db, 'chat_messages')).resolves.toBe(0);
      const res = await request(t.http).post(IMPORT).set('Content-Type', type).send(body(original));
      expect({ status: res.status, body: res.body }).toEqual({
        status: 201,
        body: {
          imported: 3,
          skipped: 0,
          sessions: sortedIds(),
          message_ids: 'kept',
          renumbered_sessions: [],
        },
      });
      expect(await exportAll(t)).toBe(original);
      await expect(invariantViolations(t.db, { messagesDeleted: true })).resolves.toEqual([]);
      // The same export again creates nothing.
      const again = await request(t.http)
        .post(IMPORT)
        .set('Content-Type', type)
        .send(body(original));
      expect(again.body).toEqual({
        imported: 0,
        skipped: 3,
        sessions: sortedIds(),
        message_ids: 'kept',
        renumbered_sessions: [],
      });
      expect(await exportAll(t)).toBe(original);
    },
  );

  it('imports into a fresh database with the same bytes, and the tree works there', async () => {
    const target = await createTestApp({ DATABASE_URL: await freshDatabaseUrl('import-trees') });
    try {
      const res = await importNdjson(target, original);
      expect(res.body).toEqual({
        imported: 3,
        skipped: 0,
        sessions: sortedIds(),
        message_ids: 'kept',
        renumbered_sessions: [],
      });
      expect(await exportAll(target)).toBe(original);
      for (const format of ['json', 'markdown']) {
        const path = `${SESSIONS}/${tree.id}/export?format=${format}`;
        const [a, b] = await Promise.all([
          rawText(request(t.http).get(path)),
          rawText(request(target.http).get(path)),
        ]);
        expect(b.body).toBe(a.body);
      }
      // The current message is restored, not recomputed: answer 1, not the newest leaf.
      const branch = await request(target.http).get(`${messagesOf(tree.id)}?branch=current`);
      expect(branch.body.map((x: MessageBody) => x.id)).toEqual([m[0].id, m[1].id]);
      expect(branch.body[1].sibling_ids).toEqual([m[1].id, m[2].id]);
      // Appends carry on from the restored current message.
      const next = await postMessage(target.http, tree.id, { content: 'after the import' });
      expect(next.parent_id).toBe(m[1].id);
      expect(next.id).toBeGreaterThan(Math.max(...m.map((x) => x.id), fork.current_message_id!));
    } finally {
      await target.close();
    }
  });

  it('renumbers a session whose ids are taken: its parent links and current message follow', async () => {
    const source = JSON.parse(
      original.split('\n').find((line) => line.includes(`"id":"${tree.id}"`))!,
    ) as Exported;
    const copyId = '44444444-4444-4444-8444-444444444444';
    const copy = {
      session: { ...source.session, id: copyId },
      messages: source.messages.map((x) => ({ ...x, session_id: copyId })),
    };
    const res = await importJson(t, [copy]);
    expect(res.body).toEqual({
      imported: 1,
      skipped: 0,
      sessions: [copyId],
      message_ids: 'renumbered',
      renumbered_sessions: [copyId],
    });
    const stored = (await request(t.http).get(`${SESSIONS}/${copyId}/export`)).body as Exported;
    expect(byPlace(stored)).toEqual(byPlace(source));
    const highest = Math.max(...source.messages.map((x) => x.id), fork.current_message_id!);
    expect(stored.messages.every((x) => x.id > highest)).toBe(true);
    // The original is untouched.
    expect(await exportAll(t)).toContain(original.split('\n').find((l) => l.includes(tree.id))!);
    await expect(invariantViolations(t.db, { messagesDeleted: true })).resolves.toEqual([]);
  });

  it('keeps a current message that is not a leaf, and stores an in-progress reply as cancelled', async () => {
    await deleteAll();
    const source = JSON.parse(
      original.split('\n').find((line) => line.includes(`"id":"${tree.id}"`))!,
    ) as Exported;
    source.session.current_message_id = m[0].id;
    source.messages[3].status = 'in_progress';
    source.messages[3].content = '';
    expect((await importJson(t, source)).status).toBe(201);
    const stored = (await request(t.http).get(`${SESSIONS}/${tree.id}/export`)).body as Exported;
    expect(stored.session.current_message_id).toBe(m[0].id);
    expect(stored.messages[3]).toEqual({ ...source.messages[3], status: 'cancelled' });
  });

  it('imports an export older than v1.2 (no tree fields) as a chain, the newest message current', async () => {
    await deleteAll();
    const source = JSON.parse(
      original.split('\n').find((line) => line.includes(`"id":"${tree.id}"`))!,
    ) as Exported;
    const without = <T extends object>(value: T, keys: string[]) =>
      Object.fromEntries(Object.entries(value).filter(([key]) => !keys.includes(key)));
    const session = without(source.session, ['current_message_id', 'forked_from', 'expires_at']);
    const messages = source.messages.map((x) => without(x, ['parent_id', 'status', 'generation']));
    // The empty failed reply is a posted message in a v1.1 export, where content must not be empty.
    messages[1].content = 'answer 1';
    expect((await importJson(t, { session, messages })).status).toBe(201);
    const stored = (await request(t.http).get(`${SESSIONS}/${tree.id}/export`)).body as Exported;
    const ids = source.messages.map((x) => x.id);
    expect(stored.messages.map((x) => [x.id, x.parent_id, x.status, x.generation])).toEqual(
      ids.map((id, i) => [id, i === 0 ? null : ids[i - 1], 'complete', null]),
    );
    expect(stored.session).toMatchObject({
      current_message_id: ids.at(-1),
      forked_from: null,
      expires_at: null,
    });
  });

  describe('a tree the import refuses (400, nothing stored)', () => {
    let source: Exported;

    beforeEach(async () => {
      source = JSON.parse(
        original.split('\n').find((line) => line.includes(`"id":"${tree.id}"`))!,
      ) as Exported;
      await deleteAll();
    });

    const cases: [string, (e: Exported) => void, string, RegExp][] = [
      [
        'a parent that is not in the session',
        (e) => (e.messages[3].parent_id = 999_999),
        'messages[3].parent_id',
        /names message 999999, which is not a message of this session in the file/,
      ],
      [
        'a parent that is a message of another session of the store',
        (e) => (e.messages[3].parent_id = fork.current_message_id),
        'messages[3].parent_id',
        /which is not a message of this session/,
      ],
      [
        'a message that is its own parent',
        (e) => (e.messages[5].parent_id = e.messages[5].id),
        'messages[5].parent_id',
        /cycle/,
      ],
      [
        'parent links in a cycle',
        (e) => {
          e.messages[0].parent_id = e.messages[3].id;
        },
        'messages[0].parent_id',
        /descends from this message: the parent links form a cycle/,
      ],
      [
        'a parent_id left out where the others give theirs',
        (e) => delete (e.messages[2] as Partial<MessageBody>).parent_id,
        'messages[2].parent_id',
        /must be given/,
      ],
      [
        'a parent_id that is a string',
        (e) => ((e.messages[2] as unknown as Record<string, unknown>).parent_id = '1'),
        'messages[2].parent_id',
        /^session .*: messages\[2\]\.parent_id must be a message id \(an integer\) or null$/,
      ],
      [
        'a current message that is not in the session',
        (e) => (e.session.current_message_id = 999_999),
        'session.current_message_id',
        /names message 999999, which is not a message of this session/,
      ],
      [
        'no current message in a session with messages',
        (e) => (e.session.current_message_id = null),
        'session.current_message_id',
        /it has messages/,
      ],
      [
        'a current message that is a fraction',
        (e) => (e.session.current_message_id = 1.5),
        'session.current_message_id',
        /current_message_id must be a message id of this session \(an integer\)/,
      ],
      [
        'an expires_at in the past',
        (e) => (e.session.expires_at = '2020-01-01T00:00:00.000Z'),
        'session.expires_at',
        /expires_at must be in the future/,
      ],
      [
        'an expires_at that is no date-time',
        (e) => (e.session.expires_at = '2099-01-01'),
        'session.expires_at',
        /expires_at must be an ISO 8601 date-time/,
      ],
      [
        'a forked_from without a message_id',
        (e) => (e.session.forked_from = { session_id: fork.id } as SessionBody['forked_from']),
        'session.forked_from',
        /forked_from must be \{"session_id": a UUID, "message_id": a message id or null\}/,
      ],
      [
        'an unknown status',
        (e) => (e.messages[0].status = 'draft'),
        'messages[0].status',
        /status must be one of complete, in_progress, cancelled, failed/,
      ],
      [
        'a generation of the wrong shape',
        (e) => (e.messages[2].generation = { model: 'm' }),
        'messages[2].generation',
        /generation must be \{"model": string/,
      ],
      [
        'negative token counts',
        (e) =>
          (e.messages[2].generation = {
            model: 'm',
            finish_reason: null,
            usage: { prompt_tokens: -1, completion_tokens: 0 },
            error: null,
          }),
        'messages[2].generation',
        /usage counts must be non-negative integers/,
      ],
      [
        'empty content in a complete message',
        (e) => (e.messages[0].content = ''),
        'messages[0].content',
        /content must be 1 to 100000 characters/,
      ],
    ];

    it.each(cases)('%s', async (_label, mutate, field, message) => {
      mutate(source);
      const json = await importJson(t, [source]);
      const ndjson = await importNdjson(t, JSON.stringify(source));
      for (const [res, prefix] of [
        [json, '[0].'],
        [ndjson, 'line 1: '],
      ] as const) {
        expect({ status: res.status, detail: res.body.detail }).toEqual({
          status: 400,
          detail: expect.stringMatching(/^Nothing was imported: /),
        });
        expect(res.body.errors).toContainEqual({
          field: `${prefix}${field}`,
          message: expect.stringMatching(message),
        });
      }
      await expect(countRows(t.db, 'sessions')).resolves.toBe(0);
      await expect(countRows(t.db, 'chat_messages')).resolves.toBe(0);
    });

    it('refuses a current message in a session without messages', async () => {
      const res = await importJson(t, {
        session: { ...source.session, current_message_id: m[0].id },
        messages: [],
      });
      expect(res.status).toBe(400);
      expect(res.body.errors).toEqual([
        {
          field: 'session.current_message_id',
          message: expect.stringMatching(
            /names message \d+, which is not a message of this session/,
          ),
        },
      ]);
    });

    it('answers POST and import alike for a parent_id that is not an integer', async () => {
      const session = await createSession(t.http);
      const api = await request(t.http)
        .post(messagesOf(session.id))
        .send({ content: 'x', parent_id: 0 });
      source.messages[1].parent_id = 0;
      const imported = await importJson(t, source);
      expect([api.status, imported.status]).toEqual([400, 400]);
      expect(imported.body.errors[0].message).toBe(
        `session ${tree.id}: messages[1].${api.body.errors[0].message}`,
      );
    });
  });
});

describe('Two owners importing the same free message ids at once (e2e)', () => {
  jest.setTimeout(60_000);
  let t: TestApp;
  let alice: string;
  let bob: string;

  beforeAll(async () => {
    t = await createTestApp({ AUTH_MODE: 'api-key', RATE_LIMIT_PER_MINUTE: '0' });
    const keys = t.app.get(ApiKeysService);
    alice = (await keys.create('alice')).key;
    bob = (await keys.create('bob')).key;
  });
  afterAll(() => t.close());

  it('stores each message id once: one keeps them, the other is renumbered or told to retry', async () => {
    // A history whose ids this database issued and freed again (its session was deleted).
    const source = await createSession(t.http, {}, bearer(alice));
    const rows = Array.from({ length: 2000 }, (_, i) => [
      source.id,
      1_000_000 + i,
      'user',
      `m${i}`,
    ]);
    for (let i = 0; i < rows.length; i += 500) {
      const part = rows.slice(i, i + 500);
      await t.db.write((q) =>
        q.query(
          t.db.sql(
            `INSERT INTO "chat_messages" ("session_id", "timestamp", "role", "content") VALUES ${part.map(() => '(?, ?, ?, ?)').join(', ')}`,
          ),
          part.flat(),
        ),
      );
    }
    await t.db.write((q) =>
      q.query(
        t.db.sql(
          `UPDATE "sessions" SET "message_count" = ?, "last_updated_at" = ?, "current_message_id" = (
             SELECT MAX("id") FROM "chat_messages" WHERE "session_id" = ?) WHERE "id" = ?`,
        ),
        [rows.length, 1_000_000 + rows.length, source.id, source.id],
      ),
    );
    const file = (await request(t.http).get(`${SESSIONS}/${source.id}/export`).set(bearer(alice)))
      .body as Exported;
    expect(file.messages).toHaveLength(2000);
    await request(t.http).delete(`${SESSIONS}/${source.id}`).set(bearer(alice)).expect(204);
    const copyId = '55555555-5555-4555-8555-555555555555';
    const copy = {
      session: { ...file.session, id: copyId },
      messages: file.messages.map((x) => ({ ...x, session_id: copyId })),
    };
    const send = (key: string, body: unknown) =>
      request(t.http)
        .post(IMPORT)
        .set(bearer(key))
        .set('Content-Type', 'application/json')
        .send(JSON.stringify(body));
    const answers = await Promise.all([send(alice, file), send(bob, copy)]);
    const statuses = answers.map((res) => res.status).sort();
    expect([
      [201, 201],
      [201, 409],
    ]).toContainEqual(statuses);
    const conflict = answers.find((res) => res.status === 409);
    if (conflict) {
      expect(conflict.body.detail).toMatch(/^Nothing was imported: .*; retry the import\.$/);
      const retried = await send(
        conflict === answers[0] ? alice : bob,
        conflict === answers[0] ? file : copy,
      );
      expect(retried.body).toMatchObject({ imported: 1, message_ids: 'renumbered' });
    }
    // Both are stored now (the imports again skip them); the ids were kept by exactly one.
    const skipped = [await send(alice, file), await send(bob, copy)].map(
      (res) => (res.body as { skipped: number }).skipped,
    );
    expect(skipped).toEqual([1, 1]);
    const stored = await Promise.all([
      request(t.http).get(`${SESSIONS}/${file.session.id}/export`).set(bearer(alice)),
      request(t.http).get(`${SESSIONS}/${copyId}/export`).set(bearer(bob)),
    ]);
    const kept = stored.filter((res) =>
      (res.body as Exported).messages.every((x, i) => x.id === file.messages[i].id),
    );
    expect(kept).toHaveLength(1);
    for (const res of stored)
      expect(byPlace(res.body as Exported).messages).toEqual(byPlace(file).messages);
    await expect(invariantViolations(t.db, { messagesDeleted: true })).resolves.toEqual([]);
  });
});
