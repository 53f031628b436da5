import http from 'node:http';
import request from 'supertest';
import { freshDatabaseUrl } from './helpers/database-target';
import { createTestApp, TestApp } from './helpers/test-app';
import { invariantViolations } from './helpers/invariants';

describe('Persistence (e2e)', () => {
  let databaseUrl: string;
  beforeAll(async () => {
    databaseUrl = await freshDatabaseUrl('persistence');
  });

  it('keeps sessions and messages across a restart on the same file', async () => {
    const first: TestApp = await createTestApp({ DATABASE_URL: databaseUrl });
    const session = (
      await request(first.http)
        .post('/api/v1/sessions')
        .send({ name: 'kept', rag_document_ids: ['d1'] })
    ).body;
    const messages = [];
    for (const content of ['one', 'two 😀', 'three']) {
      const res = await request(first.http)
        .post(`/api/v1/sessions/${session.id}/messages`)
        .send({ content, role: 'assistant', metadata: { n: content.length } });
      messages.push(res.body);
    }
    const before = (await request(first.http).get(`/api/v1/sessions/${session.id}`)).body;
    await first.close();

    const second = await createTestApp({ DATABASE_URL: databaseUrl });
    try {
      const after = await request(second.http).get(`/api/v1/sessions/${session.id}`);
      expect(after.body).toEqual(before);
      expect(after.body.message_count).toBe(3);
      const history = await request(second.http).get(`/api/v1/sessions/${session.id}/messages`);
      expect(history.body).toEqual(messages);
      // Ids keep counting up after a restart; they are never reused.
      const next = await request(second.http)
        .post(`/api/v1/sessions/${session.id}/messages`)
        .send({ content: 'four' });
      expect(next.body.id).toBeGreaterThan(messages[2].id);
      expect(await invariantViolations(second.db)).toEqual([]);
    } finally {
      await second.close();
    }
  });

  it('finishes a request that is in flight when the app shuts down', async () => {
    const t = await createTestApp({ DATABASE_URL: databaseUrl });
    await t.app.listen(0, '127.0.0.1');
    const base = await t.app.getUrl();
    const session = (await request(t.http).post('/api/v1/sessions').send({})).body;
    // Send half of the body, start the shutdown, then send the rest: the request is in flight.
    const body = JSON.stringify({ content: 'in flight' });
    const { port } = new URL(base);
    const reply = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request(
        {
          port,
          host: '127.0.0.1',
          method: 'POST',
          path: `/api/v1/sessions/${session.id}/messages`,
        },
        (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => (text += chunk.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      req.setHeader('Content-Type', 'application/json');
      req.setHeader('Content-Length', Buffer.byteLength(body));
      req.write(body.slice(0, 5));
      setTimeout(() => req.end(body.slice(5)), 200);
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const closing = t.close();
    const res = await reply;
    expect(res.status).toBe(201);
    expect(JSON.parse(res.text)).toMatchObject({ content: 'in flight' });
    await closing;

    const reopened = await createTestApp({ DATABASE_URL: databaseUrl });
    try {
      const stored = await request(reopened.http).get(`/api/v1/sessions/${session.id}/messages`);
      expect(stored.body).toHaveLength(1);
    } finally {
      await reopened.close();
    }
  });
});
