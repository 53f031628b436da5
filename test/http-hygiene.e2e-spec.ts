import request from 'supertest';
import { countRows, createTestApp, resetDatabase, TestApp } from './helpers/test-app';

/** Hostile and malformed requests: each gets a clear 4xx problem document and changes nothing. */
describe('Hostile input and HTTP hygiene (e2e)', () => {
  let t: TestApp;
  let sessionId: string;

  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());
  beforeEach(async () => {
    await resetDatabase(t.db);
    sessionId = (await request(t.http).post('/api/v1/sessions').send({})).body.id;
  });

  async function expectNothingChanged(): Promise<void> {
    expect(await countRows(t.db, 'sessions')).toBe(1);
    expect(await countRows(t.db, 'chat_messages')).toBe(0);
  }

  function expectProblem(res: request.Response, status: number, instance: string): void {
    expect(res.status).toBe(status);
    expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(res.body).toMatchObject({
      type: 'about:blank',
      status,
      instance,
      detail: expect.any(String),
    });
    expect(JSON.stringify(res.body)).not.toMatch(/SQLITE|at .*\.ts:\d+|node_modules/);
  }

  const paths = () => ['/api/v1/sessions', `/api/v1/sessions/${sessionId}/messages`];

  describe('malformed bodies', () => {
    it.each([
      ['{"content": "x"', 'truncated JSON'],
      ["{'content': 'x'}", 'single quotes'],
      ['{"content": "x",}', 'trailing comma'],
      ['"just a string"', 'a JSON string'],
      ['42', 'a JSON number'],
      ['null', 'JSON null'],
      ['\u0000\u0001', 'binary noise'],
    ])('answers 400 to %s (%s)', async (body) => {
      for (const path of paths()) {
        const res = await request(t.http)
          .post(path)
          .set('Content-Type', 'application/json')
          .send(body);
        expectProblem(res, 400, path);
      }
      await expectNothingChanged();
    });

    it.each([['[]'], ['[{"content":"x"}]']])(
      'answers 400 to a JSON array body %s',
      async (body) => {
        for (const path of paths()) {
          const res = await request(t.http)
            .post(path)
            .set('Content-Type', 'application/json')
            .send(body);
          expectProblem(res, 400, path);
          expect(res.body.errors).toEqual([
            { field: 'body', message: 'the request body must be a JSON object' },
          ]);
        }
        await expectNothingChanged();
      },
    );

    it.each(['__proto__', 'constructor', 'prototype'])(
      'refuses a top-level %s key',
      async (key) => {
        const body = `{"content":"x","${key}":{"polluted":true}}`;
        const res = await request(t.http)
          .post(paths()[1])
          .set('Content-Type', 'application/json')
          .send(body);
        expectProblem(res, 400, paths()[1]);
        expect(res.body.errors).toEqual([
          { field: key, message: `property ${key} should not exist` },
        ]);
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
        await expectNothingChanged();
      },
    );

    it('refuses a body nested 100,000 levels deep without crashing', async () => {
      const body = `{"content":"x","metadata":${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}}`;
      const res = await request(t.http)
        .post(paths()[1])
        .set('Content-Type', 'application/json')
        .send(body);
      expectProblem(res, 400, paths()[1]);
      const arrays = `{"content":"x","metadata":{"a":${'['.repeat(50_000)}${']'.repeat(50_000)}}}`;
      const res2 = await request(t.http)
        .post(paths()[1])
        .set('Content-Type', 'application/json')
        .send(arrays);
      expectProblem(res2, 400, paths()[1]);
      await expectNothingChanged();
    });
  });

  describe('content types and sizes', () => {
    it.each([
      ['text/plain', '{"content":"x"}'],
      ['application/x-www-form-urlencoded', 'content=x'],
      ['multipart/form-data; boundary=x', '--x\r\n\r\nx\r\n--x--'],
      ['application/xml', '<content>x</content>'],
    ])('answers 415 to a %s body', async (type, body) => {
      for (const path of paths()) {
        const res = await request(t.http).post(path).set('Content-Type', type).send(body);
        expectProblem(res, 415, path);
      }
      await expectNothingChanged();
    });

    it('answers 415 to JSON in an unsupported charset', async () => {
      const res = await request(t.http)
        .post(paths()[1])
        .set('Content-Type', 'application/json; charset=latin1')
        .send('{"content":"x"}');
      expectProblem(res, 415, paths()[1]);
      await expectNothingChanged();
    });

    it('accepts application/json with a charset and +json types', async () => {
      const res = await request(t.http)
        .post(paths()[1])
        .set('Content-Type', 'application/json; charset=utf-8')
        .send('{"content":"x"}');
      expect(res.status).toBe(201);
      const res2 = await request(t.http)
        .post(paths()[1])
        .set('Content-Type', 'application/merge-patch+json')
        .send('{"content":"y"}');
      expect(res2.status).toBe(201);
    });

    it('answers 413 to a body over 1 MiB, and accepts one just under', async () => {
      const over = JSON.stringify({ content: 'x'.repeat(1024 * 1024) });
      const res = await request(t.http)
        .post(paths()[1])
        .set('Content-Type', 'application/json')
        .send(over);
      expectProblem(res, 413, paths()[1]);
      await expectNothingChanged();
      const under = JSON.stringify({ content: 'x', metadata: { pad: 'p'.repeat(16_000) } });
      expect(
        (await request(t.http).post(paths()[1]).set('Content-Type', 'application/json').send(under))
          .status,
      ).toBe(201);
    });
  });

  describe('routing', () => {
    it.each([
      ['get', '/api/v1/nothing'],
      ['put', '/api/v1/sessions'],
      ['patch', '/api/v1/sessions/x/messages'],
      ['get', '/api/v2/sessions'],
    ] as const)('answers %s %s with a 404 problem', async (method, path) => {
      const res = await request(t.http)[method](path);
      expectProblem(res, 404, path);
    });

    it('answers trailing-slash paths directly, without a redirect', async () => {
      for (const path of [
        `/api/v1/sessions/`,
        `/api/v1/sessions/${sessionId}/`,
        `${paths()[1]}/`,
      ]) {
        const res = await request(t.http).get(path);
        expect(res.status).toBe(200);
      }
    });

    it('does not reflect the query string into problem documents', async () => {
      const res = await request(t.http).get('/api/v1/sessions?limit=0&secret=<script>');
      expectProblem(res, 400, '/api/v1/sessions');
    });
  });

  describe('headers', () => {
    it('echoes a valid X-Request-Id and generates one otherwise', async () => {
      const echoed = await request(t.http).get('/').set('X-Request-Id', 'abc-123');
      expect(echoed.headers['x-request-id']).toBe('abc-123');
      const generated = await request(t.http)
        .get('/')
        .set('X-Request-Id', 'bad id with spaces\u00e9');
      expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    });

    it('sends security headers and no X-Powered-By', async () => {
      const res = await request(t.http).get('/api/v1/sessions');
      expect(res.headers['x-powered-by']).toBeUndefined();
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['content-security-policy']).toBeDefined();
    });

    it('sends no CORS headers when CORS_ORIGINS is empty', async () => {
      const res = await request(t.http)
        .get('/api/v1/sessions')
        .set('Origin', 'https://evil.example');
      expect(res.headers['access-control-allow-origin']).toBeUndefined();
    });
  });
});

describe('CORS (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp({ CORS_ORIGINS: 'https://app.example, http://localhost:3000' });
  });
  afterAll(() => t.close());

  it('allows the configured origins and exposes the list headers', async () => {
    const res = await request(t.http).get('/api/v1/sessions').set('Origin', 'https://app.example');
    expect(res.headers['access-control-allow-origin']).toBe('https://app.example');
    expect(res.headers['access-control-expose-headers']).toContain('X-Total-Count');
  });

  it('answers preflight requests for configured origins only', async () => {
    const ok = await request(t.http)
      .options('/api/v1/sessions')
      .set('Origin', 'http://localhost:3000')
      .set('Access-Control-Request-Method', 'POST');
    expect(ok.status).toBe(204);
    expect(ok.headers['access-control-allow-origin']).toBe('http://localhost:3000');
    const denied = await request(t.http)
      .get('/api/v1/sessions')
      .set('Origin', 'https://evil.example');
    expect(denied.headers['access-control-allow-origin']).toBeUndefined();
  });
});
