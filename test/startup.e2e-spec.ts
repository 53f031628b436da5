import { createHash } from 'node:crypto';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { createServer, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { validateEnv } from '../src/config/env.validation';
import { buildDataSourceOptions } from '../src/database/database.options';
import { freshDatabaseUrl, onPostgres } from './helpers/database-target';
import { Exited, freePort, RunAs, runServerToExit } from './helpers/server-process';

const FUTURE_MIGRATION = 'ArchiveToColdStorage2999999999999';

/** Exactly one line on stderr matching `line`, exit code 1, and no stack trace anywhere. */
function expectOneLineFailure(exited: Exited, line: RegExp | string): void {
  expect(exited.code).toBe(1);
  expect(exited.stderr.trim().split('\n')).toEqual([
    typeof line === 'string' ? line : expect.stringMatching(line),
  ]);
  expect(`${exited.stdout}${exited.stderr}`).not.toMatch(/\n\s+at /);
}

/** A database with the whole schema, one session and one message, closed cleanly (WAL merged). */
async function migratedDatabase(
  url: string,
  extra: (db: DataSource) => Promise<void> = async () => {},
) {
  const db = await new DataSource(
    buildDataSourceOptions(validateEnv({ DATABASE_URL: url })),
  ).initialize();
  await db.runMigrations();
  await db.query(
    `INSERT INTO "sessions" ("id", "name", "created_at", "last_updated_at", "message_count")
     VALUES ('11111111-1111-4111-8111-111111111111', 'kept', 1000, 2000, 1)`,
  );
  await db.query(
    `INSERT INTO "chat_messages" ("session_id", "timestamp", "role", "content")
     VALUES ('11111111-1111-4111-8111-111111111111', 2000, 'user', 'precious')`,
  );
  await extra(db);
  await db.destroy();
}

async function recordFutureMigration(db: DataSource): Promise<void> {
  await db.query(
    `INSERT INTO "migrations" ("timestamp", "name") VALUES (2999999999999, '${FUTURE_MIGRATION}')`,
  );
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

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
    expectOneLineFailure(exited, line);
  });

  it('says so in one line when the port is taken, and leaves the database as it was', async () => {
    const url = await freshDatabaseUrl('port_taken');
    await migratedDatabase(url);
    const before = onPostgres ? undefined : sha256(url.slice('sqlite:'.length));
    const port = await freePort();
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
    try {
      const exited = await runServerToExit({ PORT: String(port), DATABASE_URL: url });
      expectOneLineFailure(exited, `Start-up failed: port ${port} on 127.0.0.1 is already in use`);
    } finally {
      blocker.close();
    }
    if (before !== undefined) expect(sha256(url.slice('sqlite:'.length))).toBe(before);
  });

  it('refuses a database migrated by newer code, and changes nothing in it', async () => {
    const url = await freshDatabaseUrl('newer_schema');
    await migratedDatabase(url, recordFutureMigration);
    const snapshot = async () => {
      const db = await new DataSource(
        buildDataSourceOptions(validateEnv({ DATABASE_URL: url })),
      ).initialize();
      try {
        return {
          migrations: await db.query(`SELECT "name" FROM "migrations" ORDER BY "id"`),
          sessions: await db.query(`SELECT "id", "name", "message_count" FROM "sessions"`),
          messages: await db.query(`SELECT "content" FROM "chat_messages"`),
          tables: onPostgres
            ? await db.query(
                `SELECT "table_name" FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1`,
              )
            : await db.query(`SELECT "name" FROM sqlite_master ORDER BY 1`),
        };
      } finally {
        await db.destroy();
      }
    };
    const file = onPostgres ? undefined : url.slice('sqlite:'.length);
    const hash = file && sha256(file);
    const before = await snapshot();

    const exited = await runServerToExit({ DATABASE_URL: url });
    expectOneLineFailure(
      exited,
      `Start-up failed: the database was migrated by newer code (unknown migrations: ${FUTURE_MIGRATION}); refusing to start`,
    );
    if (file) expect(sha256(file)).toBe(hash);
    expect(await snapshot()).toEqual(before);
  });

  (onPostgres ? it : it.skip)(
    'gives up on an unreachable PostgreSQL with one line once DB_STARTUP_TIMEOUT_MS has passed',
    async () => {
      const port = await freePort();
      const exited = await runServerToExit({
        DATABASE_URL: `postgres://root@127.0.0.1:${port}/test`,
        DB_STARTUP_TIMEOUT_MS: '0',
      });
      expectOneLineFailure(exited, /^Start-up failed: cannot open the database: .*ECONNREFUSED/);
    },
  );
});

/**
 * Bad SQLite files and paths. Permissions do not bind root, so when the suite runs as root the
 * server runs without capabilities for the permission cases (see RunAs).
 */
(onPostgres ? describe.skip : describe)(
  'Start-up on a bad SQLite file or path (e2e, built server)',
  () => {
    let dir: string;
    const unprivileged: RunAs = { withoutPrivileges: true };

    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'chat-sessions-startup-'));
      chmodSync(dir, 0o755);
    });
    afterEach(() => {
      chmodSync(dir, 0o755);
      rmSync(dir, { recursive: true, force: true });
    });

    it('names a directory it may not write to', async () => {
      const locked = join(dir, 'locked');
      mkdirSync(locked, { mode: 0o555 });
      chmodSync(locked, 0o555);
      const file = join(locked, 'chat.sqlite');
      const exited = await runServerToExit(
        { DATABASE_URL: `sqlite:${file}` },
        20_000,
        unprivileged,
      );
      expectOneLineFailure(
        exited,
        `Start-up failed: cannot open the database file ${file}: unable to open database file (SQLite must be able to write chat.sqlite and to create chat.sqlite-wal and chat.sqlite-shm in ${locked}; check the permissions)`,
      );
      expect(readdirSync(locked)).toEqual([]);
    });

    it('names a directory it cannot create', async () => {
      const locked = join(dir, 'locked');
      mkdirSync(locked, { mode: 0o555 });
      chmodSync(locked, 0o555);
      const file = join(locked, 'data', 'chat.sqlite');
      const exited = await runServerToExit(
        { DATABASE_URL: `sqlite:${file}` },
        20_000,
        unprivileged,
      );
      expectOneLineFailure(
        exited,
        `Start-up failed: cannot open the database file ${file}: EACCES: permission denied, mkdir '${join(locked, 'data')}'`,
      );
    });

    it('refuses a database file it may read but not write, before any request could fail on it', async () => {
      const file = join(dir, 'chat.sqlite');
      await migratedDatabase(`sqlite:${file}`);
      chmodSync(file, 0o444);
      // The directory stays writable, so SQLite can open the file (read-only, without saying so).
      chmodSync(dir, 0o777);
      const hash = sha256(file);
      const exited = await runServerToExit(
        { DATABASE_URL: `sqlite:${file}` },
        20_000,
        unprivileged,
      );
      expectOneLineFailure(
        exited,
        `Start-up failed: the database file ${file} is not writable: attempt to write a readonly database (SQLite must be able to write chat.sqlite and to create chat.sqlite-wal and chat.sqlite-shm in ${dir}; check the permissions)`,
      );
      expect(sha256(file)).toBe(hash);
    });

    it('names a path that runs through a file', async () => {
      writeFileSync(join(dir, 'plain'), 'not a directory');
      const file = join(dir, 'plain', 'chat.sqlite');
      const exited = await runServerToExit({ DATABASE_URL: `sqlite:${file}` });
      expectOneLineFailure(
        exited,
        `Start-up failed: cannot open the database file ${file}: ENOTDIR: not a directory, stat '${file}'`,
      );
    });

    it('names a path that is a directory', async () => {
      const exited = await runServerToExit({ DATABASE_URL: `sqlite:${dir}` });
      expectOneLineFailure(
        exited,
        `Start-up failed: cannot open the database file ${dir}: ${dir} is not a regular file`,
      );
    });

    it('refuses a file that is not a database, and leaves it as it was', async () => {
      const file = join(dir, 'chat.sqlite');
      writeFileSync(file, Buffer.from(Array.from({ length: 8192 }, (_, i) => (i * 7919) % 256)));
      const hash = sha256(file);
      const exited = await runServerToExit({ DATABASE_URL: `sqlite:${file}` });
      expectOneLineFailure(
        exited,
        `Start-up failed: cannot open the database file ${file}: file is not a database`,
      );
      expect(sha256(file)).toBe(hash);
    });

    it.each(['sessions', 'chat_messages', 'idx_chat_messages_session_order'])(
      'refuses a database whose %s pages are damaged, and leaves the file as it was',
      async (tree) => {
        const file = join(dir, 'chat.sqlite');
        let rootPage = 0;
        await migratedDatabase(`sqlite:${file}`, async (db) => {
          const [row]: { rootpage: number }[] = await db.query(
            `SELECT "rootpage" FROM sqlite_master WHERE "name" = ?`,
            [tree],
          );
          rootPage = row.rootpage;
        });
        // Scribble over the b-tree page's header, as a torn write or a bad disk block would.
        const bytes = readFileSync(file);
        bytes.fill(0xa5, (rootPage - 1) * 4096, (rootPage - 1) * 4096 + 16);
        writeFileSync(file, bytes);
        const hash = sha256(file);
        const exited = await runServerToExit({ DATABASE_URL: `sqlite:${file}` });
        expectOneLineFailure(
          exited,
          new RegExp(
            `^Start-up failed: the database file ${file} is damaged \\(.+\\); refusing to start: restore it from a backup`,
          ),
        );
        expect(sha256(file)).toBe(hash);
      },
    );

    it('refuses a truncated database, and leaves the file as it was', async () => {
      const file = join(dir, 'chat.sqlite');
      await migratedDatabase(`sqlite:${file}`);
      truncateSync(file, 5 * 4096);
      const hash = sha256(file);
      const exited = await runServerToExit({ DATABASE_URL: `sqlite:${file}` });
      expectOneLineFailure(
        exited,
        new RegExp(`^Start-up failed: .*database file ${file}.*(malformed|damaged)`),
      );
      expect(sha256(file)).toBe(hash);
    });
  },
);
