import request from 'supertest';
import { createTestApp, TestApp } from './helpers/test-app';

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
