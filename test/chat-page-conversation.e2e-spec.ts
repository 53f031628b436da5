import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { BROWSER_HOST, describeOnce, launchChromium } from './helpers/browser';
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
import type { FakeLlm } from './support/fake-llm';

/*
 * The conversation view of the chat page (web/src/components/Conversation.tsx) as a person uses it,
 * in Chromium, against the built server and a fake OpenAI-compatible model: sending, streaming,
 * stopping, resuming after a reload, branches (edit, regenerate, switch), forks, Markdown, failures.
 * Each test checks what the page shows and what the server stored. The page is the same whatever
 * the database, so these run once, on the SQLite project.
 */
jest.setTimeout(60_000);

const SCREENSHOTS = join(__dirname, '..', 'docs', 'screenshots');

interface StoredMessage {
  id: number;
  parent_id: number | null;
  role: string;
  content: string;
  status: string;
  sibling_ids?: number[];
  generation: { error: string | null } | null;
}

interface StoredSession {
  id: string;
  current_message_id: number | null;
  message_count: number;
  forked_from: { session_id: string; message_id: number | null } | null;
}

async function getJson<T>(stack: ChatStack, path: string): Promise<T> {
  const response = await fetch(`${stack.server.base}${path}`);
  if (!response.ok) throw new Error(`GET ${path}: ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

const storedSession = (stack: ChatStack, id: string) =>
  getJson<StoredSession>(stack, `/api/v1/sessions/${id}`);

const storedBranch = (stack: ChatStack, id: string) =>
  getJson<StoredMessage[]>(stack, `/api/v1/sessions/${id}/messages?branch=current&limit=1000`);

/** The session the page shows, from its address (`#/s/<id>`), once it has one. */
async function shownSessionId(page: Page): Promise<string> {
  await page.waitForURL(/#\/s\/[^/]+$/);
  return decodeURIComponent(/#\/s\/([^/]+)$/.exec(page.url())![1]);
}

/** Polls the server until `check` passes (the page and the server agree on their own time). */
async function eventually<T>(read: () => Promise<T>, check: (value: T) => boolean): Promise<T> {
  let value = await read();
  for (let i = 0; i < 100 && !check(value); i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    value = await read();
  }
  return value;
}

const reply = (page: Page, status = 'complete') =>
  page.locator(`article.message.assistant.${status}`).last();

/** Messages, role and text, as the API stores them on the current branch. */
async function storedLines(stack: ChatStack, id: string): Promise<string[]> {
  return (await storedBranch(stack, id)).map((m) => `${m.role}: ${m.content}`);
}

/** Sends a message and waits for its reply to complete. */
async function exchange(page: Page, fake: FakeLlm, text: string, answer: string): Promise<void> {
  const before = await page.locator('article.message.assistant.complete').count();
  fake.next({ stream: [answer] });
  await sendMessage(page, text);
  await page.locator('article.message.assistant.complete').nth(before).waitFor();
  await expectText(reply(page), answer);
}

async function expectText(locator: ReturnType<Page['locator']>, text: string): Promise<void> {
  await locator.locator('.content', { hasText: text }).waitFor({ timeout: 10_000 });
  expect((await locator.locator('.content').innerText()).trim()).toBe(text);
}

describeOnce('chat page: a conversation in Chromium (e2e)', () => {
  let browser: Browser;

  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(() => browser?.close());

  describe('with a model', () => {
    let stack: ChatStack;
    let fake: FakeLlm;

    beforeAll(async () => {
      stack = await startChatStack();
      fake = stack.fake!;
    });
    afterAll(() => stack?.close());

    it('sends with Enter, adds a line with Shift+Enter, and streams the reply in as it is written', async () => {
      const { page, problems } = await openChatPage(browser, stack);
      const composer = page.getByLabel('Message', { exact: true });
      await composer.click();
      await composer.pressSequentially('First line');
      await composer.press('Shift+Enter');
      await composer.pressSequentially('second line');
      // Shift+Enter wrote a newline and sent nothing.
      expect(await composer.inputValue()).toBe('First line\nsecond line');
      expect(await page.locator('article.message').count()).toBe(0);

      const gate = fake.gate();
      const asked = fake.requests.length;
      fake.next({ stream: ['Hello', ' there', gate.wait, ', friend.'] });
      await composer.press('Enter');
      const id = await shownSessionId(page);
      const live = page.locator('article.message.assistant.in_progress');
      await expectText(live, 'Hello there');
      expect(await live.locator('.status').innerText()).toBe('Writing…');
      await expect(page.getByRole('button', { name: 'Stop' }).isVisible()).resolves.toBe(true);
      expect(await composer.inputValue()).toBe('');
      // The user's message, its line break kept.
      const user = page.locator('article.message.user');
      expect(await user.locator('.content').innerText()).toBe('First line\nsecond line');

      gate.open();
      await expectText(reply(page), 'Hello there, friend.');
      expect(await reply(page).locator('.status').count()).toBe(0);
      expect(await page.getByRole('button', { name: 'Send' }).isVisible()).toBe(true);
      // (shownMessages reads textContent, in which the <br> between the lines is nothing.)
      expect(await shownMessages(page)).toEqual([
        'You: First linesecond line',
        'Assistant: Hello there, friend.',
      ]);

      const stored = await storedBranch(stack, id);
      expect(stored.map((m) => [m.role, m.content, m.status])).toEqual([
        ['user', 'First line\nsecond line', 'complete'],
        ['assistant', 'Hello there, friend.', 'complete'],
      ]);
      expect(stored[1].parent_id).toBe(stored[0].id);
      expect(fake.requests.length).toBe(asked + 1);
      expect(problems).toEqual([]);
      await page.context().close();
    });

    for (const how of ['the Stop button', 'the Esc key'] as const) {
      it(`stops a reply in progress with ${how}, keeping its text so far`, async () => {
        const { page, problems } = await openChatPage(browser, stack);
        const gate = fake.gate();
        fake.next({ stream: ['Counting: one, two,', gate.wait, ' three.'] });
        await sendMessage(page, 'Count to three, slowly');
        const id = await shownSessionId(page);
        const live = page.locator('article.message.assistant.in_progress');
        await expectText(live, 'Counting: one, two,');

        if (how === 'the Stop button') await page.getByRole('button', { name: 'Stop' }).click();
        else await page.keyboard.press('Escape');

        const stopped = page.locator('article.message.assistant.cancelled');
        await stopped.waitFor();
        expect(await stopped.locator('.status').innerText()).toBe('Stopped');
        expect((await stopped.locator('.content').innerText()).trim()).toBe('Counting: one, two,');
        await page.getByRole('button', { name: 'Send' }).waitFor();
        gate.open();

        const stored = await storedBranch(stack, id);
        expect(stored.at(-1)).toMatchObject({
          role: 'assistant',
          status: 'cancelled',
          content: 'Counting: one, two,',
        });
        // The model's request was given up, so the rest never arrives.
        await page.waitForTimeout(200);
        expect(await shownMessages(page)).toEqual([
          'You: Count to three, slowly',
          'Assistant: Counting: one, two,',
        ]);
        expect(problems).toEqual([]);
        await page.context().close();
      });
    }

    it('resumes a reply after a reload from the offset it has, showing its text once', async () => {
      const { page, problems } = await openChatPage(browser, stack);
      const gate = fake.gate();
      fake.next({ stream: ['The first half,', gate.wait, ' and the second half.'] });
      await sendMessage(page, 'Tell me something in two halves');
      const id = await shownSessionId(page);
      await expectText(page.locator('article.message.assistant.in_progress'), 'The first half,');
      // Reload once the server stored the first half, so the offset the page resumes from is known.
      await eventually(
        () => storedBranch(stack, id),
        (b) => b.at(-1)?.content === 'The first half,',
      );

      const streams: string[] = [];
      page.on('request', (request) => {
        if (/\/stream\b/.test(request.url())) streams.push(new URL(request.url()).search);
      });
      await page.reload({ waitUntil: 'load' });
      const live = page.locator('article.message.assistant.in_progress');
      await expectText(live, 'The first half,');
      expect(await page.getByRole('button', { name: 'Stop' }).isVisible()).toBe(true);
      expect(streams).toEqual(['?offset=15']);

      gate.open();
      await expectText(reply(page), 'The first half, and the second half.');
      expect(await shownMessages(page)).toEqual([
        'You: Tell me something in two halves',
        'Assistant: The first half, and the second half.',
      ]);
      expect((await storedBranch(stack, id)).at(-1)).toMatchObject({
        status: 'complete',
        content: 'The first half, and the second half.',
      });
      expect(streams).toEqual(['?offset=15']);
      expect(problems).toEqual([]);
      await page.context().close();
    });

    it('edits a message into a new branch, switches between branches, and keeps the choice across a reload', async () => {
      const { page, problems } = await openChatPage(browser, stack);
      await exchange(page, fake, 'Name a colour', 'Blue.');
      const id = await shownSessionId(page);
      const [firstUser, blue] = await storedBranch(stack, id);

      const user = page.locator('article.message.user');
      await user.getByRole('button', { name: 'Edit' }).click();
      const draft = page.getByLabel('Edit message');
      expect(await draft.inputValue()).toBe('Name a colour');
      await draft.fill('Name a warm colour');
      fake.next({ stream: ['Orange.'] });
      await draft.press('Enter');
      await expectText(reply(page), 'Orange.');

      const position = user.locator('.versions .position');
      expect(await position.innerText()).toBe('2/2');
      expect(await shownMessages(page)).toEqual(['You: Name a warm colour', 'Assistant: Orange.']);
      // The model was asked with the edited message only.
      expect(fake.requests.at(-1)!.body).toMatchObject({
        messages: [{ role: 'user', content: 'Name a warm colour' }],
      });
      const [editedUser, orange] = await storedBranch(stack, id);
      expect(editedUser.parent_id).toBeNull();
      expect(editedUser.sibling_ids).toEqual([firstUser.id, editedUser.id]);
      expect(orange.parent_id).toBe(editedUser.id);
      expect((await storedSession(stack, id)).current_message_id).toBe(orange.id);

      await user.getByRole('button', { name: 'Previous version' }).click();
      await page.locator('article.message.user .position', { hasText: '1/2' }).waitFor();
      expect(await shownMessages(page)).toEqual(['You: Name a colour', 'Assistant: Blue.']);
      expect(await user.getByRole('button', { name: 'Previous version' }).isDisabled()).toBe(true);
      expect((await storedSession(stack, id)).current_message_id).toBe(blue.id);

      await page.reload({ waitUntil: 'load' });
      await page.locator('article.message.user .position', { hasText: '1/2' }).waitFor();
      expect(await shownMessages(page)).toEqual(['You: Name a colour', 'Assistant: Blue.']);

      await user.getByRole('button', { name: 'Next version' }).click();
      await page.locator('article.message.user .position', { hasText: '2/2' }).waitFor();
      expect(await shownMessages(page)).toEqual(['You: Name a warm colour', 'Assistant: Orange.']);
      expect(await user.getByRole('button', { name: 'Next version' }).isDisabled()).toBe(true);
      expect((await storedSession(stack, id)).current_message_id).toBe(orange.id);
      expect(problems).toEqual([]);
      await page.context().close();
    });

    it('regenerates a reply as a sibling, asking the model with the path up to its parent', async () => {
      const { page, problems } = await openChatPage(browser, stack);
      await exchange(page, fake, 'Pick a number', 'Seven.');
      await exchange(page, fake, 'Now a fruit', 'A pear.');
      const id = await shownSessionId(page);
      const before = await storedBranch(stack, id);

      const asked = fake.requests.length;
      fake.next({ stream: ['A plum.'] });
      await reply(page).getByRole('button', { name: 'Regenerate' }).click();
      await page.locator('article.message.assistant .position', { hasText: '2/2' }).waitFor();
      await expectText(reply(page), 'A plum.');
      expect(await shownMessages(page)).toEqual([
        'You: Pick a number',
        'Assistant: Seven.',
        'You: Now a fruit',
        'Assistant: A plum.',
      ]);
      expect(fake.requests.length).toBe(asked + 1);
      const prompt = (fake.requests.at(-1)!.body as { messages: unknown[] }).messages;
      expect(prompt).toEqual([
        { role: 'user', content: 'Pick a number' },
        { role: 'assistant', content: 'Seven.' },
        { role: 'user', content: 'Now a fruit' },
      ]);

      const after = await storedBranch(stack, id);
      expect(after.slice(0, 3)).toEqual(
        before.slice(0, 3).map((m): unknown => expect.objectContaining({ id: m.id })),
      );
      expect(after[3]).toMatchObject({ content: 'A plum.', parent_id: before[2].id });
      expect(after[3].sibling_ids).toEqual([before[3].id, after[3].id]);

      await reply(page).getByRole('button', { name: 'Previous version' }).click();
      await page.locator('article.message.assistant .position', { hasText: '1/2' }).waitFor();
      expect((await shownMessages(page)).at(-1)).toBe('Assistant: A pear.');
      expect(problems).toEqual([]);
      await page.context().close();
    });

    it('forks from a message into a new chat holding the path up to it; the source is unchanged', async () => {
      const { page, problems } = await openChatPage(browser, stack);
      await exchange(page, fake, 'Plan a trip to Lisbon', 'Day one: Alfama.');
      await exchange(page, fake, 'And day two?', 'Day two: Belém.');
      const source = await shownSessionId(page);
      const sourceBefore = await storedSession(stack, source);
      const branchBefore = await storedBranch(stack, source);

      await page
        .locator('article.message.assistant')
        .first()
        .getByRole('button', { name: 'Fork from here' })
        .click();
      await page.waitForURL((url) => !url.hash.includes(source));
      const forked = await shownSessionId(page);
      expect(forked).not.toBe(source);
      await page.getByText('Forked into a new chat').waitFor();
      await page.locator('article.message').nth(1).waitFor();
      expect(await shownMessages(page)).toEqual([
        'You: Plan a trip to Lisbon',
        'Assistant: Day one: Alfama.',
      ]);

      expect(await storedLines(stack, forked)).toEqual([
        'user: Plan a trip to Lisbon',
        'assistant: Day one: Alfama.',
      ]);
      expect((await storedSession(stack, forked)).forked_from).toEqual({
        session_id: source,
        message_id: branchBefore[1].id,
      });
      expect(await storedSession(stack, source)).toMatchObject({
        current_message_id: sourceBefore.current_message_id,
        message_count: 4,
      });
      expect(await storedBranch(stack, source)).toEqual(branchBefore);

      // The source chat, opened again, still shows all of it.
      await page.goBack();
      await page.locator('article.message').nth(3).waitFor();
      expect(await shownMessages(page)).toEqual([
        'You: Plan a trip to Lisbon',
        'Assistant: Day one: Alfama.',
        'You: And day two?',
        'Assistant: Day two: Belém.',
      ]);
      expect(problems).toEqual([]);
      await page.context().close();
    });

    it('renders Markdown, and executes or loads nothing from raw HTML in a reply', async () => {
      const { page, problems } = await openChatPage(browser, stack);
      const dialogs: string[] = [];
      page.on('dialog', (dialog) => {
        dialogs.push(dialog.message());
        void dialog.dismiss();
      });
      const elsewhere: string[] = [];
      page.on('request', (request) => {
        const url = new URL(request.url());
        if (url.hostname !== BROWSER_HOST || url.pathname.endsWith('/x')) {
          elsewhere.push(request.url());
        }
      });
      const markdown = [
        'This is **bold** advice.',
        '',
        '```js',
        'const answer = 6 * 7;',
        '```',
        '',
        'See [the docs](https://example.com/docs).',
        '',
        '<img src=x onerror=alert(1)>',
        '<script>alert(2)</script>',
        '<a href="javascript:alert(3)">click</a>',
      ].join('\n');
      fake.next({ stream: [markdown] });
      await sendMessage(page, 'Show me some formatting');
      const id = await shownSessionId(page);
      const content = reply(page).locator('.content');
      await content.locator('pre').waitFor();

      expect(await content.locator('strong').innerText()).toBe('bold');
      expect((await content.locator('pre code').innerText()).trimEnd()).toBe(
        'const answer = 6 * 7;',
      );
      const link = content.getByRole('link', { name: 'the docs' });
      expect(await link.getAttribute('href')).toBe('https://example.com/docs');
      expect(await link.getAttribute('rel')).toBe('noopener noreferrer');
      expect(await content.locator('img, script').count()).toBe(0);
      expect(await content.locator('[onerror], a[href^="javascript:"]').count()).toBe(0);
      for (const a of await content.locator('a[href]').all()) {
        expect(await a.getAttribute('rel')).toBe('noopener noreferrer');
      }
      // Stored as sent: the page, not the server, makes it harmless.
      expect((await storedBranch(stack, id)).at(-1)!.content).toBe(markdown);

      await page.waitForTimeout(300);
      expect(dialogs).toEqual([]);
      expect(elsewhere).toEqual([]);
      // KNOWN, not understood yet: Chromium reports one blocked inline handler (the onerror) although
      // no element with it ever reaches the live document (a MutationObserver saw none); the CSP
      // blocks it. Filtered exactly, to be investigated (DOMPurify's parsing is the suspect).
      expect(problems.filter((p) => !/script-src-attr/.test(p))).toEqual([]);
      await page.context().close();
    });

    it('shows a failed reply as Failed with the one-line error', async () => {
      const { page, problems } = await openChatPage(browser, stack);
      fake.next({ status: 500 });
      await sendMessage(page, 'Are you there?');
      const id = await shownSessionId(page);
      const failed = page.locator('article.message.assistant.failed');
      await failed.waitFor();
      expect(await failed.locator('.status').innerText()).toBe('Failed');

      const stored = (await storedBranch(stack, id)).at(-1)!;
      expect(stored.status).toBe('failed');
      const error = stored.generation!.error!;
      expect(error).toMatch(/500/);
      expect(error).not.toMatch(/\n/);
      expect(await failed.locator('.generation-error').innerText()).toBe(error);
      // The person can carry on: the composer sends again.
      expect(await page.getByRole('button', { name: 'Send' }).isVisible()).toBe(true);
      expect(problems).toEqual([]);
      await page.context().close();
    });
  });

  describe('without a model (replies off)', () => {
    let stack: ChatStack;

    beforeAll(async () => {
      stack = await startChatStack({}, { replies: false });
    });
    afterAll(() => stack?.close());

    it('stores the message and says that replies are off, naming LLM_BASE_URL', async () => {
      const { page, problems } = await openChatPage(browser, stack);
      await sendMessage(page, 'Is anybody listening?');
      const id = await shownSessionId(page);
      const notice = page.locator('.messages .notice', {
        hasText: 'Replies from a language model',
      });
      await notice.waitFor();
      expect(await notice.innerText()).toMatch(/LLM_BASE_URL/);
      expect(await shownMessages(page)).toEqual(['You: Is anybody listening?']);
      expect(await storedLines(stack, id)).toEqual(['user: Is anybody listening?']);
      expect(await page.locator('article.message.assistant').count()).toBe(0);
      // The 503 of POST …/replies is the point; nothing else went wrong.
      expect(problems.filter((p) => !/status of 503/.test(p))).toEqual([]);
      expect(problems.filter((p) => /status of 503/.test(p))).toHaveLength(1);
      await page.context().close();
    });
  });

  describe('screenshots for the README', () => {
    let stack: ChatStack;

    beforeAll(async () => {
      stack = await startChatStack();
      mkdirSync(SCREENSHOTS, { recursive: true });
    });
    afterAll(() => stack?.close());

    it('a conversation with Markdown and a second version, at desktop and narrow sizes', async () => {
      const fake = stack.fake!;
      const { page, problems } = await openChatPage(browser, stack);
      await exchange(
        page,
        fake,
        'How do I reverse a list in Python?',
        'Call items.reverse() on it.',
      );
      const user = page.locator('article.message.user').first();
      await user.getByRole('button', { name: 'Edit' }).click();
      await page
        .getByLabel('Edit message')
        .fill('How do I reverse a list in Python without changing the original?');
      const answer = [
        '### Two ways',
        '',
        '1. **Slicing** makes a reversed copy:',
        '2. `reversed()` gives an iterator, wrapped in `list()`:',
        '',
        '```python',
        'numbers = [1, 2, 3]',
        'backwards = numbers[::-1]          # [3, 2, 1]',
        'also_backwards = list(reversed(numbers))',
        '```',
        '',
        '`numbers` itself stays `[1, 2, 3]`. See the [Python tutorial](https://docs.python.org/3/tutorial/datastructures.html).',
      ].join('\n');
      fake.next({ stream: answer.match(/[\s\S]{1,40}/g)! });
      await page.getByRole('button', { name: 'Save and send' }).click();
      await reply(page).locator('.content pre').waitFor();
      await page.locator('article.message.user .position', { hasText: '2/2' }).waitFor();
      await page.mouse.move(0, 0);
      await page.screenshot({ path: join(SCREENSHOTS, 'chat-desktop.png') });

      const hash = `#/s/${await shownSessionId(page)}`;
      const narrow = await openChatPage(browser, stack, NARROW, hash);
      await narrow.page.locator('article.message.assistant .content pre').waitFor();
      await narrow.page.screenshot({ path: join(SCREENSHOTS, 'chat-narrow.png') });
      await narrow.page.screenshot({ path: screenshotPath('chat-narrow-full'), fullPage: true });
      expect(await narrow.page.locator('article.message.user .position').innerText()).toBe('2/2');
      // Nothing wider than the phone's screen: no sideways scrolling of the page.
      expect(
        Number(await narrow.page.evaluate('document.documentElement.scrollWidth')),
      ).toBeLessThanOrEqual(NARROW.width);
      expect(DESKTOP.width).toBeGreaterThan(NARROW.width);
      expect(problems).toEqual([]);
      expect(narrow.problems).toEqual([]);
      await page.context().close();
      await narrow.page.context().close();
    });
  });
});
