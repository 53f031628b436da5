import request from 'supertest';
import { createTestApp, resetDatabase, TestApp } from './helpers/test-app';

const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('Sessions (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp({ DEFAULT_MODEL_NAME: 'gpt-test', APP_NAME: 'Test Chat' });
  });
  afterAll(() => t.close());
  beforeEach(() => resetDatabase(t.db));

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
      [{ id: '00000000-0000-4000-8000-000000000000' }, 'id'],
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
  });

  describe('GET /api/v1/sessions/:id', () => {
    it('returns the session', async () => {
      const created = await request(t.http).post('/api/v1/sessions').send({ name: 'a' });
      const res = await request(t.http).get(`/api/v1/sessions/${created.body.id}/`);
      expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: created.body });
    });

    it.each(['00000000-0000-4000-8000-000000000000', 'not-a-uuid', "1' OR '1'='1", '%F0%9F%98%80'])(
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
