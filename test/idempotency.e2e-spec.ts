import { Client } from 'pg';
import request from 'supertest';
import { ApiKeysService } from '../src/auth/api-keys.service';
import {
  IDEMPOTENCY_KEYS_PER_OWNER,
  IDEMPOTENCY_TTL_MS,
  IdempotencyService,
} from '../src/idempotency/idempotency.service';
import { bearer } from './helpers/api';
import { onPostgres } from './helpers/database-target';
import { countRows, createTestApp, resetDatabase, TestApp } from './helpers/test-app';

describe('Idempotency-Key (e2e)', () => {
  let t: TestApp;
  let alice: string;
  let bob: string;

  beforeAll(async () => {
    t = await createTestApp({ AUTH_MODE: 'api-key', RATE_LIMIT_PER_MINUTE: '0' });
  });
  afterAll(() => t.close());
  beforeEach(async () => {
    await resetDatabase(t.db);
    await t.db.write((m) => m.query('DELETE FROM "idempotency_keys"'));
    const keys = t.app.get(ApiKeysService);
    alice = (await keys.create('alice')).key;
    bob = (await keys.create('bob')).key;
  });

  const post = (path: string, key: string, idempotencyKey: string | null, body: object = {}) => {
    const req = request(t.http).post(path).set(bearer(key));
    return (idempotencyKey === null ? req : req.set('Idempotency-Key', idempotencyKey)).send(body);
  };

  describe('POST /api/v1/sessions', () => {
    it('replays the first response for a retry and writes nothing', async () => {
      const first = await post('/api/v1/sessions', alice, 'create-1', { name: 'trip' });
      expect(first.status).toBe(201);
      expect(first.headers['idempotent-replayed']).toBeUndefined();
      for (const path of ['/api/v1/sessions', '/api/v1/sessions/']) {
        const retry = await post(path, alice, 'create-1', { name: 'trip' });
        expect({ status: retry.status, text: retry.text }).toEqual({
          status: 201,
          text: first.text,
        });
        expect(retry.headers['idempotent-replayed']).toBe('true');
      }
      expect(await countRows(t.db, 'sessions')).toBe(1);
    });

    it('answers 422 to the same key with another body, and writes nothing', async () => {
      await post('/api/v1/sessions', alice, 'k', { name: 'one' });
      const other = await post('/api/v1/sessions', alice, 'k', { name: 'two' });
      expect(other.status).toBe(422);
      expect(other.body).toMatchObject({
        status: 422,
        detail: expect.stringContaining('different request body'),
      });
      expect(await countRows(t.db, 'sessions')).toBe(1);
    });

    it('scopes a key to its owner and to the method and path', async () => {
      const mine = await post('/api/v1/sessions', alice, 'shared');
      const theirs = await post('/api/v1/sessions', bob, 'shared');
      expect(theirs.headers['idempotent-replayed']).toBeUndefined();
      expect(theirs.body.id).not.toBe(mine.body.id);
      const message = await post(`/api/v1/sessions/${mine.body.id}/messages`, alice, 'shared', {
        content: 'x',
      });
      expect(message.status).toBe(201);
      expect(message.headers['idempotent-replayed']).toBeUndefined();
      expect(await countRows(t.db, 'sessions')).toBe(2);
    });

    it('never writes twice for a burst of retries', async () => {
      const replies = await Promise.all(
        Array.from({ length: 6 }, () => post('/api/v1/sessions', alice, 'burst', { name: 'b' })),
      );
      const statuses = replies.map((r) => r.status).sort();
      expect(statuses).toContain(201);
      expect(statuses.filter((s) => s !== 201 && s !== 409)).toEqual([]);
      const created = replies.filter((r) => r.status === 201);
      expect(new Set(created.map((r) => String(r.body.id))).size).toBe(1);
      const conflict = replies.find((r) => r.status === 409);
      if (conflict) expect(conflict.body).toMatchObject({ status: 409, title: 'Conflict' });
      expect(await countRows(t.db, 'sessions')).toBe(1);
    });

    // On SQLite a test can hold the database to keep the first request running (without API keys,
    // whose lookup would wait too); on PostgreSQL the same guarantee across processes is tested in
    // multi-process.e2e-spec.ts.
    (onPostgres ? it.skip : it)(
      'answers 409 to a retry while the first is still running',
      async () => {
        const local = await createTestApp({ AUTH_MODE: 'none' });
        try {
          const send = () =>
            request(local.http)
              .post('/api/v1/sessions')
              .set('Idempotency-Key', 'slow')
              .send({ name: 's' });
          let release!: () => void;
          const holding = local.db.read(() => new Promise<void>((resolve) => (release = resolve)));
          const first = send().then((r) => r);
          await new Promise((resolve) => setTimeout(resolve, 100));
          const retry = await send();
          expect(retry.status).toBe(409);
          expect(retry.body).toMatchObject({
            status: 409,
            title: 'Conflict',
            detail: expect.stringContaining('still being processed'),
          });
          release();
          await holding;
          expect((await first).status).toBe(201);
          expect((await send()).headers['idempotent-replayed']).toBe('true');
          expect(await countRows(local.db, 'sessions')).toBe(1);
        } finally {
          await local.close();
        }
      },
    );

    it.each([
      ['empty', ''],
      ['too long', 'k'.repeat(256)],
      ['non-ASCII', 'clé'],
      ['a control character', 'a\tb'],
    ])('refuses an %s key with a 400 and writes nothing', async (_, key) => {
      const res = await request(t.http)
        .post('/api/v1/sessions')
        .set(bearer(alice))
        .set('Idempotency-Key', key)
        .send({});
      expect(res.status).toBe(400);
      expect(res.body.errors).toEqual([{ field: 'Idempotency-Key', message: expect.any(String) }]);
      expect(await countRows(t.db, 'sessions')).toBe(0);
    });

    it('accepts a key of 255 printable characters', async () => {
      const key = ' !~'.repeat(85);
      expect((await post('/api/v1/sessions', alice, key)).status).toBe(201);
      expect((await post('/api/v1/sessions', alice, key)).headers['idempotent-replayed']).toBe(
        'true',
      );
    });

    it('forgets a key after 24 hours, and the cleanup removes old records', async () => {
      const first = await post('/api/v1/sessions', alice, 'old');
      const old = Date.now() - IDEMPOTENCY_TTL_MS - 1000;
      await t.db.write((m) =>
        m.query(t.db.sql('UPDATE "idempotency_keys" SET "created_at" = ?'), [old]),
      );
      const again = await post('/api/v1/sessions', alice, 'old');
      expect(again.status).toBe(201);
      expect(again.headers['idempotent-replayed']).toBeUndefined();
      expect(again.body.id).not.toBe(first.body.id);

      await t.db.write((m) =>
        m.query(t.db.sql('UPDATE "idempotency_keys" SET "created_at" = ?'), [old]),
      );
      expect(await t.app.get(IdempotencyService).purgeExpired()).toBe(1);
      const left: unknown[] = await t.db.read((m) =>
        m.query('SELECT "key" FROM "idempotency_keys"'),
      );
      expect(left).toEqual([]);
    });
  });

  describe('POST /api/v1/sessions/:id/messages', () => {
    it('stores the message once and replays it', async () => {
      const session = (await post('/api/v1/sessions', alice, null)).body.id;
      const path = `/api/v1/sessions/${session}/messages`;
      const first = await post(path, alice, 'm-1', { content: 'hello', role: 'assistant' });
      const retry = await post(path, alice, 'm-1', { content: 'hello', role: 'assistant' });
      expect(retry.text).toBe(first.text);
      expect(retry.headers['idempotent-replayed']).toBe('true');
      expect(await countRows(t.db, 'chat_messages')).toBe(1);
      const read = await request(t.http).get(`/api/v1/sessions/${session}`).set(bearer(alice));
      expect(read.body.message_count).toBe(1);
    });

    it('stores no key for a request that failed, so a later retry runs for real', async () => {
      const path = '/api/v1/sessions/00000000-0000-4000-8000-000000000000/messages';
      expect((await post(path, alice, 'k', { content: 'x' })).status).toBe(404);
      expect((await post(path, alice, 'k', { content: 'x' })).status).toBe(404);
      const stored: unknown[] = await t.db.read((m) =>
        m.query('SELECT "key" FROM "idempotency_keys"'),
      );
      expect(stored).toEqual([]);
      const invalid = await post('/api/v1/sessions', alice, 'v', { name: '' });
      expect(invalid.status).toBe(400);
      expect((await post('/api/v1/sessions', alice, 'v', { name: 'ok' })).status).toBe(201);
    });
  });

  describe('scope, storage and locking', () => {
    it('scopes by the route and its decoded parameters, not by how the path is spelled', async () => {
      const session: string = (await post('/api/v1/sessions', alice, null)).body.id;
      const encoded = `%${session.charCodeAt(0).toString(16)}${session.slice(1)}`;
      const spellings = [
        `/api/v1/sessions/${encoded}/messages`,
        `/api/v1/sessions/${session}/messages`,
        `/api/v1/sessions/${session}/messages/`,
        `/api/v1/sessions/${encoded.toLowerCase()}/messages`,
      ];
      const [first, ...retries] = await spellings.reduce<Promise<request.Response[]>>(
        async (done, path) => [...(await done), await post(path, alice, 'm', { content: 'once' })],
        Promise.resolve([]),
      );
      expect(first.status).toBe(201);
      for (const retry of retries) {
        expect({
          status: retry.status,
          text: retry.text,
          replayed: retry.headers['idempotent-replayed'],
        }).toEqual({ status: 201, text: first.text, replayed: 'true' });
      }
      expect(await countRows(t.db, 'chat_messages')).toBe(1);
    });

    it(`keeps an owner's newest ${IDEMPOTENCY_KEYS_PER_OWNER} responses, evicting the oldest`, async () => {
      const now = Date.now();
      const insert = (owner: string, keys: number, first: number) =>
        t.db.write(async (m) => {
          for (let i = 0; i < keys; i += 500) {
            const rows = Array.from({ length: Math.min(500, keys - i) }, (_, j) => [
              owner,
              'POST',
              '/api/v1/sessions',
              `old-${i + j}`,
              'h',
              201,
              '{}',
              first + i + j,
            ]);
            await m.query(
              t.db.sql(
                `INSERT INTO "idempotency_keys" ("owner_id", "method", "path", "key", "request_hash", "status", "body", "created_at")
                 VALUES ${rows.map(() => '(?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`,
              ),
              rows.flat(),
            );
          }
        });
      await insert('alice', IDEMPOTENCY_KEYS_PER_OWNER, now - 3_600_000);
      await insert('bob', 3, now - 7_200_000);
      expect((await post('/api/v1/sessions', alice, 'new')).status).toBe(201);
      const left: { owner_id: string; key: string }[] = await t.db.read((m) =>
        m.query(`SELECT "owner_id", "key" FROM "idempotency_keys" ORDER BY "created_at"`),
      );
      const alices = left.filter((r) => r.owner_id === 'alice').map((r) => r.key);
      expect(alices).toHaveLength(IDEMPOTENCY_KEYS_PER_OWNER);
      expect([alices[0], alices.at(-1)]).toEqual(['old-1', 'new']);
      // Another owner's records are not theirs to evict, however old.
      expect(left.filter((r) => r.owner_id === 'bob')).toHaveLength(3);
      const retry = await post('/api/v1/sessions', alice, 'new');
      expect(retry.headers['idempotent-replayed']).toBe('true');
    });

    (onPostgres ? it : it.skip)(
      'locks a key by 64 bits of its scope: a key whose 32-bit hashtext collides is not refused',
      async () => {
        const client = new Client({ connectionString: process.env.TEST_DATABASE_URL });
        await client.connect();
        try {
          const scope = 'alice\nPOST\n/api/v1/sessions\n';
          // Among 300,000 keys, about ten pairs share a 32-bit hash.
          const { rows } = await client.query<{ pair: string[] }>(
            `SELECT (array_agg(k))[1:2] AS "pair" FROM (
               SELECT 'c' || i AS k, hashtext($1 || 'c' || i) AS h FROM generate_series(1, 300000) i
             ) keys GROUP BY h HAVING count(*) > 1 LIMIT 1`,
            [scope],
          );
          const [held, other] = rows[0].pair;
          // An in-flight request with the held key, by either lock (the old 32-bit and the 64-bit).
          await client.query('BEGIN');
          await client.query(
            'SELECT pg_advisory_xact_lock(hashtext($1)), pg_advisory_xact_lock(hashtextextended($1, 0))',
            [scope + held],
          );
          expect((await post('/api/v1/sessions', alice, held)).status).toBe(409);
          expect((await post('/api/v1/sessions', alice, other)).status).toBe(201);
          await client.query('ROLLBACK');
          expect((await post('/api/v1/sessions', alice, held)).status).toBe(201);
        } finally {
          await client.end();
        }
      },
    );
  });
});
