import { Logger } from '@nestjs/common';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { EXPOSED_HEADERS } from '../src/app.setup';
import { ApiKeysService } from '../src/auth/api-keys.service';
import { bearer } from './helpers/api';
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

    it('refuses a body nested 100,000 levels deep without crashing, naming where it passes 32 levels', async () => {
      const body = `{"content":"x","metadata":${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}}`;
      const res = await request(t.http)
        .post(paths()[1])
        .set('Content-Type', 'application/json')
        .send(body);
      expectProblem(res, 400, paths()[1]);
      // The body is level 1 and `metadata` level 2: the 31st "a" under it is the 33rd level.
      const objects = `metadata${'.a'.repeat(31)}`;
      expect(res.body).toMatchObject({
        detail: `Request validation failed: ${objects} is nested more than 32 levels deep`,
        errors: [{ field: objects, message: `${objects} is nested more than 32 levels deep` }],
      });
      const arrays = `{"content":"x","metadata":{"a":${'['.repeat(50_000)}${']'.repeat(50_000)}}}`;
      const res2 = await request(t.http)
        .post(paths()[1])
        .set('Content-Type', 'application/json')
        .send(arrays);
      expectProblem(res2, 400, paths()[1]);
      const inArrays = `metadata.a${'[0]'.repeat(30)}`;
      expect(res2.body.errors).toEqual([
        { field: inArrays, message: `${inArrays} is nested more than 32 levels deep` },
      ]);
      await expectNothingChanged();
    });

    it.each([
      ['a key that is not a plain name', '{"x y":', '["x y"]'],
      ['a key longer than 64 characters', `{"${'k'.repeat(100)}":`, `["${'k'.repeat(64)}…"]`],
    ])('names the place of a body nested too deep through %s', async (_label, open, segment) => {
      const body = `{"content":"x","metadata":${open.repeat(40)}1${'}'.repeat(40)}}`;
      const res = await request(t.http)
        .post(paths()[1])
        .set('Content-Type', 'application/json')
        .send(body);
      expectProblem(res, 400, paths()[1]);
      const field = `metadata${segment.repeat(31)}`;
      expect(res.body.errors).toEqual([
        { field, message: `${field} is nested more than 32 levels deep` },
      ]);
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

    it.each([
      ['get', '/API/v1/sessions'],
      ['get', '/Api/v1/search?q=x'],
      ['post', '/API/v1/sessions'],
      ['get', '/api/V1/sessions'],
    ] as const)(
      'routes case-sensitively: %s %s is a 404 problem, not a 5xx',
      async (method, path) => {
        const res = await request(t.http)[method](path).send({});
        expectProblem(res, 404, path.split('?')[0]);
        await expectNothingChanged();
      },
    );

    it('does not let another spelling of a path create a second session under one Idempotency-Key', async () => {
      const first = await request(t.http)
        .post('/api/v1/sessions')
        .set('Idempotency-Key', 'spelling-1')
        .send({ name: 'once' });
      expect(first.status).toBe(201);
      const other = await request(t.http)
        .post('/API/v1/sessions')
        .set('Idempotency-Key', 'spelling-1')
        .send({ name: 'once' });
      expect(other.status).toBe(404);
      expect(await countRows(t.db, 'sessions')).toBe(2);
    });

    it('does not reflect the query string into problem documents', async () => {
      const res = await request(t.http).get('/api/v1/sessions?limit=0&secret=<script>');
      expectProblem(res, 400, '/api/v1/sessions');
    });

    it('does not reflect the query string of an unknown route either', async () => {
      const res = await request(t.http).get('/api/v1/nowhere?secret=<script>');
      expectProblem(res, 404, '/api/v1/nowhere');
      expect(res.body).toEqual(expect.objectContaining({ detail: 'Cannot GET /api/v1/nowhere' }));
    });
  });

  describe('bodies', () => {
    it('reads a missing POST body as {} and ignores a GET body', async () => {
      const created = await request(t.http).post('/api/v1/sessions');
      expect(created.status).toBe(201);
      const listed = await request(t.http)
        .get('/api/v1/sessions')
        .set('Content-Type', 'text/plain')
        .send('not json at all');
      expect(listed.status).toBe(200);
      expect(listed.body).toHaveLength(2);
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

    it('logs one line per request at LOG_LEVEL=info, none at warn, and sends X-Request-Id either way', async () => {
      const log = jest.spyOn(Logger.prototype, 'log');
      const requestLines = () =>
        log.mock.calls.map(([m]) => String(m)).filter((m) => m.startsWith('GET /api/v1/sessions '));
      try {
        // This file's app runs at the tests' default level, warn.
        const quiet = await request(t.http).get('/api/v1/sessions');
        expect(quiet.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
        expect(requestLines()).toEqual([]);
        const info = await createTestApp({ LOG_LEVEL: 'info' });
        try {
          const logged = await request(info.http).get('/api/v1/sessions');
          expect(requestLines()).toEqual([
            expect.stringMatching(/^GET \/api\/v1\/sessions 200 [\d.]+ms id=[\w-]+$/),
          ]);
          expect(requestLines()[0]).toContain(`id=${logged.headers['x-request-id']}`);
        } finally {
          await info.close();
        }
      } finally {
        log.mockRestore();
      }
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

  it('allows the configured origins and exposes every header the contract gives clients', async () => {
    const res = await request(t.http).get('/api/v1/sessions').set('Origin', 'https://app.example');
    expect(res.headers['access-control-allow-origin']).toBe('https://app.example');
    expect(res.headers['access-control-expose-headers']?.split(',').sort()).toEqual(
      [
        'X-Total-Count',
        'Link',
        'X-Request-Id',
        'RateLimit-Limit',
        'RateLimit-Remaining',
        'RateLimit-Reset',
        'Retry-After',
        'Idempotent-Replayed',
        'Content-Disposition',
        'WWW-Authenticate',
      ].sort(),
    );
    expect(EXPOSED_HEADERS).toHaveLength(10);
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

/**
 * With AUTH_MODE=api-key nothing a caller sends is read before it is known: bodies are parsed after
 * the guards, every route but the public ones needs a key, and an early answer to a request whose
 * body is still arriving closes the connection instead of reading the rest.
 */
describe('Nothing is read before authentication (e2e)', () => {
  let t: TestApp;
  let port: number;
  let key: string;

  beforeAll(async () => {
    t = await createTestApp({ AUTH_MODE: 'api-key', RATE_LIMIT_PER_MINUTE: '0' });
    await new Promise<void>((resolve) => t.http.listen(0, '127.0.0.1', resolve));
    port = (t.http.address() as AddressInfo).port;
    key = (await t.app.get(ApiKeysService).create('alice')).key;
  });
  afterAll(() => t.close());

  it.each([
    ['malformed JSON', 'application/json', '{"name":'],
    [
      'a body over 1 MiB',
      'application/json',
      JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024) }),
    ],
    ['a body that is not JSON', 'text/plain', 'hello'],
  ])('answers 401, not a body error, to an unauthenticated POST with %s', async (_, type, body) => {
    for (const path of ['/api/v1/sessions', '/api/v1/import', '/API/v1/sessions']) {
      const res = await request(t.http).post(path).set('Content-Type', type).send(body);
      expect({ path, status: res.status }).toEqual({
        path,
        status: path === '/API/v1/sessions' ? 404 : 401,
      });
    }
    expect(await countRows(t.db, 'sessions')).toBe(0);
  });

  it('still answers body errors to an authenticated caller', async () => {
    const res = await request(t.http)
      .post('/api/v1/sessions')
      .set(bearer(key))
      .set('Content-Type', 'application/json')
      .send('{"name":');
    expect({ status: res.status, detail: res.body.detail }).toEqual({
      status: 400,
      detail: 'Malformed JSON in request body.',
    });
  });

  it('answers an unauthenticated request at once, without waiting for its body, and closes the connection', async () => {
    const started = performance.now();
    const reply = await new Promise<{ status: number; connection?: string }>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/api/v1/import',
          headers: { 'Content-Type': 'application/x-ndjson', 'Content-Length': 40 * 1024 * 1024 },
        },
        (res) => {
          res.resume();
          resolve({ status: res.statusCode ?? 0, connection: res.headers.connection });
          req.destroy();
        },
      );
      req.on('error', (error: NodeJS.ErrnoException) => {
        if (error.code !== 'ECONNRESET' && error.code !== 'EPIPE') reject(error);
      });
      // Only the first 64 KiB of the announced 40 MiB are ever sent.
      req.write(Buffer.alloc(64 * 1024, 0x20));
    });
    expect(reply).toEqual({ status: 401, connection: 'close' });
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it.each(['/', '/health/live', '/health/ready', '/docs-json'])('keeps %s open', async (path) => {
    expect((await request(t.http).get(path)).status).toBe(200);
  });
});

describe('Security headers (e2e)', () => {
  describe('by default (plain HTTP)', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await createTestApp({ BEHIND_HTTPS: 'false' });
    });
    afterAll(() => t.close());

    it.each(['/docs', '/api/v1/sessions'])(
      '%s: a strict CSP without upgrade-insecure-requests, and no HSTS or COOP',
      async (path) => {
        const res = await request(t.http).get(path);
        const csp = String(res.headers['content-security-policy']);
        expect({
          scriptSrc: /(^|;)script-src 'self'(;|$)/.test(csp),
          objectSrc: csp.includes("object-src 'none'"),
          upgrade: csp.includes('upgrade-insecure-requests'),
          hsts: res.headers['strict-transport-security'],
          coop: res.headers['cross-origin-opener-policy'],
          nosniff: res.headers['x-content-type-options'],
        }).toEqual({
          scriptSrc: true,
          objectSrc: true,
          upgrade: false,
          hsts: undefined,
          coop: undefined,
          nosniff: 'nosniff',
        });
      },
    );
  });

  describe('with BEHIND_HTTPS=true', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await createTestApp({ BEHIND_HTTPS: 'true' });
    });
    afterAll(async () => {
      await t.close();
      delete process.env.BEHIND_HTTPS;
    });

    it('adds upgrade-insecure-requests, HSTS and COOP', async () => {
      const res = await request(t.http).get('/docs');
      expect({
        upgrade: String(res.headers['content-security-policy']).includes(
          'upgrade-insecure-requests',
        ),
        hsts: res.headers['strict-transport-security'],
        coop: res.headers['cross-origin-opener-policy'],
      }).toEqual({
        upgrade: true,
        hsts: expect.stringMatching(/^max-age=\d+/),
        coop: 'same-origin',
      });
    });
  });
});
