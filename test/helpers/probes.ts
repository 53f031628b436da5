import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** Resident and peak resident memory of a process, in MiB (Linux). */
export function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
  return { rss: kib('VmRSS') / 1024, peak: kib('VmHWM') / 1024 };
}

/** Sends `GET /` every few ms until `until` settles; the slowest answer, in ms. Any non-200 fails. */
export async function worstLatency(base: string, until: Promise<unknown>): Promise<number> {
  let done = false;
  void until.finally(() => (done = true));
  let worst = 0;
  while (!done) {
    const t0 = performance.now();
    const status = (await fetch(`${base}/`)).status;
    if (status !== 200) throw new Error(`GET / answered ${status} meanwhile`);
    worst = Math.max(worst, performance.now() - t0);
    await sleep(10);
  }
  return worst;
}
