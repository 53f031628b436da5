import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { validateEnv } from '../src/config/env.validation';
import { buildDataSourceOptions } from '../src/database/database.options';
import { freshDatabaseUrl, onPostgres } from './helpers/database-target';
import { invariantViolations, readerOf } from './helpers/invariants';
import { startServer } from './helpers/server-process';

/** A POST whose body arrives in two halves, `gapMs` apart: a request in flight for that long. */
function slowPost(
  base: string,
  path: string,
  body: unknown,
  gapMs: number,
): { sentHalf: Promise<void>; reply: Promise<{ status: number; body: unknown }> } {
  const text = JSON.stringify(body);
  let halfSent: () => void;
  const sentHalf = new Promise<void>((resolve) => (halfSent = resolve));
  const reply = new Promise<{ status: number; body: unknown }>((resolve, reject) => {
    const { port } = new URL(base);
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) },
      },
      (res) => {
        let answer = '';
        res.on('data', (chunk: Buffer) => (answer += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(answer) }));
      },
    );
    req.on('error', reject);
    req.write(text.slice(0, 10), () => halfSent());
    setTimeout(() => req.end(text.slice(10)), gapMs);
  });
  return { sentHalf, reply };
}

describe('Graceful shutdown (e2e, built server, SIGTERM)', () => {
  it('lets the requests in flight finish, refuses new ones, exits 0 and keeps the data', async () => {
    const url = await freshDatabaseUrl('sigterm');
    const server = await startServer({ DATABASE_URL: url });
    const created = await fetch(`${server.base}/api/v1/sessions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'shutdown' }),
    });
    const session = (await created.json()) as { id: string };
    const path = `/api/v1/sessions/${session.id}/messages`;

    const slow = slowPost(server.base, path, { content: 'finished during shutdown' }, 400);
    await slow.sentHalf;
    await sleep(50);
    const exited = server.stop();
    await sleep(100);
    // The listening socket is closed: a new connection is refused while the slow request runs.
    await expect(fetch(`${server.base}/health/live`)).rejects.toThrow();

    const reply = await slow.reply;
    expect(reply).toEqual({
      status: 201,
      body: {
        id: expect.any(Number),
        session_id: session.id,
        timestamp: expect.any(String),
        role: 'user',
        content: 'finished during shutdown',
        metadata: null,
        parent_id: null,
        status: 'complete',
        generation: null,
      },
    });
    expect(await exited).toEqual({ code: 0, signal: null });
    expect(server.stderr()).toBe('');

    const restarted = await startServer({ DATABASE_URL: url });
    try {
      const history = await fetch(`${restarted.base}${path}`);
      expect(await history.json()).toEqual([reply.body]);
      const dataSource = await new DataSource(
        buildDataSourceOptions(validateEnv({ DATABASE_URL: url })),
      ).initialize();
      try {
        expect(await invariantViolations(readerOf(dataSource))).toEqual([]);
      } finally {
        await dataSource.destroy();
      }
    } finally {
      expect(await restarted.stop()).toEqual({ code: 0, signal: null });
    }
  }, 30_000);

  /**
   * A request whose client has gone away is still running in its handler; the HTTP server's close
   * does not wait for it, and the database pool is closed underneath it: the append fails with
   * "Connection terminated" (logged with its stack) and the server exits before it finished. Made
   * deterministic on PostgreSQL by holding the session's row lock from another connection.
   */
  (onPostgres ? it.failing : it.skip)(
    'lets a handler whose client has disconnected finish before closing the database',
    async () => {
      const url = await freshDatabaseUrl('sigterm_abandoned');
      const server = await startServer({ DATABASE_URL: url });
      const created = await fetch(`${server.base}/api/v1/sessions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: '{}',
      });
      const { id } = (await created.json()) as { id: string };
      const blocker = new Client({ connectionString: url });
      await blocker.connect();
      try {
        await blocker.query('BEGIN');
        await blocker.query(`SELECT "id" FROM "sessions" WHERE "id" = $1 FOR UPDATE`, [id]);
        const { port } = new URL(server.base);
        const abandoned = http.request({
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: `/api/v1/sessions/${id}/messages`,
          headers: { 'Content-Type': 'application/json' },
        });
        abandoned.on('error', () => undefined);
        abandoned.end('{"content":"the client will not wait for this"}');
        await sleep(300); // the append now waits for the row lock
        abandoned.destroy();
        await sleep(100);
        const exited = server.stop();
        let exitedAt = Infinity;
        void exited.then(() => (exitedAt = Date.now()));
        await sleep(300);
        const releasedAt = Date.now();
        await blocker.query('ROLLBACK');
        expect(await exited).toEqual({ code: 0, signal: null });
        // The handler can only finish once the lock is released: a process that waits for it
        // exits after that. (PostgreSQL completes the orphaned INSERT even after the process is
        // gone, so the row count below alone does not tell.)
        expect(exitedAt).toBeGreaterThan(releasedAt);
        expect(server.stderr()).toBe('');
        const check = new Client({ connectionString: url });
        await check.connect();
        try {
          const { rows } = await check.query(`SELECT COUNT(*) AS "n" FROM "chat_messages"`);
          expect(Number(rows[0].n)).toBe(1);
        } finally {
          await check.end();
        }
      } finally {
        await blocker.end();
      }
    },
    30_000,
  );
});
