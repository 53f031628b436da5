import fc from 'fast-check';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiKeysService } from '../src/auth/api-keys.service';
import { spell, spelling } from './helpers/arbitraries';
import { RawReply, rawRequest } from './helpers/raw-http';
import { countRows, createTestApp, TestApp } from './helpers/test-app';

/**
 * Property-based fuzzing of path spellings with AUTH_MODE=api-key: every route, spelled with its
 * letters' case changed, characters percent-encoded, slashes doubled or encoded, `.` and `..`
 * segments, trailing dots and slashes. For every request:
 * - never a 5xx;
 * - without a key, nothing but the public routes (`GET /`, `/health/*`, the docs) answers 2xx, and
 *   nothing is written;
 * - with a key, every 4xx is a problem document.
 * Seeded and bounded: FUZZ_RUNS cases per property (default 200), FUZZ_SEED to replay another run.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 200);
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_124);

jest.setTimeout(Math.max(60_000, RUNS * 200));

let t: TestApp;
let agent: http.Agent;
let port: number;
let key: string;
let sessionId: string;
let messageId: number;

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

/** Every route of the service, with ids that exist (so a spelling that reaches it could succeed). */
const routes = (): [Method, string][] => [
  ['GET', '/api/v1/sessions'],
  ['POST', '/api/v1/sessions'],
  ['GET', `/api/v1/sessions/${sessionId}`],
  ['PATCH', `/api/v1/sessions/${sessionId}`],
  ['DELETE', `/api/v1/sessions/${sessionId}`],
  ['GET', `/api/v1/sessions/${sessionId}/messages`],
  ['POST', `/api/v1/sessions/${sessionId}/messages`],
  ['GET', `/api/v1/sessions/${sessionId}/messages/${messageId}`],
  ['DELETE', `/api/v1/sessions/${sessionId}/messages/${messageId}`],
  ['GET', `/api/v1/sessions/${sessionId}/export`],
  ['GET', '/api/v1/export'],
  ['POST', '/api/v1/import'],
  ['GET', '/api/v1/search?q=x'],
];

const PUBLIC = /^\/(health\/(live|ready))?$|^\/docs/;

function send(method: Method, path: string, withKey: boolean): Promise<RawReply> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (withKey) headers.Authorization = `Bearer ${key}`;
  const body = method === 'POST' || method === 'PATCH' ? Buffer.from('{}') : undefined;
  return rawRequest(agent, port, { method, path, headers, body });
}

beforeAll(async () => {
  t = await createTestApp({ AUTH_MODE: 'api-key', RATE_LIMIT_PER_MINUTE: '0' });
  await new Promise<void>((resolve) => t.http.listen(0, '127.0.0.1', resolve));
  port = (t.http.address() as AddressInfo).port;
  agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  key = (await t.app.get(ApiKeysService).create('fuzzer')).key;
  const session = await send('POST', '/api/v1/sessions', true);
  sessionId = (JSON.parse(session.text) as { id: string }).id;
  const message = await rawRequest(agent, port, {
    method: 'POST',
    path: `/api/v1/sessions/${sessionId}/messages`,
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
    body: Buffer.from('{"content":"hello"}'),
  });
  messageId = (JSON.parse(message.text) as { id: number }).id;
});
afterAll(async () => {
  agent.destroy();
  await t.close();
});

describe('Path spellings (fuzz, e2e)', () => {
  it('serves nothing but the public routes without a key, never a 5xx, writes nothing', async () => {
    await fc.assert(
      fc.asyncProperty(spelling, async ([route, steps]) => {
        const all = routes();
        const [method, path] = all[route % all.length];
        const spelled = spell(path, steps);
        const reply = await send(method, spelled, false);
        expect({ spelled, status: reply.status }).toEqual({
          spelled,
          status: expect.any(Number) as number,
        });
        expect(reply.status).toBeLessThan(500);
        if (reply.status < 400) {
          // Only a public route may answer, whatever the spelling turned into.
          expect({ spelled, public: PUBLIC.test(spelled.split('?')[0]) }).toEqual({
            spelled,
            public: true,
          });
        }
        expect(await countRows(t.db, 'sessions')).toBe(1);
        expect(await countRows(t.db, 'chat_messages')).toBe(1);
      }),
      {
        numRuns: RUNS,
        seed: SEED,
        examples: [
          [[0, [['upper', 1]]]],
          [[12, [['lowerCaseFlip', 2]]]],
          [[1, [['percentEncode', 1]]]],
          [[0, [['doubleSlash', 0]]]],
          [[0, [['encodedSlash', 4]]]],
          [[2, [['dotSegment', 4]]]],
          [[2, [['trailingDot', 0]]]],
          [[0, [['trailingSlashes', 0]]]],
        ],
      },
    );
  });

  it('never answers a 5xx with a key, and every 4xx is a problem document', async () => {
    await fc.assert(
      fc.asyncProperty(spelling, async ([route, steps]) => {
        const all = routes().filter(([method]) => method === 'GET');
        const [method, path] = all[route % all.length];
        const spelled = spell(path, steps);
        const reply = await send(method, spelled, true);
        expect({ spelled, status: reply.status < 500 }).toEqual({ spelled, status: true });
        if (reply.status >= 400) {
          expect(reply.headers['content-type']).toBe('application/problem+json; charset=utf-8');
          expect(JSON.parse(reply.text)).toMatchObject({ status: reply.status });
        }
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });

  it('keeps trailing slashes working on every route', async () => {
    for (const [method, path] of routes().filter(([m]) => m === 'GET')) {
      const [bare, query] = path.split('?');
      const reply = await send(method, `${bare}/${query ? `?${query}` : ''}`, true);
      expect({ path, status: reply.status }).toEqual({ path, status: 200 });
    }
  });
});
