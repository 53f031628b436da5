import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Browser, Locator, Page } from 'playwright-core';
import { eventually } from './helpers/api';
import { describeOnce, launchChromium } from './helpers/browser';
import {
  type ChatStack,
  openChatPage,
  sendMessage,
  shownMessages,
  startChatStack,
} from './helpers/chat-page';

/*
 * The chat page's sidebar and the things done to a whole chat (create, rename, pin, archive, delete,
 * temporary chats, export, import), in Chromium, each checked on screen and in what the API stored.
 * The page is the same whatever the database, so these run once, on the SQLite project.
 */
jest.setTimeout(60_000);

const FIXTURE = join(__dirname, 'fixtures', 'chatgpt-conversations.json');
const DAY_MS = 24 * 3600_000;

interface Session {
  id: string;
  name: string | null;
  pinned: boolean;
  archived: boolean;
  expires_at: string | null;
  last_updated_at: string;
}
interface Message {
  id: number;
  session_id: string;
  role: string;
  content: string;
  status: string;
}
interface Hit {
  session: Session;
  message: Message | null;
  snippet: string;
}

describeOnce('chat page: sidebar and whole chats, in Chromium (e2e)', () => {
  let browser: Browser;
  let stack: ChatStack;
  const opened: Page[] = [];

  /** A request to the API itself (not through the page); JSON in and out. */
  async function call<T>(
    path: string,
    init: RequestInit = {},
  ): Promise<{ status: number; body: T }> {
    const response = await fetch(stack.server.base + path, {
      ...init,
      headers: { 'Content-Type': 'application/json', ...init.headers },
    });
    const text = await response.text();
    return { status: response.status, body: (text ? JSON.parse(text) : null) as T };
  }
  const getJson = async <T>(path: string): Promise<T> => (await call<T>(path)).body;

  async function seed(body: Record<string, unknown>, messages: string[] = []): Promise<Session> {
    const { status, body: session } = await call<Session>('/api/v1/sessions', {
      method: 'POST',
      body: JSON.stringify(body),
    });
    expect(status).toBe(201);
    for (const content of messages) {
      const posted = await call(`/api/v1/sessions/${session.id}/messages`, {
        method: 'POST',
        body: JSON.stringify({ content }),
      });
      expect(posted.status).toBe(201);
    }
    return getJson<Session>(`/api/v1/sessions/${session.id}`);
  }

  const allSessions = () => getJson<Session[]>('/api/v1/sessions?archived=any&limit=1000');

  async function open(hash = ''): Promise<{ page: Page; problems: string[] }> {
    const chat = await openChatPage(browser, stack, undefined, hash);
    chat.page.setDefaultTimeout(10_000);
    opened.push(chat.page);
    return chat;
  }

  /** The names listed in a sidebar section, in order. */
  const namesIn = (section: Locator) => section.locator('.session-name').allTextContents();
  const section = (page: Page, name: string) =>
    page.getByRole('navigation', { name: 'Chats' }).getByRole('region', { name });
  const hashId = (page: Page) => /^#\/s\/([^/]+)$/.exec(new URL(page.url()).hash)?.[1] ?? null;

  /** Waits until a condition on the page holds (polled), then lets the test go on. */
  const until = (check: () => Promise<boolean>, ms = 10_000) => eventually(check, ms);

  beforeAll(async () => {
    [browser, stack] = await Promise.all([launchChromium(), startChatStack()]);
    stack.fake!.setDefault({ stream: ['Noted', ', thanks.'] });
  });
  afterAll(async () => {
    await browser?.close();
    await stack?.close();
  });
  beforeEach(async () => {
    // Every test starts from an empty store, so what the sidebar lists is only what it made.
    for (const session of await allSessions()) {
      expect((await call(`/api/v1/sessions/${session.id}`, { method: 'DELETE' })).status).toBe(204);
    }
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((page) => page.context().close()));
  });

  it('lists pinned chats first, then the rest by recency; Archived shows only archived; Show more loads the next 50', async () => {
    // Oldest first, so "Chat 55" is the most recent; a pinned chat stays on top however old it is.
    await seed({ name: 'Pinned long ago', pinned: true });
    await sleep(3);
    await seed({ name: 'Put away', archived: true });
    for (let i = 1; i <= 55; i++) {
      await sleep(3);
      await seed({ name: `Chat ${String(i).padStart(2, '0')}` });
    }
    await sleep(3);
    await seed({ name: 'Pinned lately', pinned: true });
    const { page, problems } = await open();

    const pinned = section(page, 'Pinned chats');
    const recent = section(page, 'Recent chats');
    await recent.locator('.session-name').first().waitFor();
    expect(await pinned.getByRole('heading').textContent()).toBe('Pinned');
    expect(await namesIn(pinned)).toEqual(['Pinned lately', 'Pinned long ago']);
    expect(await pinned.getByRole('img', { name: 'pinned' }).count()).toBe(2);
    const newest50 = Array.from(
      { length: 50 },
      (_, i) => `Chat ${String(55 - i).padStart(2, '0')}`,
    );
    expect(await namesIn(recent)).toEqual(newest50);
    // The same order as the API's, pinned left out.
    const unpinned = await getJson<Session[]>('/api/v1/sessions?pinned=false&limit=1000');
    expect(unpinned.map((s) => s.name)).toEqual([
      ...newest50,
      'Chat 05',
      'Chat 04',
      'Chat 03',
      'Chat 02',
      'Chat 01',
    ]);

    await recent.getByRole('button', { name: 'Show more' }).click();
    await until(async () => (await namesIn(recent)).length > 50);
    expect(await namesIn(recent)).toEqual(unpinned.map((s) => s.name));
    expect(await recent.getByRole('button', { name: 'Show more' }).count()).toBe(0);

    // Archived: only the archived chat, none of the others (pinned ones included).
    const filter = page.getByRole('button', { name: 'Archived' });
    expect(await filter.getAttribute('aria-pressed')).toBe('false');
    await filter.click();
    const archived = section(page, 'Archived chats');
    await archived.locator('.session-name').first().waitFor();
    expect(await namesIn(archived)).toEqual(['Put away']);
    expect(await pinned.count()).toBe(0);
    expect(await recent.count()).toBe(0);
    const showing = page.getByRole('button', { name: 'Showing archived' });
    expect(await showing.getAttribute('aria-pressed')).toBe('true');
    // Opening it from there opens that chat.
    await archived.getByRole('link', { name: /Put away/ }).click();
    await page.getByRole('heading', { level: 1, name: 'Put away' }).waitFor();
    expect(hashId(page)).toBe((await allSessions()).find((s) => s.name === 'Put away')!.id);

    await showing.click();
    await recent.locator('.session-name').first().waitFor();
    expect(await namesIn(recent)).toEqual(newest50);
    expect(await namesIn(pinned)).toEqual(['Pinned lately', 'Pinned long ago']);
    expect(problems).toEqual([]);
  });

  it('search: highlights the matched words, opens a result, and says when nothing matches', async () => {
    const lisbon = await seed({ name: 'Weekend away' }, [
      'Any tips for the city?',
      'We walked through Alfama in Lisbon at sunset and ate grilled sardines.',
    ]);
    await seed({ name: 'Bread' }, ['Bake the loaf at 220 degrees until golden.']);
    const { page, problems } = await open();
    await section(page, 'Recent chats').locator('.session-name').first().waitFor();

    await page.getByRole('searchbox', { name: 'Search chats' }).fill('lisbon sunset');
    const results = section(page, 'Search results');
    await results.getByRole('link').first().waitFor();
    const hits = await getJson<Hit[]>(
      `/api/v1/search?q=${encodeURIComponent('lisbon sunset')}&archived=false&limit=20`,
    );
    expect(hits).toHaveLength(1);
    expect(hits[0].snippet).toContain('[Lisbon]');
    const snippet = results.locator('.snippet');
    expect(await snippet.allTextContents()).toEqual([hits[0].snippet.replace(/[[\]]/g, '')]);
    // Each term the API marked, and nothing else, is highlighted.
    const marked = [...hits[0].snippet.matchAll(/\[([^\]]*)\]/g)].map((m) => m[1]);
    expect(marked).toEqual(['Lisbon', 'sunset']);
    expect(await results.locator('mark').allTextContents()).toEqual(marked);
    expect(await results.getByRole('link').count()).toBe(1);

    await results.getByRole('link', { name: /Weekend away/ }).click();
    await page.getByRole('heading', { level: 1, name: 'Weekend away' }).waitFor();
    expect(hashId(page)).toBe(lisbon.id);
    await until(async () => (await shownMessages(page)).length === 2);
    expect(await shownMessages(page)).toEqual([
      'You: Any tips for the city?',
      'You: We walked through Alfama in Lisbon at sunset and ate grilled sardines.',
    ]);

    await page.getByRole('searchbox', { name: 'Search chats' }).fill('zanzibar');
    const none = page.getByText('No chat matches “zanzibar”.');
    await none.waitFor();
    expect(await getJson<Hit[]>('/api/v1/search?q=zanzibar')).toEqual([]);
    expect(await results.getByRole('link').count()).toBe(0);

    // Clearing the box brings the list back.
    await page.getByRole('searchbox', { name: 'Search chats' }).fill('');
    await section(page, 'Recent chats').waitFor();
    expect(await namesIn(section(page, 'Recent chats'))).toEqual(['Bread', 'Weekend away']);
    expect(problems).toEqual([]);
  });

  it('+ New chat: the first message creates a chat named after its first line, listed and opened at #/s/<id>', async () => {
    await seed({ name: 'Something else' }, ['Earlier']);
    const { page, problems } = await open();
    await section(page, 'Recent chats').locator('.session-name').first().waitFor();
    await page.getByRole('button', { name: '+ New chat' }).click();
    await page.getByRole('heading', { level: 1, name: 'New chat' }).waitFor();

    await sendMessage(page, 'Plan a picnic for Sunday\nwith sandwiches and lemonade');
    await until(() => Promise.resolve(hashId(page) !== null));
    const id = hashId(page)!;
    await page.getByRole('heading', { level: 1, name: 'Plan a picnic for Sunday' }).waitFor();
    const link = section(page, 'Recent chats').getByRole('link', {
      name: /Plan a picnic for Sunday/,
    });
    await link.waitFor();
    expect(await link.getAttribute('aria-current')).toBe('page');
    expect(await namesIn(section(page, 'Recent chats'))).toEqual([
      'Plan a picnic for Sunday',
      'Something else',
    ]);

    // The reply is written, then the page and the server agree on the chat.
    await until(async () => (await shownMessages(page)).includes('Assistant: Noted, thanks.'));
    const session = await getJson<Session>(`/api/v1/sessions/${id}`);
    expect(session).toMatchObject({
      id,
      name: 'Plan a picnic for Sunday',
      expires_at: null,
      pinned: false,
    });
    await until(async () => {
      const messages = await getJson<Message[]>(`/api/v1/sessions/${id}/messages`);
      return messages.at(-1)?.status === 'complete';
    });
    const messages = await getJson<Message[]>(`/api/v1/sessions/${id}/messages`);
    expect(messages.map((m) => [m.role, m.content, m.status])).toEqual([
      ['user', 'Plan a picnic for Sunday\nwith sandwiches and lemonade', 'complete'],
      ['assistant', 'Noted, thanks.', 'complete'],
    ]);
    expect(await page.getByRole('checkbox', { name: /Temporary chat/ }).count()).toBe(0);
    expect(problems).toEqual([]);
  });

  it('header toolbar: Rename, Pin/Unpin, Archive/Unarchive, and Delete behind a confirmation', async () => {
    const draft = await seed({ name: 'Draft notes' }, ['First thought']);
    await seed({ name: 'Neighbour' });
    const { page, problems } = await open(`#/s/${draft.id}`);
    await page.getByRole('heading', { level: 1, name: 'Draft notes' }).waitFor();
    const toolbar = page.getByRole('toolbar', { name: 'Chat actions' });
    const stored = () => getJson<Session>(`/api/v1/sessions/${draft.id}`);
    const recent = section(page, 'Recent chats');
    const pinned = section(page, 'Pinned chats');

    // Rename.
    await toolbar.getByRole('button', { name: 'Rename' }).click();
    const nameBox = page.getByRole('textbox', { name: 'Chat name' });
    expect(await nameBox.inputValue()).toBe('Draft notes');
    await nameBox.fill('Final notes');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('heading', { level: 1, name: 'Final notes' }).waitFor();
    await recent.getByRole('link', { name: /Final notes/ }).waitFor();
    expect((await stored()).name).toBe('Final notes');
    expect(await recent.getByRole('link', { name: /Draft notes/ }).count()).toBe(0);

    // Pin, then unpin.
    await toolbar.getByRole('button', { name: 'Pin' }).click();
    await pinned.getByRole('link', { name: /Final notes/ }).waitFor();
    expect(await toolbar.getByRole('button', { name: 'Unpin' }).getAttribute('aria-pressed')).toBe(
      'true',
    );
    expect((await stored()).pinned).toBe(true);
    expect(await namesIn(recent)).toEqual(['Neighbour']);
    await toolbar.getByRole('button', { name: 'Unpin' }).click();
    await until(async () => (await pinned.count()) === 0);
    expect((await stored()).pinned).toBe(false);
    expect(await namesIn(recent)).toEqual(['Neighbour', 'Final notes']);

    // Archive: it leaves the list; Unarchive brings it back.
    await toolbar.getByRole('button', { name: 'Archive' }).click();
    await toolbar.getByRole('button', { name: 'Unarchive' }).waitFor();
    await until(async () => (await namesIn(recent)).length === 1);
    expect(await namesIn(recent)).toEqual(['Neighbour']);
    expect((await stored()).archived).toBe(true);
    await page.getByRole('button', { name: 'Archived' }).click();
    await section(page, 'Archived chats')
      .getByRole('link', { name: /Final notes/ })
      .waitFor();
    await toolbar.getByRole('button', { name: 'Unarchive' }).click();
    await toolbar.getByRole('button', { name: 'Archive' }).waitFor();
    await page.getByText('No archived chats.').waitFor();
    expect((await stored()).archived).toBe(false);
    await page.getByRole('button', { name: 'Showing archived' }).click();
    await recent.getByRole('link', { name: /Final notes/ }).waitFor();

    // Delete: Cancel keeps it.
    const dialog = page.getByRole('dialog', { name: 'Delete this chat?' });
    await toolbar.getByRole('button', { name: 'Delete' }).click();
    await dialog.waitFor();
    expect(await dialog.textContent()).toContain(
      '“Final notes” and all its messages will be deleted.',
    );
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'hidden' });
    expect((await call(`/api/v1/sessions/${draft.id}`)).status).toBe(200);
    expect(hashId(page)).toBe(draft.id);
    expect(await namesIn(recent)).toEqual(['Neighbour', 'Final notes']);

    // Delete: Delete removes it from the server and the list.
    await toolbar.getByRole('button', { name: 'Delete' }).click();
    await dialog.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('alert').getByText('Deleted “Final notes”.').waitFor();
    await until(async () => (await namesIn(recent)).length === 1);
    expect(await namesIn(recent)).toEqual(['Neighbour']);
    expect((await call(`/api/v1/sessions/${draft.id}`)).status).toBe(404);
    expect((await allSessions()).map((s) => s.name)).toEqual(['Neighbour']);
    await page.getByRole('heading', { level: 1, name: 'New chat' }).waitFor();
    expect(hashId(page)).toBeNull();
    expect(problems).toEqual([]);
  });

  it('Temporary chat: the new chat expires in 24 hours and is marked Temporary', async () => {
    const { page, problems } = await open();
    await page.getByRole('heading', { level: 1, name: 'New chat' }).waitFor();
    await page.getByRole('checkbox', { name: 'Temporary chat (deleted after 24 hours)' }).check();
    const before = Date.now();
    await sendMessage(page, 'Quick throwaway question');
    await until(() => Promise.resolve(hashId(page) !== null));
    const after = Date.now();
    const id = hashId(page)!;

    const session = await getJson<Session>(`/api/v1/sessions/${id}`);
    expect(session.name).toBe('Quick throwaway question');
    const expires = Date.parse(session.expires_at!);
    expect(expires).toBeGreaterThanOrEqual(before + DAY_MS - 1000);
    expect(expires).toBeLessThanOrEqual(after + DAY_MS + 1000);

    await page.getByText('Temporary', { exact: true }).waitFor();
    const link = section(page, 'Recent chats').getByRole('link', {
      name: /Quick throwaway question/,
    });
    await link.getByRole('img', { name: 'temporary' }).waitFor();
    await until(async () => (await shownMessages(page)).includes('Assistant: Noted, thanks.'));

    // A chat made without it is kept, and has no badge.
    const kept = await seed({ name: 'Kept' }, ['Stay']);
    const other = await open(`#/s/${kept.id}`);
    await other.page.getByRole('heading', { level: 1, name: 'Kept' }).waitFor();
    expect(await other.page.getByText('Temporary', { exact: true }).count()).toBe(0);
    expect(
      await section(other.page, 'Recent chats')
        .getByRole('link', { name: /Kept/ })
        .getByRole('img', { name: 'temporary' })
        .count(),
    ).toBe(0);
    expect(problems).toEqual([]);
    expect(other.problems).toEqual([]);
  });

  it('Export JSON and Export Markdown download what the API exports', async () => {
    const session = await seed({ name: 'Recipe: *shakshuka*' }, [
      'Which spices?',
      'Cumin, paprika and a pinch of **chili**.\n\n- eggs\n- tomatoes',
    ]);
    const { page, problems } = await open(`#/s/${session.id}`);
    await page.getByRole('heading', { level: 1, name: 'Recipe: *shakshuka*' }).waitFor();
    const toolbar = page.getByRole('toolbar', { name: 'Chat actions' });

    const [json] = await Promise.all([
      page.waitForEvent('download'),
      toolbar.getByRole('button', { name: 'Export JSON' }).click(),
    ]);
    expect(json.suggestedFilename()).toBe(`${session.id}.json`);
    const jsonText = await readFile(await json.path(), 'utf8');
    const fromApi = await fetch(
      `${stack.server.base}/api/v1/sessions/${session.id}/export?format=json`,
    );
    const apiJson = await fromApi.text();
    expect(jsonText).toBe(apiJson);
    const parsed = JSON.parse(jsonText) as { session: Session; messages: Message[] };
    expect(parsed.session.id).toBe(session.id);
    expect(parsed.messages.map((m) => m.content)).toEqual([
      'Which spices?',
      'Cumin, paprika and a pinch of **chili**.\n\n- eggs\n- tomatoes',
    ]);

    const [markdown] = await Promise.all([
      page.waitForEvent('download'),
      toolbar.getByRole('button', { name: 'Export Markdown' }).click(),
    ]);
    expect(markdown.suggestedFilename()).toBe(`${session.id}.md`);
    const mdText = await readFile(await markdown.path(), 'utf8');
    const apiMd = await (
      await fetch(`${stack.server.base}/api/v1/sessions/${session.id}/export?format=markdown`)
    ).text();
    expect(mdText).toBe(apiMd);
    expect(mdText).toContain('Cumin, paprika and a pinch of **chili**.');
    expect(problems).toEqual([]);
  });

  it('Import…: a JSON export from elsewhere, then the ChatGPT conversations.json; each listed, opened and announced', async () => {
    // An export from another server: its own session id, message ids this one may already use.
    const source = await seed({ name: 'From the laptop' }, ['Packing list?', 'Passport, charger']);
    const exported = await getJson<{ session: Session; messages: Message[] }>(
      `/api/v1/sessions/${source.id}/export`,
    );
    const foreignId = '3f0c9a52-7d1e-4c3b-9a8e-2b6f1d0e4c77';
    exported.session.id = foreignId;
    exported.session.name = 'From the other server';
    for (const message of exported.messages) message.session_id = foreignId;
    const { page, problems } = await open();
    await section(page, 'Recent chats').locator('.session-name').first().waitFor();

    // The button opens a file chooser, as a person uses it.
    const [chooser] = await Promise.all([
      page.waitForEvent('filechooser'),
      page.getByRole('button', { name: 'Import…' }).click(),
    ]);
    await chooser.setFiles({
      name: 'other-server.json',
      mimeType: 'application/json',
      buffer: Buffer.from(JSON.stringify(exported)),
    });
    const alerts = page.getByRole('alert');
    await alerts.getByText('Imported 1 chat from other-server.json.').waitFor();
    await page.getByRole('heading', { level: 1, name: 'From the other server' }).waitFor();
    expect(hashId(page)).toBe(foreignId);
    await until(async () => (await shownMessages(page)).length === 2);
    expect(await shownMessages(page)).toEqual(['You: Packing list?', 'You: Passport, charger']);
    expect(
      (await getJson<Message[]>(`/api/v1/sessions/${foreignId}/messages`)).map((m) => m.content),
    ).toEqual(['Packing list?', 'Passport, charger']);
    await section(page, 'Recent chats')
      .getByRole('link', { name: /From the other server/ })
      .waitFor();

    // ChatGPT's export, through the hidden input itself.
    const input = page.getByLabel('Import chats from a file');
    await input.setInputFiles({
      name: 'conversations.json',
      mimeType: 'application/json',
      buffer: readFileSync(FIXTURE),
    });
    await alerts.getByText('Imported 3 chats from conversations.json.').waitFor();
    await page.getByRole('heading', { level: 1, name: 'Trip to Lisbon' }).waitFor();
    const imported = (await allSessions()).filter((s) => s.id !== foreignId && s.id !== source.id);
    expect(imported).toHaveLength(3);
    const trip = imported.find((s) => s.name === 'Trip to Lisbon')!;
    expect(hashId(page)).toBe(trip.id);
    // The branch shown is the one the API calls current.
    // (Compared without whitespace: Markdown shows a line break as a break, not as text.)
    const label = { user: 'You', assistant: 'Assistant', system: 'System' } as Record<
      string,
      string
    >;
    const squeeze = (line: string) => line.replace(/\s+/g, '');
    const branch = (
      await getJson<Message[]>(`/api/v1/sessions/${trip.id}/messages?branch=current&limit=1000`)
    ).map((m) => squeeze(`${label[m.role]}: ${m.content}`));
    expect(branch.length).toBeGreaterThan(3);
    await until(async () => (await shownMessages(page)).length === branch.length);
    expect((await shownMessages(page)).map(squeeze)).toEqual(branch);
    // Listed where they belong: the archived conversation under Archived only.
    const recent = section(page, 'Recent chats');
    await recent.getByRole('link', { name: /Trip to Lisbon/ }).waitFor();
    const listed = await namesIn(recent);
    for (const s of imported) {
      const title = s.name ?? 'Untitled chat';
      expect(listed.includes(title)).toBe(!s.archived);
    }
    expect(imported.some((s) => s.archived)).toBe(true);

    // The same file again imports nothing and says so.
    await input.setInputFiles({
      name: 'conversations.json',
      mimeType: 'application/json',
      buffer: readFileSync(FIXTURE),
    });
    await alerts
      .getByText('Imported 0 chats from conversations.json (3 chats already here).')
      .waitFor();
    expect(await allSessions()).toHaveLength(5);
    expect(problems).toEqual([]);
  });

  it('Import…: a malformed file shows the API’s problem and imports nothing', async () => {
    await seed({ name: 'Already here' });
    const { page, problems } = await open();
    await section(page, 'Recent chats').locator('.session-name').first().waitFor();
    const broken = '[{"session": {"id": "not-a-uuid", "name": 5}, "messages": "nope"}]';

    await page.getByLabel('Import chats from a file').setInputFiles({
      name: 'broken.json',
      mimeType: 'application/json',
      buffer: Buffer.from(broken),
    });
    const notice = page.getByRole('alert').locator('.notice.error > span');
    await notice.waitFor();
    // What the API answers for the same file (it imports nothing either way).
    const answer = await call<{
      title: string;
      detail: string;
      errors?: { field: string; message: string }[];
    }>('/api/v1/import', { method: 'POST', body: broken });
    expect(answer.status).toBe(400);
    expect(answer.body.detail).toMatch(/^Nothing was imported/);
    // The detail already names every problem: the notice says it once.
    expect(answer.body.errors!.length).toBeGreaterThan(0);
    for (const error of answer.body.errors!) expect(answer.body.detail).toContain(error.message);
    expect(await notice.textContent()).toBe(`Import failed: Bad Request: ${answer.body.detail}`);
    expect((await allSessions()).map((s) => s.name)).toEqual(['Already here']);
    expect(await namesIn(section(page, 'Recent chats'))).toEqual(['Already here']);
    // The 400 itself is the only complaint in the console (Chromium logs every failed load).
    expect(problems.filter((p) => !/status of 400 \(Bad Request\)/.test(p))).toEqual([]);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^console: Failed to load resource: .*400/);
  });
});
