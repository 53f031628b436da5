import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dropBenchSchemas } from './postgres';
import { killAllNow, stopAll } from './processes';

/**
 * The frame of every bench script: a temporary directory, servers and PostgreSQL schemas cleaned up
 * however the run ends (done, failed, Ctrl-C), a one-line error and exit code 1 on failure.
 * `run` returns the exit code.
 */
export function runBenchScript(name: string, run: (tmp: string) => Promise<number>): void {
  const tmp = mkdtempSync(join(tmpdir(), `chat-${name.replace(/\W/g, '-')}-`));
  const cleanUp = async () => {
    await stopAll();
    await dropBenchSchemas();
    rmSync(tmp, { recursive: true, force: true });
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`${signal}: stopping the servers\n`);
      void cleanUp().finally(() => process.exit(130));
    });
  }
  process.on('exit', killAllNow);
  run(tmp)
    .then((code) => (process.exitCode = code))
    .catch((error: unknown) => {
      process.stderr.write(
        `${name} failed: ${error instanceof Error ? error.message : String(error)}\n`,
      );
      process.exitCode = 1;
    })
    .finally(() => void cleanUp());
}
