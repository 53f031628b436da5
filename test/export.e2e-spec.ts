import request from 'supertest';
import type { EntityManager } from 'typeorm';
import * as database from '../src/database/database.service';
import { createSession, postMessage, rawText, UNKNOWN_ID, sessionNotFound } from './helpers/api';
import { createTestApp, resetDatabase, TestApp } from './helpers/test-app';

describe('Export (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());
  beforeEach(() => resetDatabase(t.db));

  const session = (body: object = {}) => createSession(t.http, body);

  const message = (sessionId: string, body: object) => postMessage(t.http, sessionId, body);

  /**
   * Adds `count` messages to a session straight in the database (thousands of appends through the
   * API would be slow), keeping message_count and last_updated_at right; contents c0, c1, ….
   */
  async function insertMessages(sessionId: string, count: number): Promise<void> {
    if (count === 0) return;
    for (let i = 0; i < count; i += 500) {
      const rows = Array.from({ length: Math.min(500, count - i) }, (_, j) => [
        sessionId,
        2_000_000_000_000 + i + j,
        'user',
        `c${i + j}`,
      ]);
      await t.db.write((m) =>
        m.query(
          t.db.sql(
            `INSERT INTO "chat_messages" ("session_id", "timestamp", "role", "content") VALUES ${rows.map(() => '(?, ?, ?, ?)').join(', ')}`,
          ),
          rows.flat(),
        ),
      );
    }
    await t.db.write((m) =>
      m.query(
        t.db.sql(`UPDATE "sessions" SET "message_count" = ?, "last_updated_at" = ? WHERE "id" = ?`),
        [count, 2_000_000_000_000 + count - 1, sessionId],
      ),
    );
  }

  async function get(path: string) {
    return (await request(t.http).get(path)).body as unknown;
  }

  describe('GET /api/v1/sessions/{id}/export', () => {
    it('exports the session and all its messages as a JSON download', async () => {
      const s = await session({ name: 'Trip', metadata_tags: { a: 'b' }, pinned: true });
      await message(s.id, { content: 'Where to?', metadata: { k: [1, { z: null }] } });
      await message(s.id, { content: 'Lisbon.', role: 'assistant' });
      const res = await rawText(request(t.http).get(`/api/v1/sessions/${s.id}/export`));
      expect({
        status: res.status,
        type: res.headers['content-type'],
        disposition: res.headers['content-disposition'],
      }).toEqual({
        status: 200,
        type: 'application/json; charset=utf-8',
        disposition: `attachment; filename="${s.id}.json"`,
      });
      const expected = {
        session: await get(`/api/v1/sessions/${s.id}`),
        messages: await get(`/api/v1/sessions/${s.id}/messages`),
      };
      expect(res.body).toBe(`${JSON.stringify(expected)}\n`);
      expect(
        (await request(t.http).get(`/api/v1/sessions/${s.id}/export?format=json`)).body,
      ).toEqual(expected);
    });

    it('exports a session without messages', async () => {
      const s = await session();
      const res = await request(t.http).get(`/api/v1/sessions/${s.id}/export`);
      expect(res.body).toEqual({ session: await get(`/api/v1/sessions/${s.id}`), messages: [] });
    });

    it('exports a long history in order, across many pages', async () => {
      const s = await session();
      await insertMessages(s.id, 2500);
      const res = await request(t.http).get(`/api/v1/sessions/${s.id}/export`);
      const messages = (res.body as { messages: { id: number; content: string }[] }).messages;
      expect(messages.map((m) => m.content)).toEqual(
        Array.from({ length: 2500 }, (_, i) => `c${i}`),
      );
      expect(res.body).toEqual({
        session: await get(`/api/v1/sessions/${s.id}`),
        messages: await get(`/api/v1/sessions/${s.id}/messages?limit=1000`).then(async (first) => [
          ...(first as unknown[]),
          ...((await get(`/api/v1/sessions/${s.id}/messages?skip=1000&limit=1000`)) as unknown[]),
          ...((await get(`/api/v1/sessions/${s.id}/messages?skip=2000&limit=1000`)) as unknown[]),
        ]),
      });
    });

    it('exports Markdown: the name as a heading, each message with role and timestamp, content verbatim', async () => {
      const s = await session({
        name: 'Plans  for\nMay',
        metadata_tags: { project: 'travel' },
        archived: true,
      });
      await message(s.id, {
        content: '# Not a heading of ours\n\n  indented `code`\n',
        role: 'system',
      });
      await message(s.id, { content: 'Hi!' });
      const messages = (await get(`/api/v1/sessions/${s.id}/messages`)) as { timestamp: string }[];
      const current = (await get(`/api/v1/sessions/${s.id}`)) as { last_updated_at: string };
      const res = await rawText(
        request(t.http).get(`/api/v1/sessions/${s.id}/export?format=markdown`),
      );
      expect({
        status: res.status,
        type: res.headers['content-type'],
        disposition: res.headers['content-disposition'],
        body: res.body,
      }).toEqual({
        status: 200,
        type: 'text/markdown; charset=utf-8',
        disposition: `attachment; filename="${s.id}.md"`,
        body: [
          '# Plans for May',
          '',
          `- Session: \`${s.id}\``,
          `- Created: ${s.created_at}`,
          `- Last updated: ${current.last_updated_at}`,
          '- Messages: 2',
          '- Model: default',
          '- Tags: project=travel',
          '- Archived',
          '',
          `## System · ${messages[0].timestamp}`,
          '',
          '# Not a heading of ours\n\n  indented `code`\n',
          '',
          `## User · ${messages[1].timestamp}`,
          '',
          'Hi!',
          '',
        ].join('\n'),
      });
    });

    it('exports Markdown of the current branch only: root to current message', async () => {
      const s = await session({ name: 'Branches' });
      const root = await message(s.id, { content: 'Question' });
      await message(s.id, { content: 'First answer', role: 'assistant' });
      const second = await message(s.id, {
        content: 'Second answer',
        role: 'assistant',
        parent_id: root.id,
      });
      await message(s.id, { content: 'Another root', parent_id: null });
      const switched = await request(t.http)
        .patch(`/api/v1/sessions/${s.id}`)
        .send({ current_message_id: second.id });
      expect(switched.body.current_message_id).toBe(second.id);
      const res = await rawText(
        request(t.http).get(`/api/v1/sessions/${s.id}/export?format=markdown`),
      );
      expect(res.body).toBe(
        [
          '# Branches',
          '',
          `- Session: \`${s.id}\``,
          `- Created: ${s.created_at}`,
          `- Last updated: ${switched.body.last_updated_at}`,
          '- Messages: 4',
          '- Current branch: 2 of them (the JSON export holds every branch)',
          '- Model: default',
          '',
          `## User · ${root.timestamp}`,
          '',
          'Question',
          '',
          `## Assistant · ${second.timestamp}`,
          '',
          'Second answer',
          '',
        ].join('\n'),
      );
      // The JSON export still holds every message.
      const json = (await get(`/api/v1/sessions/${s.id}/export`)) as { messages: unknown[] };
      expect(json.messages).toHaveLength(4);
    });

    it('titles an unnamed session', async () => {
      const s = await session();
      const res = await rawText(
        request(t.http).get(`/api/v1/sessions/${s.id}/export?format=markdown`),
      );
      expect(res.body).toMatch(/^# Untitled session\n/);
    });

    it.each([UNKNOWN_ID, 'not-a-uuid'])('answers 404 for session %s', async (id) => {
      const res = await request(t.http).get(`/api/v1/sessions/${id}/export`);
      expect({ status: res.status, body: res.body }).toEqual({
        status: 404,
        body: sessionNotFound(id, `/api/v1/sessions/${id}/export`),
      });
    });

    it('answers 400 for an unknown format', async () => {
      const s = await session();
      const res = await request(t.http).get(`/api/v1/sessions/${s.id}/export?format=pdf`);
      expect(res.status).toBe(400);
      expect(res.body.errors).toEqual([
        { field: 'format', message: 'format must be one of json, markdown' },
      ]);
    });
  });

  describe('GET /api/v1/export', () => {
    async function exportAll(query = '') {
      const res = await rawText(request(t.http).get(`/api/v1/export${query}`));
      expect(res.status).toBe(200);
      return res;
    }

    function lines(body: string): { session: { id: string }; messages: unknown[] }[] {
      expect(body === '' || body.endsWith('\n')).toBe(true);
      return body
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as { session: { id: string }; messages: unknown[] });
    }

    it('streams NDJSON: one {session, messages} line per session, in id order', async () => {
      const a = await session({ name: 'a' });
      const b = await session({ name: 'b' });
      await message(a.id, { content: 'one' });
      await message(b.id, { content: 'two' });
      await message(a.id, { content: 'three' });
      const res = await exportAll();
      expect({
        type: res.headers['content-type'],
        disposition: res.headers['content-disposition'],
        encoding: res.headers['transfer-encoding'],
      }).toEqual({
        type: 'application/x-ndjson',
        disposition: 'attachment; filename="chat-sessions.ndjson"',
        encoding: 'chunked',
      });
      const expected = [];
      for (const id of [a.id, b.id].sort()) {
        expected.push({
          session: await get(`/api/v1/sessions/${id}`),
          messages: await get(`/api/v1/sessions/${id}/messages`),
        });
      }
      expect(res.body).toBe(expected.map((line) => `${JSON.stringify(line)}\n`).join(''));
    });

    it('applies the archived filter as the list does', async () => {
      const live = await session({ name: 'live' });
      const archived = await session({ name: 'archived', archived: true });
      const ids = async (query: string) =>
        lines((await exportAll(query)).body).map((line) => line.session.id);
      await expect(ids('')).resolves.toEqual([live.id]);
      await expect(ids('?archived=false')).resolves.toEqual([live.id]);
      await expect(ids('?archived=true')).resolves.toEqual([archived.id]);
      await expect(ids('?archived=any')).resolves.toEqual([live.id, archived.id].sort());
      const bad = await request(t.http).get('/api/v1/export?archived=maybe');
      expect(bad.status).toBe(400);
    });

    it('exports an empty store as an empty body', async () => {
      const res = await exportAll();
      expect(res.body).toBe('');
    });

    it('exports many sessions, short and long histories, each exactly once and complete', async () => {
      const sizes = [0, 3, 1001, 0, 2, 1500, 1, 999];
      const expected = new Map<string, number>();
      for (const size of sizes) {
        const s = await session();
        expected.set(s.id, size);
      }
      for (const [id, size] of expected) await insertMessages(id, size);
      // 150 more sessions: more than one page of sessions.
      for (let i = 0; i < 150; i++) expected.set((await session()).id, 0);
      const exported = lines((await exportAll()).body);
      expect(exported.map((line) => line.session.id)).toEqual([...expected.keys()].sort());
      for (const line of exported) {
        expect(line.messages).toHaveLength(expected.get(line.session.id)!);
        const stamps = (line.messages as { timestamp: string }[]).map((m) => m.timestamp);
        expect(stamps).toEqual([...stamps].sort());
      }
    }, 30_000); // thousands of rows inserted: over 5 s on a busy PostgreSQL
  });

  describe('owner scoping of every statement', () => {
    /**
     * Runs `work` while every statement matching `statement` is preceded by a reassignment of the
     * session to another owner: a crafted race (nothing in the API moves a session) that shows the
     * message statements name the owner themselves rather than trust the session read before them.
     * The first `spared` matching statements run unchanged.
     */
    async function withReassignment<T>(
      statement: RegExp,
      sessionIds: string[],
      spared: number,
      work: () => Promise<T>,
    ): Promise<T> {
      const original = database.queryRows;
      let seen = 0;
      const spy = jest
        .spyOn(database, 'queryRows')
        .mockImplementation(async (manager: EntityManager, sql: string, params?: unknown[]) => {
          if (statement.test(sql) && seen++ >= spared) {
            await manager.query(
              t.db.sql(
                `UPDATE "sessions" SET "owner_id" = 'intruder' WHERE "id" IN (${sessionIds.map(() => '?').join(', ')})`,
              ),
              sessionIds,
            );
          }
          return original(manager, sql, params);
        });
      try {
        return await work();
      } finally {
        spy.mockRestore();
      }
    }

    it("stops reading a session's pages once it is not the caller's", async () => {
      const s = await session();
      await insertMessages(s.id, 2500);
      const res = await withReassignment(/m\."id"\) > /, [s.id], 1, () =>
        request(t.http).get(`/api/v1/sessions/${s.id}/export`),
      );
      expect(res.status).toBe(200);
      const contents = (res.body as { messages: { content: string }[] }).messages.map(
        (m) => m.content,
      );
      expect(contents).toEqual(Array.from({ length: 1000 }, (_, i) => `c${i}`));
    });

    it("reads no messages of sessions that stopped being the caller's in a bulk export", async () => {
      const a = await session();
      const b = await session();
      await message(a.id, { content: 'mine' });
      await message(b.id, { content: 'also mine' });
      const res = await withReassignment(/"session_id" IN \(/, [a.id, b.id], 0, () =>
        rawText(request(t.http).get('/api/v1/export')),
      );
      expect(res.status).toBe(200);
      const lines = (res.body as string)
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { messages: unknown[] });
      expect(lines.map((line) => line.messages)).toEqual([[], []]);
    });
  });
});
