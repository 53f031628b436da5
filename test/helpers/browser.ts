import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { onPostgres } from './database-target';

/** Debian's Chromium (`apt-get install chromium`); .ci/run installs it when it is missing. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** A host name that is not loopback, as a LAN or VM address is, but resolves to this machine. */
export const BROWSER_HOST = 'chat.test';

/** Screenshots of the browser tests: git-ignored, kept by CI as artifacts. */
export const ARTIFACTS = join(__dirname, '..', '..', 'artifacts', 'browser');

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      `--host-resolver-rules=MAP ${BROWSER_HOST} 127.0.0.1`,
    ],
  });
}

/**
 * Collects what a person would see go wrong in the devtools: console errors, uncaught page errors,
 * failed requests and Content Security Policy violations, in the order they happened. Call before
 * the page's first navigation.
 */
export async function watchProblems(page: Page): Promise<string[]> {
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error' || /Content Security Policy/i.test(message.text())) {
      problems.push(`console: ${message.text()}`);
    }
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('requestfailed', (req) => {
    const reason = req.failure()?.errorText ?? '';
    // A stream the page itself stops reading (it left the chat, or reloaded) is not a failure.
    if (reason !== 'net::ERR_ABORTED') problems.push(`request failed: ${req.url()} ${reason}`);
  });
  // Runs in the page, before its own scripts: every CSP violation becomes a console error.
  await page.addInitScript(`document.addEventListener('securitypolicyviolation', (event) =>
    console.error('Content Security Policy violation: ' + event.violatedDirective + ' ' + event.blockedURI));`);
  return problems;
}

/** Pages are the same whatever the database: browser tests run once, on the SQLite project. */
export const describeOnce = onPostgres ? describe.skip : describe;
