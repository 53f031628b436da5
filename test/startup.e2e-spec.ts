import { createServer, Server } from 'node:net';
import { freePort, runServerToExit } from './helpers/server-process';

/** Start-up of the built server: a bad environment ends it with one clear line and a non-zero exit. */
describe('Start-up (e2e, built server)', () => {
  it.each<[Record<string, string>, RegExp]>([
    [{ PORT: 'eighty' }, /^Configuration error: Invalid configuration: PORT must be an integer/],
    [
      { DATABASE_URL: 'mysql://x/y' },
      /^Configuration error: Invalid configuration: DATABASE_URL must start/,
    ],
    [
      { LOG_LEVEL: 'chatty' },
      /^Configuration error: Invalid configuration: LOG_LEVEL must be one of/,
    ],
  ])('refuses %j', async (env, line) => {
    const exited = await runServerToExit({
      ...env,
      DATABASE_URL: env.DATABASE_URL ?? 'sqlite::memory:',
    });
    expect(exited.code).toBe(1);
    expect(exited.stderr.trim().split('\n')).toEqual([expect.stringMatching(line)]);
  });

  it('says so in one line when the port is taken', async () => {
    const port = await freePort();
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
    try {
      const exited = await runServerToExit({ PORT: String(port), DATABASE_URL: 'sqlite::memory:' });
      expect(exited.code).toBe(1);
      expect(exited.stderr.trim().split('\n')).toEqual([
        `Start-up failed: port ${port} on 127.0.0.1 is already in use`,
      ]);
    } finally {
      blocker.close();
    }
  });
});
