import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import {
  ARTIFACTS,
  BROWSER_HOST,
  describeOnce,
  launchChromium,
  watchProblems,
} from './helpers/browser';
import { MAIN, RunningServer, startServer } from './helpers/server-process';

/*
 * The Swagger console as a person meets it, in a real browser, reached through a host name that is
 * not loopback (browsers treat loopback specially: they never upgrade it to HTTPS). The page is the
 * same whatever the database, so these run once, on the SQLite project.
 */
jest.setTimeout(60_000);

interface Console {
  /** Console errors, failed requests and CSP violations, in the order they happened. */
  problems: string[];
}

async function openDocs(browser: Browser, server: RunningServer): Promise<[Page, Console]> {
  const port = new URL(server.base).port;
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const seen: Console = { problems: await watchProblems(page) };
  await page.goto(`http://${BROWSER_HOST}:${port}/docs`, { waitUntil: 'load' });
  await page.locator('.opblock').first().waitFor({ timeout: 15_000 });
  return [page, seen];
}

/** Expands an operation, presses Try it out, fills it in and executes it; returns the status shown. */
async function tryItOut(
  page: Page,
  operationId: string,
  fill: { params?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; body: string }> {
  const block = page.locator(`[id$="-${operationId}"]`);
  await block.locator('.opblock-summary').first().click();
  await block.locator('button.try-out__btn').click();
  for (const [name, value] of Object.entries(fill.params ?? {})) {
    await block.locator(`tr[data-param-name="${name}"] input`).fill(value);
  }
  if (fill.body !== undefined) await block.locator('textarea.body-param__text').fill(fill.body);
  await block.locator('button.execute').click();
  const status = block.locator('.live-responses-table .response .response-col_status').first();
  await status.waitFor({ timeout: 10_000 });
  const body = await block
    .locator('.live-responses-table .response-col_description pre.microlight')
    .first()
    .innerText();
  const code = Number((await status.innerText()).trim().split(/\s/)[0]);
  // Collapsed again, so the next operation's controls are the only ones on screen.
  await block.locator('.opblock-summary').first().click();
  return { status: code, body };
}

/** Create a session, post a message to it, list its messages: the first things a person tries. */
async function createPostList(page: Page): Promise<void> {
  const created = await tryItOut(page, 'SessionsController_create', {
    body: '{"name": "Browser trip"}',
  });
  expect(created.status).toBe(201);
  const id = (JSON.parse(created.body) as { id: string }).id;
  const posted = await tryItOut(page, 'MessagesController_append', {
    params: { id },
    body: '{"content": "Hello from the console"}',
  });
  expect(posted.status).toBe(201);
  const listed = await tryItOut(page, 'MessagesController_list', { params: { id } });
  expect({ status: listed.status, body: JSON.parse(listed.body) as unknown }).toEqual({
    status: 200,
    body: [expect.objectContaining({ session_id: id, content: 'Hello from the console' })],
  });
}

describeOnce('Swagger console in Chromium (e2e)', () => {
  let browser: Browser;

  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(() => browser?.close());

  describe('AUTH_MODE=none', () => {
    let server: RunningServer;

    beforeAll(async () => {
      server = await startServer({ DATABASE_URL: 'sqlite::memory:', AUTH_MODE: 'none' });
    });
    afterAll(() => server.stop());

    it('renders every operation through a non-loopback host, with no console errors or CSP violations', async () => {
      const [page, seen] = await openDocs(browser, server);
      await page.screenshot({ path: join(ARTIFACTS, 'docs.png'), fullPage: true });
      // One block per operation of the OpenAPI document the server publishes.
      const document = (await (await fetch(`${server.base}/docs-json`)).json()) as {
        paths: Record<string, Record<string, unknown>>;
      };
      const operations = Object.values(document.paths).flatMap((path) => Object.keys(path));
      expect(operations.length).toBeGreaterThanOrEqual(20);
      expect(await page.locator('.opblock').count()).toBe(operations.length);
      expect(await page.locator('.opblock-summary-description').first().innerText()).toMatch(/\w/);
      expect(seen.problems).toEqual([]);
      // The watch works: an inline script, which the policy forbids, is reported.
      await page.evaluate(
        "const s = document.createElement('script'); s.textContent = '1'; document.body.append(s);",
      );
      for (let i = 0; i < 20 && !seen.problems.length; i++) await page.waitForTimeout(50);
      expect(seen.problems.join('\n')).toMatch(/Content Security Policy/);
      await page.close();
    });

    it('Try it out: creates a session, posts a message and lists it', async () => {
      const [page, seen] = await openDocs(browser, server);
      await createPostList(page);
      await page.screenshot({ path: join(ARTIFACTS, 'try-it-out.png'), fullPage: true });
      expect(seen.problems).toEqual([]);
      await page.close();
    });
  });

  describe('AUTH_MODE=api-key', () => {
    let server: RunningServer;
    let dir: string;
    let key: string;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'chat-browser-'));
      const databaseUrl = `sqlite:${join(dir, 'chat.sqlite')}`;
      server = await startServer({ DATABASE_URL: databaseUrl, AUTH_MODE: 'api-key' });
      key = await createKey(databaseUrl);
    });
    afterAll(async () => {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('answers 401 before Authorize, and works after a key is entered there', async () => {
      const [page, seen] = await openDocs(browser, server);
      const before = await tryItOut(page, 'SessionsController_list');
      expect(before.status).toBe(401);
      // The 401 is the expected answer, not a fault of the page.
      seen.problems = seen.problems.filter((p) => !/status of 401/.test(p));

      await page.locator('.auth-wrapper button.authorize').click();
      await page.locator('.auth-container input').fill(key);
      await page.locator('.auth-container button.authorize').click();
      await page.screenshot({ path: join(ARTIFACTS, 'authorize.png') });
      await page
        .locator('.auth-container button.btn-done, .modal-ux button.close-modal')
        .first()
        .click();

      await createPostList(page);
      await page.screenshot({ path: join(ARTIFACTS, 'try-it-out-api-key.png'), fullPage: true });
      expect(seen.problems).toEqual([]);
      await page.close();
    });
  });
});

/** `npm run apikey -- create`, from the build the server runs: the key is the last line. */
function createKey(databaseUrl: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [join(MAIN, '..', 'cli', 'apikey.js'), 'create', '--owner', 'browser'],
      { env: { PATH: process.env.PATH ?? '', DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' } },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0
        ? resolve(out.trim().split('\n').pop() ?? '')
        : reject(new Error(`apikey create exited ${code}`)),
    );
  });
}
