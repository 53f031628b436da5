import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { gzipSync } from 'node:zlib';
import type { Browser, Page, Request } from 'playwright-core';
import { describeOnce, launchChromium } from './helpers/browser';
import {
  type ChatStack,
  DESKTOP,
  NARROW,
  openChatPage,
  screenshotPath,
  sendMessage,
  shownMessages,
  startChatStack,
} from './helpers/chat-page';
import { freshDatabaseUrl } from './helpers/database-target';
import { MAIN } from './helpers/server-process';

/*
 * The chat page at /app/ as people reach it: behind an API key, on a 375 px phone, with the
 * keyboard only, under the server's Content Security Policy with nothing fetched from elsewhere,
 * and what it costs to load. The page is the same whatever the database: these run once, on SQLite.
 */
jest.setTimeout(90_000);

/** `npm run apikey -- …` from the build the server runs (the same code, without ts-node's start-up). */
function apikey(databaseUrl: string, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(MAIN, '..', 'cli', 'apikey.js'), ...args], {
      env: { PATH: process.env.PATH ?? '', DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0
        ? resolve(out.trim())
        : reject(new Error(`apikey ${args[0]} exited ${code}: ${err}`)),
    );
  });
}

/** The key alone, from the last line of `create`. */
async function createKey(databaseUrl: string, owner: string): Promise<string> {
  const key = (await apikey(databaseUrl, 'create', '--owner', owner)).split('\n').pop() ?? '';
  expect(key).toMatch(/^csk_[0-9a-f]{16}_/);
  return key;
}

/** The 401s a page without a (valid) key meets: the expected answer, not a fault of the page. */
function without401s(problems: string[]): string[] {
  return problems.filter((p) => !/^console: Failed to load resource: .*status of 401/.test(p));
}

/** Waits until the messages shown are `expected` (a reply streams in). */
function expectMessages(page: Page, expected: string[]): Promise<void> {
  return settles(() => shownMessages(page), expected);
}

/** Reads until `read()` gives `expected` (deeply equal), then asserts it: the last value read shows. */
async function settles<T>(read: () => Promise<T>, expected: T, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  let last = await read();
  while (!isDeepStrictEqual(last, expected) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    last = await read();
  }
  expect(last).toEqual(expected);
}

/** How wide the document is: at most the viewport's width when nothing scrolls sideways. */
function scrollWidth(page: Page): Promise<number> {
  // Strings: the page's code runs in the browser, and the tests are compiled without the DOM types.
  return page.evaluate<number>('document.scrollingElement.scrollWidth');
}

/**
 * The boxes inside the page that scroll sideways (the message list would, before the document does),
 * but for code blocks and tables, which are meant to.
 */
function sidewaysScrollers(page: Page): Promise<string[]> {
  return page.evaluate<string[]>(`[...document.querySelectorAll('body *')]
    .filter((el) => !el.closest('pre, table') && el.scrollWidth > el.clientWidth + 1)
    .filter((el) => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX))
    .map((el) => el.tagName.toLowerCase() + '.' + el.className + ' ' + el.scrollWidth + '>' + el.clientWidth)`);
}

/** Nothing scrolls sideways at 375 px: neither the document nor a box in it. */
async function expectNoSidewaysScroll(page: Page): Promise<void> {
  expect(await scrollWidth(page)).toBeLessThanOrEqual(NARROW.width);
  expect(await sidewaysScrollers(page)).toEqual([]);
}

/**
 * Every control in the accessibility tree Chromium builds (what a screen reader is given) that has
 * no name: buttons, links, fields, checkboxes and the like, as `role#backendId` for the message.
 */
async function unnamedControls(page: Page): Promise<string[]> {
  const cdp = await page.context().newCDPSession(page);
  try {
    const { nodes } = (await cdp.send('Accessibility.getFullAXTree')) as {
      nodes: Array<{
        ignored: boolean;
        role?: { value?: string };
        name?: { value?: string };
        backendDOMNodeId?: number;
      }>;
    };
    const controls = new Set([
      'button',
      'link',
      'textbox',
      'searchbox',
      'checkbox',
      'combobox',
      'menuitem',
      'radio',
      'switch',
      'tab',
      'slider',
      'spinbutton',
    ]);
    const named = nodes.filter((n) => !n.ignored && controls.has(n.role?.value ?? ''));
    // The check sees controls at all (a tree without any would pass vacuously).
    expect(named.length).toBeGreaterThan(0);
    return named
      .filter((n) => !(n.name?.value ?? '').trim())
      .map((n) => `${n.role?.value}#${n.backendDOMNodeId}`);
  } finally {
    await cdp.detach();
  }
}

interface Focused {
  what: string;
  /** :focus-visible matches and its outline is drawn (a style other than none, a width above 0). */
  visible: boolean;
}

/** What has the focus, and whether a person can see where it is. */
function focused(page: Page): Promise<Focused | null> {
  return page.evaluate<Focused | null>(`(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    const label = el.getAttribute('aria-label') ?? el.labels?.[0]?.textContent ?? el.textContent ?? '';
    const style = getComputedStyle(el);
    return {
      what: el.tagName.toLowerCase() + ' "' + label.trim() + '"',
      visible:
        el.matches(':focus-visible') &&
        style.outlineStyle !== 'none' &&
        parseFloat(style.outlineWidth) > 0,
    };
  })()`);
}

/**
 * Presses Tab (Shift+Tab when `back`) until the focus is on `what` (as `focused` names it), keeping
 * every stop in `trail`: the way a keyboard user walks, each stop of which must show where it is.
 */
async function tabTo(page: Page, what: string, trail: Focused[], back = false): Promise<void> {
  for (let i = 0; i < 60; i++) {
    await page.keyboard.press(back ? 'Shift+Tab' : 'Tab');
    const now = await focused(page);
    if (now) trail.push(now);
    if (now?.what === what) return;
  }
  throw new Error(
    `${what} not reached by ${back ? 'Shift+Tab' : 'Tab'}: ${trail.map((f) => f.what).join(', ')}`,
  );
}

describeOnce('Chat page: access, small screens, keyboard, policy and weight (e2e)', () => {
  let browser: Browser;

  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(() => browser?.close());

  describe('AUTH_MODE=api-key', () => {
    let stack: ChatStack;
    let databaseUrl: string;

    beforeAll(async () => {
      // The CLI and the server share the database: a file, not :memory:.
      databaseUrl = await freshDatabaseUrl('chat-page-key');
      stack = await startChatStack({ DATABASE_URL: databaseUrl, AUTH_MODE: 'api-key' });
    });
    afterAll(() => stack?.close());

    it('asks for the key, refuses a wrong one readably, works with the right one, keeps it in this tab only', async () => {
      const key = await createKey(databaseUrl, 'reader');
      const { page, problems } = await openChatPage(browser, stack);
      const keyField = page.getByLabel('API key', { exact: true });
      await keyField.waitFor();
      expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('API key needed');
      // No "refused" before any key was tried.
      expect(await page.getByRole('alert').count()).toBe(0);
      expect(await unnamedControls(page)).toEqual([]);

      await keyField.fill(`${key.slice(0, -4)}AAAA`);
      await page.getByRole('button', { name: 'Continue' }).click();
      const refused = page.getByRole('alert').filter({ hasText: 'refused' });
      await refused.waitFor();
      const message = await refused.innerText();
      expect(message).toMatch(/^That key was refused\. \w/);
      expect(message).not.toMatch(/\{|\[object|undefined/);
      expect(await page.getByLabel('API key', { exact: true }).isVisible()).toBe(true);
      await page.screenshot({ path: screenshotPath('access-key-refused') });

      await page.getByLabel('API key', { exact: true }).fill(key);
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByText('No chats yet.').waitFor();
      await sendMessage(page, 'Hello behind a key');
      await expectMessages(page, ['You: Hello behind a key', 'Assistant: Hello from the fake']);
      const chats = page.getByRole('navigation', { name: 'Chats' });
      await chats.getByRole('link', { name: 'Hello behind a key' }).waitFor();

      // Kept for this tab: a reload reads the chat again without asking.
      await page.reload({ waitUntil: 'load' });
      await chats.getByRole('link', { name: 'Hello behind a key' }).click();
      await expectMessages(page, ['You: Hello behind a key', 'Assistant: Hello from the fake']);
      expect(await keyField.count()).toBe(0);

      // In sessionStorage, and nowhere a later visit or another tab could read it.
      const stored = await page.evaluate<{ session: string[]; local: string; cookie: string }>(`({
        session: Object.values(sessionStorage),
        local: JSON.stringify(Object.entries(localStorage)),
        cookie: document.cookie,
      })`);
      expect(stored.session).toContain(key);
      expect(stored.local).not.toContain(key.split('_')[2]);
      expect(stored.cookie).toBe('');
      expect(await page.context().cookies()).toEqual([]);

      // A new tab of its own (a new context: what another window or a later visit gets) asks again.
      const other = await openChatPage(browser, stack);
      await other.page.getByLabel('API key', { exact: true }).waitFor();
      expect(await other.page.getByRole('alert').count()).toBe(0);
      expect(await other.page.evaluate<number>('sessionStorage.length')).toBe(0);
      expect(without401s(other.problems)).toEqual([]);
      await other.page.context().close();

      expect(without401s(problems)).toEqual([]);
      await page.context().close();
    });

    it('brings the prompt back on the next action once the key is revoked, and goes on with a new key', async () => {
      const key = await createKey(databaseUrl, 'revoked');
      const { page, problems } = await openChatPage(browser, stack);
      await page.getByLabel('API key', { exact: true }).fill(key);
      await page.getByRole('button', { name: 'Continue' }).click();
      await sendMessage(page, 'Before the revocation');
      await expectMessages(page, ['You: Before the revocation', 'Assistant: Hello from the fake']);

      await apikey(databaseUrl, 'revoke', key.split('_')[1]);
      // The page does not know yet; the next thing the person does tells it.
      expect(await page.getByLabel('Message', { exact: true }).isVisible()).toBe(true);
      await sendMessage(page, 'After the revocation');
      const refused = page.getByRole('alert').filter({ hasText: 'That key was refused.' });
      await refused.waitFor();
      expect(await page.getByLabel('API key', { exact: true }).isVisible()).toBe(true);
      // Nothing was stored with the revoked key.
      expect(await page.locator('article.message').count()).toBe(0);

      // The same owner's new key: the chats are there again.
      const replacement = await createKey(databaseUrl, 'revoked');
      await page.getByLabel('API key', { exact: true }).fill(replacement);
      await page.getByRole('button', { name: 'Continue' }).click();
      await page
        .getByRole('navigation', { name: 'Chats' })
        .getByRole('link', { name: 'Before the revocation' })
        .click();
      await expectMessages(page, ['You: Before the revocation', 'Assistant: Hello from the fake']);
      expect(await page.evaluate<string[]>('Object.values(sessionStorage)')).toEqual([replacement]);

      expect(without401s(problems)).toEqual([]);
      await page.context().close();
    });
  });

  describe('AUTH_MODE=none', () => {
    let stack: ChatStack;

    beforeAll(async () => {
      stack = await startChatStack({ AUTH_MODE: 'none' });
    });
    afterAll(() => stack?.close());

    it('375 px: nothing scrolls sideways; the chat list opens and closes; chats are created, sent and opened', async () => {
      const { page, problems } = await openChatPage(browser, stack, NARROW);
      const chats = page.getByRole('navigation', { name: 'Chats' });
      const composer = page.getByLabel('Message', { exact: true });
      const sendButton = page.getByRole('button', { name: 'Send' });
      await composer.waitFor();
      await expectNoSidewaysScroll(page);
      // The list is a drawer, closed at first: the conversation has the whole width.
      expect(await chats.isVisible()).toBe(false);

      // The composer and Send fit on screen and work by touch of a pointer, not only Enter.
      for (const control of [composer, sendButton]) {
        const box = (await control.boundingBox())!;
        expect(box.x).toBeGreaterThanOrEqual(0);
        expect(box.x + box.width).toBeLessThanOrEqual(NARROW.width);
        expect(box.y + box.height).toBeLessThanOrEqual(NARROW.height);
      }
      // A long unbroken word, as a pasted link or hash is, must wrap, not widen the page.
      const long = `Phone ${'x'.repeat(120)}`;
      stack.fake!.next({ stream: ['See https://example.invalid/', 'y'.repeat(150)] });
      await composer.fill(long);
      await sendButton.click();
      await expectMessages(page, [
        `You: ${long}`,
        `Assistant: See https://example.invalid/${'y'.repeat(150)}`,
      ]);
      await expectNoSidewaysScroll(page);
      // The chat's actions (six buttons) wrap in the header too.
      await page.getByRole('toolbar', { name: 'Chat actions' }).waitFor();
      await expectNoSidewaysScroll(page);
      await page.screenshot({ path: screenshotPath('access-narrow-chat') });

      // ☰ opens the list over the conversation; × closes it.
      await page.getByRole('button', { name: 'Show chats' }).click();
      await settles(() => chats.isVisible(), true);
      await chats.getByRole('link', { name: /^Phone x+/ }).waitFor();
      const drawer = (await chats.boundingBox())!;
      expect(drawer.x + drawer.width).toBeLessThanOrEqual(NARROW.width);
      await expectNoSidewaysScroll(page);
      expect(await unnamedControls(page)).toEqual([]);
      await page.screenshot({ path: screenshotPath('access-narrow-drawer') });
      await chats.getByRole('button', { name: 'Close chat list' }).click();
      await settles(() => chats.isVisible(), false);

      // A new chat from the list, sent with Enter.
      await page.getByRole('button', { name: 'Show chats' }).click();
      await chats.getByRole('button', { name: '+ New chat' }).click();
      await settles(() => chats.isVisible(), false);
      expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('New chat');
      await sendMessage(page, 'Second from the phone');
      await expectMessages(page, ['You: Second from the phone', 'Assistant: Hello from the fake']);

      // The first one again, from the list: it closes and shows that chat.
      await page.getByRole('button', { name: 'Show chats' }).click();
      await chats.getByRole('link', { name: /^Phone x+/ }).click();
      await settles(() => chats.isVisible(), false);
      await expectMessages(page, [
        `You: ${long}`,
        `Assistant: See https://example.invalid/${'y'.repeat(150)}`,
      ]);
      await expectNoSidewaysScroll(page);
      expect(await sendButton.isVisible()).toBe(true);
      expect(await composer.isEditable()).toBe(true);

      expect(problems).toEqual([]);
      await page.context().close();
    });

    it('keyboard only: a new chat, a message, a chat action and the versions of a reply, each stop visibly focused', async () => {
      const { page, problems } = await openChatPage(browser, stack, DESKTOP);
      await page.getByLabel('Message', { exact: true }).waitFor();
      const trail: Focused[] = [];

      await tabTo(page, 'button "+ New chat"', trail);
      await page.keyboard.press('Enter');
      expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('New chat');
      await tabTo(page, 'textarea "Message"', trail);
      await page.keyboard.type('Typed without a mouse');
      await page.keyboard.press('Enter');
      await expectMessages(page, ['You: Typed without a mouse', 'Assistant: Hello from the fake']);

      // The chat actions: Pin, with Space.
      await tabTo(page, 'button "Pin"', trail, true);
      await page.keyboard.press('Space');
      await page.getByRole('button', { name: 'Unpin' }).waitFor();
      await page
        .getByRole('region', { name: 'Pinned chats' })
        .getByRole('link', { name: /Typed without a mouse/ })
        .waitFor();

      // Edit, then Escape: nothing changes.
      await tabTo(page, 'button "Edit"', trail);
      await page.keyboard.press('Enter');
      await settles(async () => (await focused(page))?.what, 'textarea "Edit message"');
      await page.keyboard.press('Escape');
      await settles(() => page.getByLabel('Edit message').count(), 0);

      // A second version of the reply, then back and forth between the two.
      stack.fake!.next({ stream: ['Second', ' answer'] });
      await tabTo(page, 'button "Regenerate"', trail);
      await page.keyboard.press('Enter');
      await expectMessages(page, ['You: Typed without a mouse', 'Assistant: Second answer']);
      const position = page.locator('article.message.assistant .position');
      await settles(() => position.innerText(), '2/2');

      await tabTo(page, 'button "Previous version"', trail, true);
      await page.keyboard.press('Enter');
      await expectMessages(page, ['You: Typed without a mouse', 'Assistant: Hello from the fake']);
      await settles(() => position.innerText(), '1/2');
      // The reply shown is another message now: the focus stays with its versions (on the one
      // button left enabled), not lost to the top of the page.
      await settles(async () => (await focused(page))?.what, 'button "Next version"');
      trail.push((await focused(page))!);
      await page.keyboard.press('Enter');
      await expectMessages(page, ['You: Typed without a mouse', 'Assistant: Second answer']);
      await settles(() => position.innerText(), '2/2');
      await settles(async () => (await focused(page))?.what, 'button "Previous version"');
      trail.push((await focused(page))!);
      await page.screenshot({ path: screenshotPath('access-keyboard') });

      // Every stop on the way showed where the focus was.
      expect(trail.length).toBeGreaterThan(5);
      expect(trail.filter((f) => !f.visible).map((f) => f.what)).toEqual([]);
      expect(await unnamedControls(page)).toEqual([]);
      expect(problems).toEqual([]);
      await page.context().close();
    });

    it('asks nothing of any other host, and works under its Content Security Policy', async () => {
      const requests: Request[] = [];
      const { page, problems } = await openChatPage(browser, stack);
      page.context().on('request', (request) => requests.push(request));
      // openChatPage loaded the page before this listener: load it again, recorded from the start.
      const response = (await page.reload({ waitUntil: 'load' }))!;
      const origin = new URL(stack.url).origin;

      const policy = Object.fromEntries(
        (response.headers()['content-security-policy'] ?? '')
          .split(';')
          .map((d) => d.trim().split(/\s+/))
          .map(([name, ...values]) => [name, values]),
      ) as Record<string, string[] | undefined>;
      expect(policy['script-src']).toEqual(["'self'"]);
      expect(policy['script-src-attr']).toEqual(["'none'"]);
      expect(policy['default-src']).toEqual(["'self'"]);
      expect(policy['object-src']).toEqual(["'none'"]);

      // A session of use: send, search, pin, regenerate, open another chat, export.
      await sendMessage(page, 'Stays at home');
      await expectMessages(page, ['You: Stays at home', 'Assistant: Hello from the fake']);
      await page.getByRole('searchbox', { name: 'Search chats' }).fill('home');
      await page
        .getByRole('region', { name: 'Search results' })
        .getByRole('link', { name: /Stays at home/ })
        .first()
        .waitFor();
      await page.getByRole('searchbox', { name: 'Search chats' }).fill('');
      await page.getByRole('button', { name: 'Pin' }).click();
      await page.getByRole('button', { name: 'Unpin' }).waitFor();
      await page.getByRole('button', { name: 'Regenerate' }).click();
      await settles(() => page.locator('article.message.assistant .position').innerText(), '2/2');
      const download = page.waitForEvent('download');
      await page.getByRole('button', { name: 'Export Markdown' }).click();
      expect((await download).suggestedFilename()).toMatch(/\.md$/);
      await page.getByRole('button', { name: '+ New chat' }).click();
      await sendMessage(page, 'Another one');
      await expectMessages(page, ['You: Another one', 'Assistant: Hello from the fake']);

      const http = requests.filter((r) => /^https?:/.test(r.url()));
      expect(http.length).toBeGreaterThan(10);
      const elsewhere = requests
        .map((r) => r.url())
        .filter((url) => !url.startsWith('data:') && new URL(url).origin !== origin);
      expect(elsewhere).toEqual([]);
      expect(problems).toEqual([]);

      // The watch sees a violation when there is one: an inline script, which the policy forbids.
      await page.evaluate(
        "const s = document.createElement('script'); s.textContent = 'window.ran = 1'; document.body.append(s);",
      );
      const violation = 'console: Content Security Policy violation: script-src-elem inline';
      await settles(() => Promise.resolve(problems.includes(violation)), true);
      // Chromium's own console line about the same script may come too: nothing else.
      expect(problems.filter((p) => !/Content Security Policy/.test(p))).toEqual([]);
      expect(await page.evaluate<unknown>('window.ran')).toBeUndefined();
      await page.context().close();
    });

    it('loads less than 200 KB of JavaScript (gzip) the first time', async () => {
      const context = await browser.newContext({ viewport: DESKTOP });
      const page = await context.newPage();
      const scripts: Array<Promise<{ url: string; raw: number; gzip: number }>> = [];
      page.on('response', (response) => {
        if (response.request().resourceType() !== 'script') return;
        scripts.push(
          response.body().then((body) => ({
            url: response.url(),
            raw: body.length,
            gzip: gzipSync(body).length,
          })),
        );
      });
      await page.goto(stack.url, { waitUntil: 'networkidle' });
      await page.getByLabel('Message', { exact: true }).waitFor();
      const loaded = await Promise.all(scripts);
      // The page's own bundle at least (a count of 0 would make the sum meaningless).
      expect(loaded.length).toBeGreaterThan(0);
      expect(loaded.every((s) => new URL(s.url).pathname.startsWith('/app/assets/'))).toBe(true);
      const kb = (bytes: number) => (bytes / 1024).toFixed(1);
      const gzip = loaded.reduce((sum, s) => sum + s.gzip, 0);
      const raw = loaded.reduce((sum, s) => sum + s.raw, 0);
      console.log(
        `chat page first load: ${kb(gzip)} KB of JavaScript gzip (${kb(raw)} KB raw, ${loaded.length} file${loaded.length === 1 ? '' : 's'})`,
      );
      expect(gzip).toBeLessThan(200 * 1024);
      await context.close();
    });

    it('leaves GET / to the API, redirects /app, answers a missing asset with a 404 problem, caches by hash', async () => {
      const base = stack.server.base;
      // A browser asking for / still gets the API's welcome document, not the page.
      const root = await fetch(`${base}/`, { headers: { Accept: 'text/html,*/*' } });
      expect(root.status).toBe(200);
      expect(root.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await root.json()).toMatchObject({ message: expect.stringMatching(/Welcome/) });

      const bare = await fetch(`${base}/app`, { redirect: 'manual' });
      expect(bare.status).toBe(301);
      expect(bare.headers.get('location')).toBe('/app/');

      const index = await fetch(`${base}/app/`);
      expect(index.status).toBe(200);
      expect(index.headers.get('content-type')).toMatch(/^text\/html/);
      expect(index.headers.get('cache-control')).toBe('no-cache');
      const html = await index.text();
      const assets = [...html.matchAll(/(?:src|href)="(\/app\/assets\/[^"]+)"/g)].map((m) => m[1]);
      expect(assets.some((a) => a.endsWith('.js'))).toBe(true);
      for (const asset of assets) {
        expect(asset).toMatch(/-[\w-]{8,}\.(js|css)$/);
        const got = await fetch(`${base}${asset}`);
        expect({ asset, status: got.status, cache: got.headers.get('cache-control') }).toEqual({
          asset,
          status: 200,
          cache: 'public, max-age=31536000, immutable',
        });
        await got.arrayBuffer();
      }

      for (const missing of ['/app/assets/nope.js', '/app/nope']) {
        const got = await fetch(`${base}${missing}`, { headers: { Accept: 'text/html,*/*' } });
        expect(got.status).toBe(404);
        expect(got.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        expect(await got.json()).toMatchObject({ status: 404, instance: missing });
      }
    });
  });
});
