import request from 'supertest';
import {
  badRequest,
  createSession,
  ISO_MS,
  readSession,
  SessionBody,
  SESSIONS,
  spreadActivity,
  UNKNOWN_ID,
  UUID_V4,
  sessionNotFound,
} from './helpers/api';
import { countRows, createTestApp, resetDatabase, TestApp } from './helpers/test-app';

function tags(n: number, keyLength = 8, valueLength = 8): Record<string, string> {
  return Object.fromEntries(
    Array.from({ length: n }, (_, i) => [
      `${i}`.padStart(2, '0').padEnd(keyLength, 'k'),
      'v'.repeat(valueLength),
    ]),
  );
}

/** Bad `metadata_tags` values, each with what the 400's message must mention. */
const BAD_TAGS: [string, unknown, string][] = [
  ['17 keys', tags(17), '16'],
  ['a key of 65 characters', { ['k'.repeat(65)]: 'v' }, 'k'.repeat(65)],
  ['an empty key', { ok: 'v', '': 'v' }, "''"],
  ['a value of 513 characters', { long_value: 'v'.repeat(513) }, 'long_value'],
  ['a number value', { count: 3 }, 'count'],
  ['a null value', { nothing: null }, 'nothing'],
  ['a boolean value', { flag: true }, 'flag'],
  ['an object value', { nested: { a: 'b' } }, 'nested'],
  ['an array value', { list: ['a'] }, 'list'],
  ['a string', 'project=travel', 'metadata_tags'],
  ['an array', [['project', 'travel']], 'metadata_tags'],
  ['a number', 42, 'metadata_tags'],
  ['a boolean', true, 'metadata_tags'],
];

describe('Sessions (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp({ DEFAULT_MODEL_NAME: 'gpt-test', APP_NAME: 'Test Chat' });
  });
  afterAll(() => t.close());
  beforeEach(() => resetDatabase(t.db));

  const create = (body: object = {}) => createSession(t.http, body);
  const read = (id: string) => readSession(t.http, id);

  async function listIds(query = ''): Promise<string[]> {
    const res = await request(t.http).get(`${SESSIONS}?limit=1000${query}`);
    expect(res.status).toBe(200);
    return (res.body as SessionBody[]).map((s) => s.id);
  }

  describe('GET /', () => {
    it('reports the app as running', async () => {
      const res = await request(t.http).get('/');
      expect({ status: res.status, body: res.body }).toEqual({
        status: 200,
        body: {
          message: 'Welcome to the Test Chat!',
          status: 'running',
          timestamp: expect.stringMatching(ISO_MS),
        },
      });
    });
  });

  describe('POST /api/v1/sessions', () => {
    it('creates a session from an empty body with the contract defaults', async () => {
      const res = await request(t.http).post('/api/v1/sessions').send({});
      expect(res.status).toBe(201);
      expect(res.body).toEqual({
        id: expect.stringMatching(UUID_V4),
        name: null,
        created_at: expect.stringMatching(ISO_MS),
        last_updated_at: res.body.created_at,
        llm_model_name: 'gpt-test',
        rag_document_ids: null,
        metadata_tags: null,
        message_count: 0,
        archived: false,
        pinned: false,
        current_message_id: null,
        forked_from: null,
        expires_at: null,
      });
      expect(Object.keys(res.body)).toEqual([
        'id',
        'name',
        'created_at',
        'last_updated_at',
        'llm_model_name',
        'rag_document_ids',
        'metadata_tags',
        'message_count',
        'archived',
        'pinned',
        'current_message_id',
        'forked_from',
        'expires_at',
      ]);
    });

    it('accepts a missing body, and the trailing-slash path', async () => {
      const res = await request(t.http).post('/api/v1/sessions/');
      expect(res.status).toBe(201);
      expect(res.body.name).toBeNull();
    });

    it('stores the trimmed name and the document ids', async () => {
      const res = await request(t.http)
        .post('/api/v1/sessions')
        .send({
          name: '  Trip ✈️ رحلة  ',
          rag_document_ids: ['doc-1', "x'); DROP TABLE sessions;--"],
        });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({
        name: 'Trip ✈️ رحلة',
        rag_document_ids: ['doc-1', "x'); DROP TABLE sessions;--"],
      });
      const read = await request(t.http).get(`/api/v1/sessions/${res.body.id}`);
      expect(read.body).toEqual(res.body);
    });

    it('accepts a 200-character name and 100 document ids of 200 characters', async () => {
      const ids = Array.from({ length: 100 }, (_, i) => `${i}`.padEnd(200, 'd'));
      const res = await request(t.http)
        .post('/api/v1/sessions')
        .send({ name: 'n'.repeat(200), rag_document_ids: ids });
      expect(res.status).toBe(201);
      expect(res.body.rag_document_ids).toEqual(ids);
    });

    it.each([
      [{ name: '' }, 'name'],
      [{ name: '   ' }, 'name'],
      [{ name: 'n'.repeat(201) }, 'name'],
      [{ name: 42 }, 'name'],
      [{ name: 'nul \u0000 inside' }, 'name'],
      [{ rag_document_ids: 'doc-1' }, 'rag_document_ids'],
      [{ rag_document_ids: [''] }, 'rag_document_ids'],
      [{ rag_document_ids: ['d'.repeat(201)] }, 'rag_document_ids'],
      [{ rag_document_ids: [1] }, 'rag_document_ids'],
      [{ rag_document_ids: Array.from({ length: 101 }, (_, i) => `d${i}`) }, 'rag_document_ids'],
      [{ llm_model_name: 'x' }, 'llm_model_name'],
      [{ id: UNKNOWN_ID }, 'id'],
    ])('rejects %j with a 400 naming %s, and stores nothing', async (body, field) => {
      const res = await request(t.http).post('/api/v1/sessions').send(body);
      expect(res.status).toBe(400);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.body).toEqual({
        type: 'about:blank',
        title: 'Bad Request',
        status: 400,
        detail: expect.any(String),
        instance: '/api/v1/sessions',
        errors: expect.arrayContaining([{ field, message: expect.any(String) }]),
      });
      const list = await request(t.http).get('/api/v1/sessions');
      expect(list.body).toEqual([]);
    });

    it('names every bad field at once', async () => {
      const res = await request(t.http)
        .post('/api/v1/sessions')
        .send({ name: '', rag_document_ids: 'x', extra: true });
      expect(res.status).toBe(400);
      expect(res.body.errors.map((e: { field: string }) => e.field).sort()).toEqual([
        'extra',
        'name',
        'rag_document_ids',
      ]);
    });
    it('accepts metadata_tags, archived and pinned, and reads them back', async () => {
      const res = await request(t.http)
        .post(SESSIONS)
        .send({
          name: 'Tagged',
          metadata_tags: { project: 'travel', lang: 'en', 'key with spaces & ünï': '✓ 😀' },
          archived: true,
          pinned: true,
        });
      expect({ status: res.status, body: res.body }).toEqual({
        status: 201,
        body: {
          id: expect.stringMatching(UUID_V4),
          name: 'Tagged',
          created_at: expect.stringMatching(ISO_MS),
          last_updated_at: res.body.created_at,
          llm_model_name: 'gpt-test',
          rag_document_ids: null,
          metadata_tags: { project: 'travel', lang: 'en', 'key with spaces & ünï': '✓ 😀' },
          message_count: 0,
          archived: true,
          pinned: true,
          current_message_id: null,
          forked_from: null,
          expires_at: null,
        },
      });
      await expect(read(res.body.id)).resolves.toEqual(res.body);
    });

    it('defaults metadata_tags to null and both flags to false, and accepts them given explicitly', async () => {
      const defaults = await create({});
      expect(defaults).toMatchObject({ metadata_tags: null, archived: false, pinned: false });
      const explicit = await create({ metadata_tags: null, archived: false, pinned: false });
      expect(explicit).toMatchObject({ metadata_tags: null, archived: false, pinned: false });
      const empty = await create({ metadata_tags: {} });
      expect(empty.metadata_tags).toEqual({});
      await expect(read(empty.id)).resolves.toEqual(empty);
    });

    it('accepts 16 tags with 64-character keys and 512-character values', async () => {
      const metadata_tags = tags(16, 64, 512);
      const session = await create({ metadata_tags });
      expect(session.metadata_tags).toEqual(metadata_tags);
      await expect(read(session.id)).resolves.toEqual(session);
    });

    it.each([
      ['archived', null],
      ['archived', 'true'],
      ['archived', 1],
      ['archived', 0],
      ['archived', {}],
      ['pinned', null],
      ['pinned', 'false'],
      ['pinned', 1],
      ['pinned', []],
    ])('rejects %s = %j with a 400 naming the field, and stores nothing', async (field, value) => {
      const res = await request(t.http)
        .post(SESSIONS)
        .send({ [field]: value });
      expect({ status: res.status, body: res.body }).toEqual({
        status: 400,
        body: badRequest(SESSIONS, [{ field, message: expect.stringContaining(field) }]),
      });
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(await countRows(t.db, 'sessions')).toBe(0);
    });

    it.each(BAD_TAGS)(
      'rejects metadata_tags with %s: 400 naming the field and %s, stores nothing',
      async (_, metadata_tags, mentioned) => {
        const res = await request(t.http).post(SESSIONS).send({ metadata_tags });
        expect({ status: res.status, body: res.body }).toEqual({
          status: 400,
          body: badRequest(SESSIONS, [
            { field: 'metadata_tags', message: expect.stringContaining(mentioned) },
          ]),
        });
        expect(await countRows(t.db, 'sessions')).toBe(0);
      },
    );
  });

  describe('GET /api/v1/sessions/:id', () => {
    it('returns the session', async () => {
      const created = await request(t.http).post('/api/v1/sessions').send({ name: 'a' });
      const res = await request(t.http).get(`/api/v1/sessions/${created.body.id}/`);
      expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: created.body });
    });

    it.each([UNKNOWN_ID, 'not-a-uuid', "1' OR '1'='1", '%F0%9F%98%80'])(
      'answers 404 for unknown id %s',
      async (id) => {
        const res = await request(t.http).get(`/api/v1/sessions/${id}`);
        expect(res.status).toBe(404);
        expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
        expect(res.body).toEqual({
          type: 'about:blank',
          title: 'Not Found',
          status: 404,
          detail: expect.stringContaining('not found'),
          instance: expect.stringMatching(/^\/api\/v1\/sessions\//),
        });
      },
    );
  });

  describe('GET /api/v1/sessions', () => {
    async function createSessions(n: number): Promise<string[]> {
      const ids: string[] = [];
      for (let i = 0; i < n; i++) {
        const res = await request(t.http)
          .post('/api/v1/sessions')
          .send({ name: `s${i}` });
        ids.push(res.body.id);
      }
      return ids;
    }

    it('lists newest activity first, with X-Total-Count', async () => {
      const [a, b, c] = await createSessions(3);
      // Activity on the oldest session moves it to the front.
      await request(t.http).post(`/api/v1/sessions/${a}/messages`).send({ content: 'hi' });
      const res = await request(t.http).get('/api/v1/sessions');
      expect(res.status).toBe(200);
      expect(res.headers['x-total-count']).toBe('3');
      expect(res.body.map((s: { id: string }) => s.id)).toEqual([a, c, b]);
      expect(res.body[0].message_count).toBe(1);
    });

    it('breaks ties by newest created_at, then id', async () => {
      const ids = await createSessions(3);
      // Force identical timestamps straight in the database.
      await t.db.write((m) =>
        m.query('UPDATE "sessions" SET "last_updated_at" = 1000, "created_at" = 500'),
      );
      const res = await request(t.http).get('/api/v1/sessions');
      expect(res.body.map((s: { id: string }) => s.id)).toEqual([...ids].sort().reverse());
    });

    it('pages with skip and limit; X-Total-Count ignores them', async () => {
      await createSessions(5);
      const all = await request(t.http).get('/api/v1/sessions');
      const page = await request(t.http).get('/api/v1/sessions/?skip=1&limit=2');
      expect(page.headers['x-total-count']).toBe('5');
      expect(page.body).toEqual(all.body.slice(1, 3));
      const past = await request(t.http).get('/api/v1/sessions?skip=10');
      expect({
        status: past.status,
        body: past.body,
        total: past.headers['x-total-count'],
      }).toEqual({
        status: 200,
        body: [],
        total: '5',
      });
    });

    it('defaults to 50 per page', async () => {
      await createSessions(51);
      const res = await request(t.http).get('/api/v1/sessions');
      expect(res.body).toHaveLength(50);
      expect(res.headers['x-total-count']).toBe('51');
    });

    it.each([
      'skip=-1',
      'skip=abc',
      'skip=1.5',
      'skip=',
      'limit=0',
      'limit=1001',
      'limit=-5',
      'limit=ten',
      'limit=1e2',
      'skip=1&skip=2',
      'skip=99999999999999999999',
    ])('rejects %s with a 400', async (qs) => {
      const res = await request(t.http).get(`/api/v1/sessions?${qs}`);
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({
        status: 400,
        errors: [{ field: qs.split('=')[0], message: expect.any(String) }],
      });
    });

    it('accepts limit=1000 and ignores unknown query parameters', async () => {
      await createSessions(2);
      const res = await request(t.http).get('/api/v1/sessions?limit=1000&_=123');
      expect(res.status).toBe(200);
      expect(res.body).toHaveLength(2);
    });
  });

  describe('GET /api/v1/sessions?archived=…&pinned=…', () => {
    /** Four sessions, one of each kind, oldest first: plain, pinned, archived, archived and pinned. */
    async function oneOfEach(): Promise<Record<string, SessionBody>> {
      const plain = await create({ name: 'plain' });
      const pinned = await create({ name: 'pinned', pinned: true });
      const archived = await create({ name: 'archived', archived: true });
      const both = await create({ name: 'both', archived: true, pinned: true });
      await spreadActivity(t.db, [plain.id, pinned.id, archived.id, both.id]);
      return {
        plain: await read(plain.id),
        pinned: await read(pinned.id),
        archived: await read(archived.id),
        both: await read(both.id),
      };
    }

    it.each([
      ['', ['pinned', 'plain']],
      ['archived=false', ['pinned', 'plain']],
      ['archived=true', ['both', 'archived']],
      ['archived=any', ['both', 'archived', 'pinned', 'plain']],
      ['pinned=true', ['pinned']],
      ['pinned=false', ['plain']],
      ['archived=false&pinned=true', ['pinned']],
      ['archived=false&pinned=false', ['plain']],
      ['archived=true&pinned=true', ['both']],
      ['archived=true&pinned=false', ['archived']],
      ['archived=any&pinned=true', ['both', 'pinned']],
      ['archived=any&pinned=false', ['archived', 'plain']],
    ])('?%s lists %j, newest first, with X-Total-Count', async (query, names) => {
      const sessions = await oneOfEach();
      const res = await request(t.http).get(`${SESSIONS}?${query}`);
      expect({
        status: res.status,
        total: res.headers['x-total-count'],
        body: res.body,
      }).toEqual({
        status: 200,
        total: String(names.length),
        body: names.map((name) => sessions[name]),
      });
    });

    it('hides archived sessions from the list only: they stay reachable and take messages', async () => {
      const archived = await create({ archived: true });
      const byId = await request(t.http).get(`${SESSIONS}/${archived.id}`);
      expect({ status: byId.status, body: byId.body }).toEqual({ status: 200, body: archived });
      const message = await request(t.http)
        .post(`${SESSIONS}/${archived.id}/messages`)
        .send({ content: 'still here' });
      expect(message.status).toBe(201);
      // New activity does not bring it back to the default list.
      expect(await read(archived.id)).toMatchObject({ archived: true, message_count: 1 });
      await expect(listIds()).resolves.toEqual([]);
      await expect(listIds('&archived=true')).resolves.toEqual([archived.id]);
    });

    it('counts what the filters match in X-Total-Count, ignoring skip and limit', async () => {
      await oneOfEach();
      for (let i = 0; i < 3; i++) await create({ archived: true });
      const cases: [string, string, number][] = [
        ['archived=any&limit=1', '7', 1],
        ['archived=true&limit=2&skip=1', '5', 2],
        ['archived=true&skip=10', '5', 0],
        ['archived=true&pinned=false&limit=1', '4', 1],
        ['limit=1', '2', 1],
        ['pinned=true&skip=1', '1', 0],
      ];
      for (const [query, total, length] of cases) {
        const res = await request(t.http).get(`${SESSIONS}?${query}`);
        expect({ query, status: res.status, total: res.headers['x-total-count'] }).toEqual({
          query,
          status: 200,
          total,
        });
        expect(res.body).toHaveLength(length);
      }
    });

    it('works with a trailing slash', async () => {
      const sessions = await oneOfEach();
      const res = await request(t.http).get(`${SESSIONS}/?archived=true&pinned=true`);
      expect({ status: res.status, body: res.body }).toEqual({
        status: 200,
        body: [sessions.both],
      });
    });

    it.each([
      'archived=yes',
      'archived=TRUE',
      'archived=1',
      'archived=all',
      'archived=',
      'archived=true&archived=false',
      'pinned=any',
      'pinned=1',
      'pinned=yes',
      'pinned=',
      'pinned=True',
      'pinned=true&pinned=true',
    ])('rejects %s with a 400 naming the parameter', async (query) => {
      await oneOfEach();
      const field = query.split('=')[0];
      const res = await request(t.http).get(`${SESSIONS}?${query}`);
      expect({ status: res.status, body: res.body }).toEqual({
        status: 400,
        body: badRequest(SESSIONS, [{ field, message: expect.stringContaining(field) }]),
      });
    });
  });

  describe('PATCH /api/v1/sessions/:id', () => {
    const FULL = {
      name: 'Original',
      rag_document_ids: ['doc-1', 'doc-2'],
      metadata_tags: { project: 'travel', lang: 'en' },
    };

    it.each([
      [{ name: 'Renamed' }],
      [{ rag_document_ids: ['doc-3'] }],
      [{ metadata_tags: { team: 'blue' } }],
      [{ archived: true }],
      [{ pinned: true }],
      [{ name: 'All', rag_document_ids: [], metadata_tags: {}, archived: true, pinned: true }],
    ])('given %j, replaces exactly those fields and leaves the others', async (patch) => {
      const session = await create(FULL);
      const res = await request(t.http).patch(`${SESSIONS}/${session.id}`).send(patch);
      expect({ status: res.status, body: res.body }).toEqual({
        status: 200,
        body: { ...session, ...patch },
      });
      await expect(read(session.id)).resolves.toEqual({ ...session, ...patch });
    });

    it('replaces metadata_tags whole, without merging key by key', async () => {
      const session = await create({ metadata_tags: { a: '1', b: '2' } });
      const res = await request(t.http)
        .patch(`${SESSIONS}/${session.id}`)
        .send({ metadata_tags: { b: 'changed', c: '3' } });
      expect(res.status).toBe(200);
      expect(res.body.metadata_tags).toEqual({ b: 'changed', c: '3' });
      expect((await read(session.id)).metadata_tags).toEqual({ b: 'changed', c: '3' });
    });

    it.each(['constructor', 'toString', 'hasOwnProperty', 'valueOf', '__proto__'])(
      'stores a tag named %s exactly as sent, as POST does',
      async (key) => {
        // Raw JSON, so that "__proto__" arrives as an ordinary key.
        const body = JSON.stringify({ metadata_tags: { a: 'b' } }).replace(
          '"a"',
          JSON.stringify(key),
        );
        const expected = `{${JSON.stringify(key)}:"b"}`;
        const created = await request(t.http)
          .post(SESSIONS)
          .set('Content-Type', 'application/json')
          .send(body);
        expect({
          status: created.status,
          tags: JSON.stringify(created.body.metadata_tags),
        }).toEqual({ status: 201, tags: expected });
        const session = await create({});
        const res = await request(t.http)
          .patch(`${SESSIONS}/${session.id}`)
          .set('Content-Type', 'application/json')
          .send(body);
        expect({ status: res.status, tags: JSON.stringify(res.body.metadata_tags) }).toEqual({
          status: 200,
          tags: expected,
        });
        expect(JSON.stringify((await read(session.id)).metadata_tags)).toBe(expected);
      },
    );

    it('clears name, rag_document_ids and metadata_tags with null', async () => {
      const session = await create(FULL);
      const res = await request(t.http)
        .patch(`${SESSIONS}/${session.id}`)
        .send({ name: null, rag_document_ids: null, metadata_tags: null });
      const cleared = { ...session, name: null, rag_document_ids: null, metadata_tags: null };
      expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: cleared });
      await expect(read(session.id)).resolves.toEqual(cleared);
    });

    it('flips archived and pinned back to false', async () => {
      const session = await create({ archived: true, pinned: true });
      const res = await request(t.http)
        .patch(`${SESSIONS}/${session.id}`)
        .send({ archived: false, pinned: false });
      expect(res.body).toEqual({ ...session, archived: false, pinned: false });
    });

    it.each([['archived'], ['pinned']])(
      'rejects %s = null with a 400 (the flag is not nullable) and changes nothing',
      async (field) => {
        const session = await create({ archived: true, pinned: true });
        const res = await request(t.http)
          .patch(`${SESSIONS}/${session.id}`)
          .send({ [field]: null });
        expect({ status: res.status, body: res.body }).toEqual({
          status: 400,
          body: badRequest(`${SESSIONS}/${session.id}`, [
            { field, message: expect.stringContaining(field) },
          ]),
        });
        await expect(read(session.id)).resolves.toEqual(session);
      },
    );

    it.each([
      [{ name: '' }, 'name'],
      [{ name: '   ' }, 'name'],
      [{ name: 'n'.repeat(201) }, 'name'],
      [{ name: 7 }, 'name'],
      [{ rag_document_ids: 'doc-1' }, 'rag_document_ids'],
      [{ rag_document_ids: [''] }, 'rag_document_ids'],
      [{ rag_document_ids: Array.from({ length: 101 }, (_, i) => `d${i}`) }, 'rag_document_ids'],
      [{ archived: 'true' }, 'archived'],
      [{ pinned: 1 }, 'pinned'],
      [{ metadata_tags: tags(17) }, 'metadata_tags'],
      [{ metadata_tags: { ['k'.repeat(65)]: 'v' } }, 'metadata_tags'],
      [{ metadata_tags: { k: 'v'.repeat(513) } }, 'metadata_tags'],
      [{ metadata_tags: { k: 1 } }, 'metadata_tags'],
      [{ metadata_tags: 'x' }, 'metadata_tags'],
    ])('rejects %j with a 400 naming %s, and changes nothing', async (patch, field) => {
      const session = await create(FULL);
      const res = await request(t.http).patch(`${SESSIONS}/${session.id}`).send(patch);
      expect({ status: res.status, body: res.body }).toEqual({
        status: 400,
        body: badRequest(`${SESSIONS}/${session.id}`, [{ field, message: expect.any(String) }]),
      });
      await expect(read(session.id)).resolves.toEqual(session);
    });

    it.each(BAD_TAGS)(
      'names the offending tag in the 400 for %s',
      async (_, metadata_tags, mentioned) => {
        const session = await create({});
        const res = await request(t.http)
          .patch(`${SESSIONS}/${session.id}`)
          .send({ metadata_tags });
        expect({ status: res.status, errors: res.body.errors }).toEqual({
          status: 400,
          errors: [{ field: 'metadata_tags', message: expect.stringContaining(mentioned) }],
        });
        await expect(read(session.id)).resolves.toEqual(session);
      },
    );

    it('trims the new name', async () => {
      const session = await create({});
      const res = await request(t.http)
        .patch(`${SESSIONS}/${session.id}`)
        .send({ name: '  Trimmed  ' });
      expect(res.body).toEqual({ ...session, name: 'Trimmed' });
    });

    it('treats {} and a missing body as a no-op that returns the session', async () => {
      const session = await create(FULL);
      const empty = await request(t.http).patch(`${SESSIONS}/${session.id}`).send({});
      expect({ status: empty.status, body: empty.body }).toEqual({ status: 200, body: session });
      const none = await request(t.http).patch(`${SESSIONS}/${session.id}`);
      expect({ status: none.status, body: none.body }).toEqual({ status: 200, body: session });
      await expect(read(session.id)).resolves.toEqual(session);
    });

    it.each([
      [{ id: UNKNOWN_ID }, 'id'],
      [{ llm_model_name: 'other' }, 'llm_model_name'],
      [{ message_count: 9 }, 'message_count'],
      [{ created_at: '2020-01-01T00:00:00.000Z' }, 'created_at'],
      [{ last_updated_at: '2030-01-01T00:00:00.000Z' }, 'last_updated_at'],
      [{ name: 'ok', colour: 'blue' }, 'colour'],
    ])(
      'rejects the unknown or read-only field in %j with a 400, changing nothing',
      async (patch, field) => {
        const session = await create(FULL);
        const res = await request(t.http).patch(`${SESSIONS}/${session.id}`).send(patch);
        expect({ status: res.status, body: res.body }).toEqual({
          status: 400,
          body: badRequest(`${SESSIONS}/${session.id}`, [{ field, message: expect.any(String) }]),
        });
        await expect(read(session.id)).resolves.toEqual(session);
      },
    );

    it.each([UNKNOWN_ID, 'not-a-uuid'])('answers 404 for unknown id %s', async (id) => {
      const res = await request(t.http).patch(`${SESSIONS}/${id}`).send({ name: 'x' });
      expect({ status: res.status, body: res.body }).toEqual({
        status: 404,
        body: sessionNotFound(id, `${SESSIONS}/${id}`),
      });
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(await countRows(t.db, 'sessions')).toBe(0);
    });

    it('answers 404 for a deleted session', async () => {
      const session = await create({});
      await request(t.http).delete(`${SESSIONS}/${session.id}`).expect(204);
      const res = await request(t.http).patch(`${SESSIONS}/${session.id}`).send({});
      expect(res.status).toBe(404);
    });

    it('works with a trailing slash', async () => {
      const session = await create({});
      const res = await request(t.http).patch(`${SESSIONS}/${session.id}/`).send({ pinned: true });
      expect({ status: res.status, body: res.body }).toEqual({
        status: 200,
        body: { ...session, pinned: true },
      });
    });

    it('never moves last_updated_at, created_at or message_count', async () => {
      const session = await create({});
      await request(t.http)
        .post(`${SESSIONS}/${session.id}/messages`)
        .send({ content: 'hello' })
        .expect(201);
      const active = await read(session.id);
      // Let the clock move on, so a PATCH that stamped "now" would show.
      await new Promise((resolve) => setTimeout(resolve, 5));
      for (const patch of [
        { name: 'a' },
        { metadata_tags: { x: 'y' } },
        { archived: true },
        { archived: false, pinned: true },
        {},
      ]) {
        const res = await request(t.http).patch(`${SESSIONS}/${session.id}`).send(patch);
        expect(res.status).toBe(200);
        expect({
          created_at: res.body.created_at,
          last_updated_at: res.body.last_updated_at,
          message_count: res.body.message_count,
        }).toEqual({
          created_at: active.created_at,
          last_updated_at: active.last_updated_at,
          message_count: 1,
        });
      }
      const [row]: { last_updated_at: number | string }[] = await t.db.read((m) =>
        m.query(t.db.sql('SELECT "last_updated_at" FROM "sessions" WHERE "id" = ?'), [session.id]),
      );
      expect(new Date(Number(row.last_updated_at)).toISOString()).toBe(active.last_updated_at);
    });

    it('never changes the list order, whichever session and field it touches', async () => {
      const ids = [(await create({})).id, (await create({})).id, (await create({})).id];
      await spreadActivity(t.db, ids);
      const order = await listIds();
      expect(order).toEqual([...ids].reverse());
      for (const id of ids) {
        await request(t.http)
          .patch(`${SESSIONS}/${id}`)
          .send({ name: `renamed ${id}`, pinned: true, metadata_tags: { k: 'v' } })
          .expect(200);
        await expect(listIds()).resolves.toEqual(order);
      }
      // Archiving and restoring the newest keeps its place too.
      await request(t.http).patch(`${SESSIONS}/${ids[2]}`).send({ archived: true }).expect(200);
      await expect(listIds()).resolves.toEqual(order.slice(1));
      await expect(listIds('&archived=any')).resolves.toEqual(order);
      await request(t.http).patch(`${SESSIONS}/${ids[2]}`).send({ archived: false }).expect(200);
      await expect(listIds()).resolves.toEqual(order);
    });
  });

  describe('DELETE /api/v1/sessions/:id', () => {
    it('removes the session and all its messages', async () => {
      const { body: s } = await request(t.http).post('/api/v1/sessions').send({});
      const { body: other } = await request(t.http).post('/api/v1/sessions').send({});
      for (const content of ['one', 'two']) {
        await request(t.http).post(`/api/v1/sessions/${s.id}/messages`).send({ content });
      }
      await request(t.http).post(`/api/v1/sessions/${other.id}/messages`).send({ content: 'keep' });

      const res = await request(t.http).delete(`/api/v1/sessions/${s.id}`);
      expect({ status: res.status, text: res.text }).toEqual({ status: 204, text: '' });
      expect((await request(t.http).get(`/api/v1/sessions/${s.id}`)).status).toBe(404);
      expect((await request(t.http).get(`/api/v1/sessions/${s.id}/messages`)).status).toBe(404);
      const rows: unknown[] = await t.db.read((m) =>
        m.query(t.db.sql('SELECT "id" FROM "chat_messages" WHERE "session_id" = ?'), [s.id]),
      );
      expect(rows).toEqual([]);
      const kept = await request(t.http).get(`/api/v1/sessions/${other.id}/messages`);
      expect(kept.body.map((m: { content: string }) => m.content)).toEqual(['keep']);
    });

    it('answers 404 for an unknown session, and again for a deleted one', async () => {
      const { body: s } = await request(t.http).post('/api/v1/sessions').send({});
      expect((await request(t.http).delete(`/api/v1/sessions/${s.id}/`)).status).toBe(204);
      const again = await request(t.http).delete(`/api/v1/sessions/${s.id}`);
      expect(again.status).toBe(404);
      expect(again.body.detail).toBe(`Session with ID '${s.id}' not found.`);
    });
  });
});
