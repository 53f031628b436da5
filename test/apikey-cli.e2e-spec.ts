import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { freshDatabaseUrl } from './helpers/database-target';
import { startServer } from './helpers/server-process';

const ROOT = join(__dirname, '..');

/** `npm run apikey -- …`, run the way npm runs it (ts-node on src/cli/apikey.ts). */
function apikey(
  databaseUrl: string,
  ...args: string[]
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        join(ROOT, 'node_modules/ts-node/dist/bin.js'),
        '--transpile-only',
        'src/cli/apikey.ts',
        ...args,
      ],
      {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '', DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' },
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('API key CLI against a running server (e2e)', () => {
  let url: string;
  let server: Awaited<ReturnType<typeof startServer>>;

  beforeAll(async () => {
    url = await freshDatabaseUrl('cli');
    server = await startServer({ DATABASE_URL: url, AUTH_MODE: 'api-key' });
  }, 30_000);
  afterAll(() => server?.stop());

  it('creates a key shown once on the last line, lists it without the secret, revokes it for every process', async () => {
    const created = await apikey(url, 'create', '--owner', 'erin');
    expect(created.code).toBe(0);
    const lines = created.stdout.trim().split('\n');
    const key = lines.at(-1)!;
    expect(key).toMatch(/^csk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    const id = key.split('_')[1];

    const ok = await fetch(`${server.base}/api/v1/sessions`, {
      headers: { Authorization: `Bearer ${key}` },
    });
    expect(ok.status).toBe(200);

    const listed = await apikey(url, 'list');
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain(`erin\t${id}\t`);
    expect(listed.stdout).not.toContain(key.split('_').slice(2).join('_'));

    const revoked = await apikey(url, 'revoke', id);
    expect({ code: revoked.code, out: revoked.stdout.trim() }).toEqual({
      code: 0,
      out: `Revoked key ${id}.`,
    });
    const refused = await fetch(`${server.base}/api/v1/sessions`, {
      headers: { Authorization: `Bearer ${key}` },
    });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toMatch(/^Bearer/);

    const again = await apikey(url, 'revoke', id);
    expect(again.code).toBe(1);
  }, 60_000);

  it('refuses bad usage and bad owner names with a message and a non-zero exit', async () => {
    const usage = await apikey(url, 'create');
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('Usage:');
    const badOwner = await apikey(url, 'create', '--owner', 'has space');
    expect(badOwner.code).toBe(1);
    expect(badOwner.stderr).toMatch(/owner must be/);
  }, 30_000);
});
