import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { type FakeLlm, startFakeLlm } from '../support/fake-llm';
import { ARTIFACTS, BROWSER_HOST, watchProblems } from './browser';
import { type RunningServer, startServer } from './server-process';

/** The built server with the chat page, and (unless `replies: false`) the fake model behind it. */
export interface ChatStack {
  server: RunningServer;
  fake: FakeLlm | null;
  /** The page's address through a host name that is not loopback, as a LAN address is. */
  url: string;
  close(): Promise<void>;
}

export async function startChatStack(
  env: Record<string, string> = {},
  { replies = true }: { replies?: boolean } = {},
): Promise<ChatStack> {
  const fake = replies ? await startFakeLlm() : null;
  const server = await startServer({
    DATABASE_URL: 'sqlite::memory:',
    ...(fake ? { LLM_BASE_URL: fake.baseUrl } : {}),
    ...env,
  });
  return {
    server,
    fake,
    url: `http://${BROWSER_HOST}:${new URL(server.base).port}/app/`,
    async close() {
      await server.stop();
      await fake?.close();
    },
  };
}

export interface ChatPage {
  page: Page;
  /** Console errors, page errors, failed requests and CSP violations seen so far. */
  problems: string[];
}

export const DESKTOP = { width: 1280, height: 860 };
export const NARROW = { width: 375, height: 740 };

/** A new tab (own storage) on the chat page, loaded. */
export async function openChatPage(
  browser: Browser,
  stack: ChatStack,
  viewport = DESKTOP,
  hash = '',
): Promise<ChatPage> {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  const problems = await watchProblems(page);
  await page.goto(stack.url + hash, { waitUntil: 'load' });
  return { page, problems };
}

/** Types into the composer and sends with Enter, as a person does. */
export async function sendMessage(page: Page, text: string): Promise<void> {
  const composer = page.getByLabel('Message', { exact: true });
  await composer.fill(text);
  await composer.press('Enter');
}

/** The messages shown, as `role: text` lines (the role label as the page shows it). */
export async function shownMessages(page: Page): Promise<string[]> {
  return page
    .locator('article.message')
    .evaluateAll((articles) =>
      articles.map(
        (a) =>
          `${a.querySelector('.role')?.textContent ?? ''}: ${(a.querySelector('.content')?.textContent ?? '').trim()}`,
      ),
    );
}

export function screenshotPath(name: string): string {
  return join(ARTIFACTS, `${name}.png`);
}
