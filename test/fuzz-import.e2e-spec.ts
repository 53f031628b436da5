import fc from 'fast-check';
import request from 'supertest';
import { ApiKeysService } from '../src/auth/api-keys.service';
import { bearer } from './helpers/api';
import { type ImportEntry, importFile, type Json } from './helpers/arbitraries';
import { invariantViolations } from './helpers/invariants';
import { createTestApp, resetDatabase, TestApp } from './helpers/test-app';

/**
 * Property-based fuzzing of POST /api/v1/import with generated files, in our export format and as
 * ChatGPT conversations: hostile message ids (0, negative, fractional, huge, 2^53 - 1, ids already
 * issued, ids far above the high-water mark), session ids (fresh, the caller's own, another
 * owner's), times (out of range, not on the calendar, huge seconds), sizes at and over the limits,
 * and Unicode (lone surrogates, NUL, characters that grow when case-mapped or encoded). For every
 * file:
 * - never a 5xx;
 * - a 4xx changes nothing;
 * - a 201 leaves every session it names readable (get, list, messages, each message by its id,
 *   export, append) with exact ids, the store's invariants hold, the other owner's data is untouched,
 *   importing the file again creates nothing, and the session's export imports back to the same
 *   data (its message ids renumbered, as this database issued them).
 * Seeded and short by default (FUZZ_IMPORT_RUNS files, default 15; FUZZ_SEED replays another run).
 */
const RUNS = Number(process.env.FUZZ_IMPORT_RUNS ?? 15);
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_201);

jest.setTimeout(Math.max(60_000, RUNS * 2_000));

type Row = Record<string, unknown>;

describe('Fuzzing POST /api/v1/import (e2e, fast-check)', () => {
  let t: TestApp;
  let bob: string;
  let alice: string;

  beforeAll(async () => {
    t = await createTestApp({ AUTH_MODE: 'api-key', RATE_LIMIT_PER_MINUTE: '0' });
    await resetDatabase(t.db);
    const keys = t.app.get(ApiKeysService);
    alice = (await keys.create('alice')).key;
    bob = (await keys.create('bob')).key;
    // The other owner's data, whose ids the files reach for.
    for (let s = 0; s < 3; s++) {
      const session = await request(t.http).post('/api/v1/sessions').set(bearer(alice)).send({});
      for (let m = 0; m < 3; m++) {
        await request(t.http)
          .post(`/api/v1/sessions/${session.body.id}/messages`)
          .set(bearer(alice))
          .send({ content: `alice ${s}.${m}` });
      }
    }
  });
  afterAll(() => t.close());

  async function rows(owner?: string): Promise<{ sessions: Row[]; messages: Row[] }> {
    const where = owner === undefined ? '' : `WHERE s."owner_id" = '${owner}'`;
    return t.db.read(async (m) => ({
      sessions: await m.query<Row[]>(`SELECT * FROM "sessions" s ${where} ORDER BY "id"`),
      messages: await m.query<Row[]>(
        `SELECT c.* FROM "chat_messages" c JOIN "sessions" s ON s."id" = c."session_id" ${where} ORDER BY c."id"`,
      ),
    }));
  }

  async function highWater(): Promise<number> {
    const [row]: { n: number | string | null }[] = await t.db.read((m) =>
      m.query(
        t.db.isSqlite
          ? `SELECT "seq" AS "n" FROM "sqlite_sequence" WHERE "name" = 'chat_messages'`
          : `SELECT CASE WHEN "is_called" THEN "last_value" ELSE "last_value" - 1 END AS "n" FROM "chat_messages_id_seq"`,
      ),
    );
    return Number(row?.n ?? 0);
  }

  /** The generated file as JSON, its choices resolved against the store as it is now. */
  async function build(entries: ImportEntry[]): Promise<Json[]> {
    const state = await rows();
    const mine = state.sessions.filter((s) => s.owner_id === 'bob').map((s) => String(s.id));
    const theirs = state.sessions.filter((s) => s.owner_id === 'alice').map((s) => String(s.id));
    const taken = state.messages.map((m) => Number(m.id));
    const high = await highWater();
    const pick = <T>(list: T[], index: number, fallback: T) =>
      list.length > 0 ? list[index % list.length] : fallback;
    let next = 0;
    return entries.map((entry): Json => {
      if (entry.kind === 'chatgpt') {
        const { c } = entry;
        const mapping: Record<string, Json> = {};
        c.turns.forEach((turn, i) => {
          mapping[`n${i}`] = {
            id: `n${i}`,
            parent: i === 0 ? null : `n${i - 1}`,
            children: i + 1 < c.turns.length ? [`n${i + 1}`] : [],
            message: {
              id: turn.id,
              author: { role: turn.role },
              create_time: turn.time,
              content: { content_type: 'text', parts: turn.parts },
              metadata: turn.slug === null ? {} : { model_slug: turn.slug },
            },
          };
        });
        return {
          conversation_id: c.key,
          title: c.title,
          create_time: c.create_time,
          update_time: c.update_time,
          default_model_slug: c.model,
          mapping,
          current_node: `n${c.turns.length - 1}`,
        };
      }
      const { s } = entry;
      const id =
        s.id.kind === 'fresh'
          ? s.id.value
          : s.id.kind === 'value'
            ? s.id.value
            : pick(s.id.kind === 'mine' ? mine : theirs, s.id.index, s.id.kind);
      return {
        session: {
          id,
          name: s.name,
          created_at: s.created_at,
          last_updated_at: s.last_updated_at,
          llm_model_name: s.llm_model_name,
          rag_document_ids: s.rag_document_ids,
          metadata_tags: s.metadata_tags,
          message_count: s.messages.length,
          archived: s.archived,
          pinned: s.pinned,
        },
        messages: s.messages.map((m) => ({
          ...(m.id === undefined
            ? {}
            : {
                id:
                  m.id.kind === 'value'
                    ? m.id.value
                    : m.id.kind === 'taken'
                      ? pick(taken, m.id.index, 1)
                      : high + m.id.offset + next++,
              }),
          session_id: typeof id === 'string' ? id : 'x',
          timestamp: m.timestamp,
          role: m.role,
          content: m.content,
          metadata: m.metadata,
        })),
      };
    });
  }

  async function expectReadable(id: string): Promise<void> {
    const get = (path: string) => request(t.http).get(path).set(bearer(bob));
    const session = await get(`/api/v1/sessions/${id}`);
    expect(session.status).toBe(200);
    const list = await get('/api/v1/sessions?archived=any&limit=1000');
    expect(list.body.map((s: { id: string }) => s.id)).toContain(id);
    const messages = await get(`/api/v1/sessions/${id}/messages`);
    expect(messages.status).toBe(200);
    for (const m of messages.body as { id: number }[]) {
      expect(Number.isSafeInteger(m.id) && m.id > 0 && m.id <= 999_999_999_999_999).toBe(true);
      expect((await get(`/api/v1/sessions/${id}/messages/${m.id}`)).body.id).toBe(m.id);
    }
    expect((await get(`/api/v1/sessions/${id}/export`)).status).toBe(200);
    expect((await get(`/api/v1/sessions/${id}/export?format=markdown`)).status).toBe(200);
    const appended = await request(t.http)
      .post(`/api/v1/sessions/${id}/messages`)
      .set(bearer(bob))
      .send({ content: 'appended after the import' });
    expect(appended.status).toBe(201);
    expect(appended.body.timestamp >= session.body.last_updated_at).toBe(true);
    expect((await get(`/api/v1/sessions/${id}/messages/${appended.body.id}`)).status).toBe(200);
  }

  /** The session's export, deleted and imported again, reads back the same but for message ids. */
  async function expectRoundTrip(id: string): Promise<void> {
    const path = `/api/v1/sessions/${id}/export`;
    const before = (await request(t.http).get(path).set(bearer(bob))).body as {
      messages: Row[];
    };
    expect((await request(t.http).delete(`/api/v1/sessions/${id}`).set(bearer(bob))).status).toBe(
      204,
    );
    const again = await request(t.http).post('/api/v1/import').set(bearer(bob)).send(before);
    expect({ status: again.status, body: again.body }).toEqual({
      status: 201,
      body: {
        imported: 1,
        skipped: 0,
        sessions: [id],
        message_ids: expect.any(String),
        renumbered_sessions: expect.any(Array),
      },
    });
    const after = (await request(t.http).get(path).set(bearer(bob))).body as { messages: Row[] };
    // Every message id (its own, its parent's, the session's current one) as its place in the list.
    const withoutIds = (e: { session?: Row; messages: Row[] }) => {
      const place = (id: unknown) =>
        id === null ? null : e.messages.findIndex((m) => m.id === id);
      return {
        ...e,
        session: { ...e.session, current_message_id: place(e.session?.current_message_id) },
        messages: e.messages.map((m) => ({ ...m, id: 0, parent_id: place(m.parent_id) })),
      };
    };
    expect(withoutIds(after)).toEqual(withoutIds(before));
  }

  it('never a 5xx; a 4xx changes nothing; a 201 leaves readable, exact, re-importable sessions', async () => {
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(importFile, async (entries) => {
        const body = await build(entries);
        const before = await rows();
        const theirs = await rows('alice');
        const res = await request(t.http)
          .post('/api/v1/import')
          .set(bearer(bob))
          .set('Content-Type', 'application/json')
          .send(JSON.stringify(body));
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        expect(res.status).toBeLessThan(500);
        if (res.status !== 201) {
          expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
          expect(res.status === 400 || res.status === 409).toBe(true);
          await expect(rows()).resolves.toEqual(before);
          return;
        }
        const result = res.body as {
          imported: number;
          skipped: number;
          sessions: string[];
          message_ids: string;
        };
        expect(result.imported + result.skipped).toBe(body.length);
        expect(new Set(result.sessions).size).toBe(body.length);
        await expect(rows('alice')).resolves.toEqual(theirs);
        await expect(invariantViolations(t.db, { messagesDeleted: true })).resolves.toEqual([]);
        const again = await request(t.http).post('/api/v1/import').set(bearer(bob)).send(body);
        expect(again.body).toMatchObject({ imported: 0, sessions: result.sessions });
        for (const id of result.sessions) await expectReadable(id);
        await expectRoundTrip(result.sessions[0]);
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    process.stdout.write(
      `fuzz-import: ${RUNS} files, statuses ${JSON.stringify(Object.fromEntries(statuses))}\n`,
    );
  });
});
