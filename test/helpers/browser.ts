import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';

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
