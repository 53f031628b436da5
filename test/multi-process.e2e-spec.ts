import { DataSource } from 'typeorm';
import { freshDatabaseUrl, onPostgres } from './helpers/database-target';
import { callJson, type JsonReply } from './helpers/http';
import { serversOn, startServer } from './helpers/server-process';

/**
 * Two real server processes on one PostgreSQL database (SQLite is single-process by design):
 * correctness must come from the database, as no in-process lock is shared.
 */
(onPostgres ? describe : describe.skip)(
  'Two API processes on one PostgreSQL database (e2e)',
  () => {
    let url: string;
    let servers: Awaited<ReturnType<typeof startServer>>[] = [];
    let db: DataSource;

    beforeAll(async () => {
      url = await freshDatabaseUrl('multi');
      ({ servers, db } = await serversOn(url, 2));
    }, 60_000);
    afterAll(async () => {
      await db?.destroy();
      await Promise.all(servers.map((s) => s.stop()));
    });

    it('ran each migration once', async () => {
      const executed: { name: string }[] = await db.query('SELECT "name" FROM "migrations"');
      expect(executed.length).toBe(new Set(executed.map((m) => m.name)).size);
    });

    it('keeps exact counts and forward-only timestamps under appends and racing deletes through both', async () => {
      const [a, b] = servers.map((s) => s.base);
      const sessions: string[] = [];
      for (let i = 0; i < 12; i++) {
        sessions.push(
          String((await callJson(i % 2 ? a : b, 'POST', '/api/v1/sessions', {})).body.id),
        );
      }
      const doomed = new Set(sessions.slice(0, 4));
      const work: Promise<{ session: string; kind: 'append' | 'delete'; reply: JsonReply }>[] = [];
      for (let i = 0; i < 600; i++) {
        const session = sessions[i % sessions.length];
        const base = i % 2 ? a : b;
        work.push(
          callJson(base, 'POST', `/api/v1/sessions/${session}/messages`, { content: `m${i}` }).then(
            (reply) => ({
              session,
              kind: 'append' as const,
              reply,
            }),
          ),
        );
        if (i % 150 === 75) {
          const victim = sessions[(i - 75) / 150];
          work.push(
            callJson(i % 3 ? a : b, 'DELETE', `/api/v1/sessions/${victim}`).then((reply) => ({
              session: victim,
              kind: 'delete' as const,
              reply,
            })),
          );
        }
      }
      const results = await Promise.all(work);

      expect(results.filter((r) => r.kind === 'delete').map((r) => r.reply.status)).toEqual([
        204, 204, 204, 204,
      ]);
      const appends = results.filter((r) => r.kind === 'append');
      expect(appends.filter((r) => r.reply.status !== 201 && r.reply.status !== 404)).toEqual([]);
      for (const r of appends.filter((x) => x.reply.status === 404))
        expect(doomed.has(r.session)).toBe(true);

      const stored: { id: string; session_id: string; timestamp: string }[] = await db.query(
        'SELECT "id", "session_id", "timestamp" FROM "chat_messages" ORDER BY "id"',
      );
      const storedIds = new Set(stored.map((m) => Number(m.id)));
      const survivors = appends.filter((r) => r.reply.status === 201 && !doomed.has(r.session));
      expect(survivors).toHaveLength(400);
      for (const r of survivors) expect(storedIds.has(Number(r.reply.body.id))).toBe(true);
      expect(stored.filter((m) => doomed.has(m.session_id))).toEqual([]);
      expect(stored).toHaveLength(400);

      const rows: { id: string; message_count: number; last_updated_at: string }[] = await db.query(
        'SELECT "id", "message_count", "last_updated_at" FROM "sessions"',
      );
      expect(rows).toHaveLength(8);
      for (const session of rows) {
        const own = stored.filter((m) => m.session_id === session.id);
        expect({ id: session.id, count: session.message_count }).toEqual({
          id: session.id,
          count: own.length,
        });
        // In id (commit) order, timestamps only move forward; the session shows the newest.
        const stamps = own.map((m) => Number(m.timestamp));
        for (let i = 1; i < stamps.length; i++) expect(stamps[i]).toBeGreaterThan(stamps[i - 1]);
        expect(Number(session.last_updated_at)).toBe(stamps.at(-1));
      }
    }, 60_000);

    it('lets one of two concurrent requests with the same Idempotency-Key write, across processes', async () => {
      const before: { n: string }[] = await db.query('SELECT COUNT(*) AS "n" FROM "sessions"');
      const replies = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          fetch(`${servers[i % 2].base}/api/v1/sessions`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json', 'Idempotency-Key': 'cross-process' },
            body: JSON.stringify({ name: 'once' }),
          }).then(async (res) => ({
            status: res.status,
            body: (await res.json()) as { id?: string },
          })),
        ),
      );
      expect(replies.filter((r) => r.status !== 201 && r.status !== 409)).toEqual([]);
      const ids = new Set(replies.filter((r) => r.status === 201).map((r) => r.body.id));
      expect(ids.size).toBe(1);
      const after: { n: string }[] = await db.query('SELECT COUNT(*) AS "n" FROM "sessions"');
      expect(Number(after[0].n) - Number(before[0].n)).toBe(1);
    });
  },
);
