import request from 'supertest';
import { ApiKeysService } from '../src/auth/api-keys.service';
import { chatGptSessionId } from '../src/import/chatgpt-conversation';
import { nameBasedUuid } from '../src/import/imported-session';
import { bearer } from './helpers/api';
import { createTestApp, resetDatabase, TestApp } from './helpers/test-app';

/** AUTH_MODE=api-key: keys, 401s, and two owners who cannot see each other's data. */
describe('Owners and API keys (e2e)', () => {
  let t: TestApp;
  let keys: ApiKeysService;
  let alice: string;
  let bob: string;

  beforeAll(async () => {
    t = await createTestApp({ AUTH_MODE: 'api-key', RATE_LIMIT_PER_MINUTE: '0' });
    keys = t.app.get(ApiKeysService);
  });
  afterAll(() => t.close());
  beforeEach(async () => {
    await resetDatabase(t.db);
    alice = (await keys.create('alice')).key;
    bob = (await keys.create('bob')).key;
  });

  function expectUnauthorized(res: request.Response, detail: RegExp): void {
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer /);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.body).toEqual({
      type: 'about:blank',
      title: 'Unauthorized',
      status: 401,
      detail: expect.stringMatching(detail),
      instance: expect.stringMatching(/^\/api\/v1\//),
    });
  }

  describe('authentication', () => {
    it.each([
      ['no header', {}],
      ['an empty bearer', { Authorization: 'Bearer ' }],
      ['another scheme', { Authorization: 'Basic YWxpY2U6c2VjcmV0' }],
      ['a malformed key', { Authorization: 'Bearer not-a-key' }],
      ['an unknown key', { Authorization: `Bearer csk_0123456789abcdef_${'A'.repeat(43)}` }],
    ])('answers 401 to %s on every API route', async (_, headers) => {
      for (const [method, path] of [
        ['get', '/api/v1/sessions'],
        ['post', '/api/v1/sessions'],
        ['get', '/api/v1/sessions/x'],
        ['patch', '/api/v1/sessions/x'],
        ['delete', '/api/v1/sessions/x'],
        ['get', '/api/v1/sessions/x/messages'],
        ['post', '/api/v1/sessions/x/messages'],
        ['get', '/api/v1/sessions/x/messages/1'],
        ['delete', '/api/v1/sessions/x/messages/1'],
      ] as const) {
        expectUnauthorized(await request(t.http)[method](path).set(headers).send({}), /API key/);
      }
    });

    it('refuses a key whose secret part is wrong', async () => {
      const forged = alice.slice(0, -4) + (alice.endsWith('AAAA') ? 'BBBB' : 'AAAA');
      expectUnauthorized(
        await request(t.http).get('/api/v1/sessions').set(bearer(forged)),
        /Invalid or revoked/,
      );
    });

    it('stops a revoked key at once', async () => {
      const { id, key } = await keys.create('carol');
      expect((await request(t.http).get('/api/v1/sessions').set(bearer(key))).status).toBe(200);
      expect(await keys.revoke(id)).toBe(true);
      expectUnauthorized(await request(t.http).get('/api/v1/sessions').set(bearer(key)), /revoked/);
      expect(await keys.revoke(id)).toBe(false);
    });

    it('keeps /, the docs and health open', async () => {
      for (const path of ['/', '/docs-json', '/health/live', '/health/ready']) {
        expect((await request(t.http).get(path)).status).toBe(200);
      }
    });

    it('lists keys without their secrets, with the time of last use', async () => {
      const created = await keys.create('dave');
      await request(t.http).get('/api/v1/sessions').set(bearer(created.key));
      // The last use is recorded in the background: wait for it (briefly).
      let listed = (await keys.list()).find((k) => k.id === created.id);
      for (let i = 0; i < 50 && listed?.last_used_at === null; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        listed = (await keys.list()).find((k) => k.id === created.id);
      }
      expect(listed).toEqual({
        id: created.id,
        owner_id: 'dave',
        created_at: expect.any(Number),
        last_used_at: expect.any(Number),
        revoked_at: null,
      });
      const stored: { secret_hash: string }[] = await t.db.read((m) =>
        m.query(t.db.sql('SELECT "secret_hash" FROM "api_keys" WHERE "id" = ?'), [created.id]),
      );
      expect(stored[0].secret_hash).toMatch(/^[0-9a-f]{64}$/);
      expect(created.key).not.toContain(stored[0].secret_hash);
    });
  });

  describe('two owners', () => {
    async function aliceData() {
      const session = (
        await request(t.http)
          .post('/api/v1/sessions')
          .set(bearer(alice))
          .send({ name: 'secret plans' })
      ).body;
      const message = (
        await request(t.http)
          .post(`/api/v1/sessions/${session.id}/messages`)
          .set(bearer(alice))
          .send({ content: 'private' })
      ).body;
      return { session, message };
    }

    it("answers 404 for every route that names the other owner's session or message", async () => {
      const { session, message } = await aliceData();
      const own = `/api/v1/sessions/${session.id}`;
      const checks: [string, request.Test][] = [
        ['get', request(t.http).get(own)],
        ['patch', request(t.http).patch(own).send({ name: 'mine now' })],
        ['delete', request(t.http).delete(own)],
        ['list messages', request(t.http).get(`${own}/messages`)],
        ['append', request(t.http).post(`${own}/messages`).send({ content: 'intrusion' })],
        ['get message', request(t.http).get(`${own}/messages/${message.id}`)],
        ['delete message', request(t.http).delete(`${own}/messages/${message.id}`)],
      ];
      for (const [name, call] of checks) {
        const res = await call.set(bearer(bob));
        expect({ name, status: res.status }).toEqual({ name, status: 404 });
        expect(res.body.detail).toMatch(/not found/);
      }
      // Nothing changed for the real owner.
      const still = await request(t.http).get(own).set(bearer(alice));
      expect(still.body).toMatchObject({ name: 'secret plans', message_count: 1 });
      const messages = await request(t.http).get(`${own}/messages`).set(bearer(alice));
      expect(messages.body.map((m: { content: string }) => m.content)).toEqual(['private']);
    });

    it('lists and counts only the caller’s sessions, also through cursors and filters', async () => {
      await aliceData();
      await aliceData();
      await request(t.http).post('/api/v1/sessions').set(bearer(bob)).send({ name: 'bob 1' });
      for (const query of ['', '?archived=any', '?pinned=false', '?limit=1']) {
        const res = await request(t.http).get(`/api/v1/sessions${query}`).set(bearer(bob));
        expect(res.headers['x-total-count']).toBe('1');
        expect(res.body.map((s: { name: string }) => s.name)).toEqual(['bob 1']);
      }
      const page = await request(t.http).get('/api/v1/sessions?limit=1').set(bearer(alice));
      expect(page.headers['x-total-count']).toBe('2');
      const next = /<([^>]+)>/.exec(page.headers.link)![1];
      // Alice's cursor in Bob's hands only walks Bob's list.
      const borrowed = await request(t.http).get(next).set(bearer(bob));
      expect(borrowed.status).toBe(200);
      expect(borrowed.body.every((s: { name: string }) => s.name.startsWith('bob'))).toBe(true);
    });

    it("keeps search, export and import to the caller's own sessions", async () => {
      const { session } = await aliceData();
      const bobSession = (
        await request(t.http)
          .post('/api/v1/sessions')
          .set(bearer(bob))
          .send({ name: 'private plans' })
      ).body;

      const aliceSearch = await request(t.http).get('/api/v1/search?q=private').set(bearer(alice));
      expect(aliceSearch.body.map((h: { session: { id: string } }) => h.session.id)).toEqual([
        session.id,
      ]);
      const bobSearch = await request(t.http).get('/api/v1/search?q=private').set(bearer(bob));
      expect(bobSearch.body.map((h: { session: { id: string } }) => h.session.id)).toEqual([
        bobSession.id,
      ]);
      const narrowed = await request(t.http)
        .get(`/api/v1/search?q=private&session_id=${session.id}`)
        .set(bearer(bob));
      expect(narrowed.status).toBe(404);

      expect(
        (await request(t.http).get(`/api/v1/sessions/${session.id}/export`).set(bearer(bob)))
          .status,
      ).toBe(404);
      const bulk = await request(t.http)
        .get('/api/v1/export?archived=any')
        .set(bearer(bob))
        .buffer(true);
      const lines = String(bulk.text)
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { session: { id: string } });
      expect(lines.map((l) => l.session.id)).toEqual([bobSession.id]);

      // Alice's export imported by Bob: answered as for an unused id (a session of Bob's own under
      // an id derived from Alice's), and Bob sees only his own sessions.
      const exported = await request(t.http)
        .get(`/api/v1/sessions/${session.id}/export`)
        .set(bearer(alice));
      const imported = await request(t.http)
        .post('/api/v1/import')
        .set(bearer(bob))
        .send(exported.body);
      expect(imported.body).toEqual({
        imported: 1,
        skipped: 0,
        sessions: [expect.not.stringMatching(session.id)],
        message_ids: 'renumbered',
        renumbered_sessions: [expect.not.stringMatching(session.id)],
      });
      const list = await request(t.http).get('/api/v1/sessions?archived=any').set(bearer(bob));
      expect(list.body.map((s: { id: string }) => s.id).sort()).toEqual(
        [bobSession.id, imported.body.sessions[0]].sort(),
      );
    });

    describe("importing another owner's session id", () => {
      const IMPORT = '/api/v1/import';

      async function aliceExport() {
        const { session } = await aliceData();
        return (
          await request(t.http).get(`/api/v1/sessions/${session.id}/export`).set(bearer(alice))
        ).body as { session: { id: string }; messages: { id: number }[] };
      }

      it('creates the session under a new id, answered as for an unused id; again is a no-op', async () => {
        const file = await aliceExport();
        const aliceBefore = await request(t.http)
          .get(`/api/v1/sessions/${file.session.id}/export`)
          .set(bearer(alice));
        // A random, unused id: the answer Bob must not be able to tell apart.
        const unused = {
          ...file,
          session: {
            ...file.session,
            id: '33333333-3333-4333-8333-333333333333',
            current_message_id: null,
          },
          messages: [],
        };
        const fresh = await request(t.http).post(IMPORT).set(bearer(bob)).send(unused);
        const taken = await request(t.http).post(IMPORT).set(bearer(bob)).send(file);
        for (const res of [fresh, taken]) {
          expect({
            status: res.status,
            imported: res.body.imported,
            skipped: res.body.skipped,
          }).toEqual({ status: 201, imported: 1, skipped: 0 });
        }
        const bobsId = taken.body.sessions[0] as string;
        expect(bobsId).toMatch(
          /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
        );
        expect(bobsId).not.toBe(file.session.id);
        const mine = await request(t.http)
          .get(`/api/v1/sessions/${bobsId}/messages`)
          .set(bearer(bob));
        expect(mine.body.map((m: { content: string }) => m.content)).toEqual(['private']);

        const again = await request(t.http).post(IMPORT).set(bearer(bob)).send(file);
        expect(again.body).toEqual({
          imported: 0,
          skipped: 1,
          sessions: [bobsId],
          message_ids: 'kept',
          renumbered_sessions: [],
        });
        const list = await request(t.http).get('/api/v1/sessions').set(bearer(bob));
        expect(list.headers['x-total-count']).toBe('2');

        // Alice's data is untouched, and still hers alone.
        const aliceAfter = await request(t.http)
          .get(`/api/v1/sessions/${file.session.id}/export`)
          .set(bearer(alice));
        expect(aliceAfter.body).toEqual(aliceBefore.body);
        expect(
          (await request(t.http).get(`/api/v1/sessions/${bobsId}`).set(bearer(alice))).status,
        ).toBe(404);
      });

      it('finds the first import again after the other owner deletes the original', async () => {
        const file = await aliceExport();
        const first = await request(t.http).post(IMPORT).set(bearer(bob)).send(file);
        await request(t.http).delete(`/api/v1/sessions/${file.session.id}`).set(bearer(alice));
        const again = await request(t.http).post(IMPORT).set(bearer(bob)).send(file);
        expect(again.body).toMatchObject({
          imported: 0,
          skipped: 1,
          sessions: first.body.sessions,
        });
      });

      it('cannot be blocked by an owner who takes the ids a victim would fall back on', async () => {
        // Every id anyone could compute for alice's chain without the deployment's secret.
        const chain = [chatGptSessionId('squatted-conversation')];
        while (chain.length < 8) chain.push(nameBasedUuid(`owner:alice:${chain.at(-1)}`));
        const squat = chain.map((id) => ({
          session: {
            id,
            name: 'squat',
            created_at: '2026-01-01T00:00:00.000Z',
            last_updated_at: '2026-01-01T00:00:00.000Z',
          },
          messages: [],
        }));
        const taken = await request(t.http).post(IMPORT).set(bearer(bob)).send(squat);
        expect(taken.body).toMatchObject({ imported: 8, skipped: 0, sessions: chain });
        const conversation = {
          title: 'Mine',
          mapping: {
            m: {
              id: 'm',
              message: {
                id: 'm',
                author: { role: 'user' },
                create_time: 1714550401,
                content: { content_type: 'text', parts: ['Hello'] },
              },
              parent: null,
              children: [],
            },
          },
          current_node: 'm',
          conversation_id: 'squatted-conversation',
        };
        const res = await request(t.http).post(IMPORT).set(bearer(alice)).send([conversation]);
        expect({ status: res.status, body: res.body }).toMatchObject({
          status: 201,
          body: { imported: 1, skipped: 0 },
        });
        expect(chain).not.toContain(res.body.sessions[0]);
      });

      it('imports a ChatGPT conversation for each owner that imports it', async () => {
        const conversation = {
          title: 'Shared',
          create_time: 1714550400,
          mapping: {
            r: { id: 'r', message: null, parent: null, children: ['m'] },
            m: {
              id: 'm',
              message: {
                id: 'm',
                author: { role: 'user' },
                create_time: 1714550401,
                content: { content_type: 'text', parts: ['Hello'] },
              },
              parent: 'r',
              children: [],
            },
          },
          current_node: 'm',
          conversation_id: 'shared-conversation',
        };
        const ids: string[] = [];
        for (const key of [alice, bob]) {
          const res = await request(t.http).post(IMPORT).set(bearer(key)).send([conversation]);
          expect(res.body).toMatchObject({ imported: 1, skipped: 0 });
          ids.push(res.body.sessions[0] as string);
          const again = await request(t.http).post(IMPORT).set(bearer(key)).send([conversation]);
          expect(again.body).toMatchObject({ imported: 0, skipped: 1, sessions: [ids.at(-1)] });
        }
        expect(ids[0]).not.toBe(ids[1]);
        for (const [key, id] of [
          [alice, ids[0]],
          [bob, ids[1]],
        ]) {
          const messages = await request(t.http)
            .get(`/api/v1/sessions/${id}/messages`)
            .set(bearer(key));
          expect(messages.body.map((m: { content: string }) => m.content)).toEqual(['Hello']);
        }
      });
    });

    it('imports into the caller and honours Idempotency-Key on import', async () => {
      const { session } = await aliceData();
      const exported = (
        await request(t.http).get(`/api/v1/sessions/${session.id}/export`).set(bearer(alice))
      ).body as { session: { id: string } };
      await request(t.http).delete(`/api/v1/sessions/${session.id}`).set(bearer(alice));
      const send = () =>
        request(t.http)
          .post('/api/v1/import')
          .set(bearer(bob))
          .set('Idempotency-Key', 'imp-1')
          .send(exported);
      const first = await send();
      expect(first.body).toEqual({
        imported: 1,
        skipped: 0,
        sessions: [session.id],
        // Alice's messages are gone, so their ids are free: Bob's restored copy keeps them.
        message_ids: 'kept',
        renumbered_sessions: [],
      });
      const again = await send();
      expect({ status: again.status, text: again.text }).toEqual({ status: 201, text: first.text });
      expect(again.headers['idempotent-replayed']).toBe('true');
      const mine = await request(t.http).get(`/api/v1/sessions/${session.id}`).set(bearer(bob));
      expect(mine.body).toMatchObject({ id: session.id, message_count: 1 });
      const list = await request(t.http).get('/api/v1/sessions').set(bearer(bob));
      expect(list.headers['x-total-count']).toBe('1');
      expect(
        (await request(t.http).get(`/api/v1/sessions/${session.id}`).set(bearer(alice))).status,
      ).toBe(404);
    });

    it('gives each owner sessions of their own', async () => {
      const a = await request(t.http).post('/api/v1/sessions').set(bearer(alice)).send({});
      const b = await request(t.http).post('/api/v1/sessions').set(bearer(bob)).send({});
      const owners: { id: string; owner_id: string }[] = await t.db.read((m) =>
        m.query('SELECT "id", "owner_id" FROM "sessions"'),
      );
      expect(Object.fromEntries(owners.map((o) => [o.id, o.owner_id]))).toEqual({
        [a.body.id]: 'alice',
        [b.body.id]: 'bob',
      });
    });
  });
});

describe('AUTH_MODE=none (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp({ AUTH_MODE: 'none' });
  });
  afterAll(() => t.close());

  it('serves everyone as the local owner, ignoring any Authorization header', async () => {
    const created = await request(t.http)
      .post('/api/v1/sessions')
      .set('Authorization', 'Bearer whatever')
      .send({});
    expect(created.status).toBe(201);
    const rows: { owner_id: string }[] = await t.db.read((m) =>
      m.query('SELECT "owner_id" FROM "sessions"'),
    );
    expect(rows).toEqual([{ owner_id: 'local' }]);
    expect((await request(t.http).get(`/api/v1/sessions/${created.body.id}`)).status).toBe(200);
  });
});
