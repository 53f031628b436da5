import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { DataSource } from 'typeorm';
import { validateEnv } from '../src/config/env.validation';
import { buildDataSourceOptions } from '../src/database/database.options';
import { freshDatabaseUrl } from './helpers/database-target';
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
});
