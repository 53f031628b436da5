import { cpus, totalmem } from 'node:os';
import type { Measurement } from './load';

/** The targets (issue 12, item 4), at the default 32 connections on SQLite. */
export const TARGETS = {
  /** ours ≥ this × the lower of the ceiling and the floor, in every scenario. */
  minRatio: 0.5,
  /** get one session: ours ≥ this × the floor. */
  getOneFloorRatio: 0.8,
  maxP99Ms: 50,
  maxRssMiB: 200,
};

export interface Row {
  scenario: string;
  ours: Measurement;
  ceiling: Measurement;
  floor: Measurement;
  /** Our server with AUTH_MODE=api-key (`--auth`). */
  keyed?: Measurement;
  /** Our server's peak RSS (VmHWM) once this scenario was measured. */
  oursPeakMiB: number | undefined;
}

export function machineInfo(lines: string[]): string {
  const cpuList = cpus();
  return [
    `node ${process.version} on ${process.platform} ${process.arch}`,
    `cpu: ${cpuList[0]?.model ?? 'unknown'}, ${cpuList.length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM`,
    ...lines,
    'Absolute numbers vary a lot on shared cores; compare the ratios within one run.',
  ].join('\n');
}

export function formatMiB(mib: number | undefined): string {
  return mib === undefined ? 'n/a' : `${mib.toFixed(0)} MiB`;
}

const rps = (m: Measurement) => m.requestsPerSecond.toFixed(0);
const ratio = (a: Measurement, b: Measurement) =>
  `${(a.requestsPerSecond / b.requestsPerSecond).toFixed(2)}×`;

function verdict(row: Row): string {
  const misses: string[] = [];
  const bound = Math.min(row.ceiling.requestsPerSecond, row.floor.requestsPerSecond);
  if (row.ours.requestsPerSecond < TARGETS.minRatio * bound) misses.push('ratio');
  if (
    row.scenario.startsWith('get one') &&
    row.ours.requestsPerSecond < TARGETS.getOneFloorRatio * row.floor.requestsPerSecond
  ) {
    misses.push('floor');
  }
  if (row.ours.p99Ms >= TARGETS.maxP99Ms) misses.push('p99');
  if (row.oursPeakMiB !== undefined && row.oursPeakMiB >= TARGETS.maxRssMiB) misses.push('RSS');
  return misses.length === 0 ? 'ok' : `MISS ${misses.join('+')}`;
}

/** A plain-text table: the first column left-aligned, the others right-aligned. */
export function alignedTable(lines: string[][]): string {
  const widths = lines[0].map((_, i) => Math.max(...lines.map((line) => line[i].length)));
  const format = (line: string[]) =>
    line.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [format(lines[0]), rule, ...lines.slice(1).map(format)].join('\n');
}

export function table(rows: Row[]): string {
  const auth = rows.some((row) => row.keyed);
  const header = [
    'scenario',
    'ours req/s',
    'p50',
    'p99',
    'ceiling req/s',
    'p99',
    'floor req/s',
    'p99',
    'ours/ceiling',
    'ours/floor',
    'ours peak RSS',
    ...(auth ? ['api-key req/s', 'p99', 'key cost'] : []),
    'target',
  ];
  const lines = rows.map((row) => {
    const { ours, ceiling, floor, keyed } = row;
    const keyCost = keyed
      ? `${((1 / keyed.requestsPerSecond - 1 / ours.requestsPerSecond) * 1e6).toFixed(0)} µs/req`
      : '';
    return [
      row.scenario,
      rps(ours),
      `${ours.p50Ms} ms`,
      `${ours.p99Ms} ms`,
      rps(ceiling),
      `${ceiling.p99Ms} ms`,
      rps(floor),
      `${floor.p99Ms} ms`,
      ratio(ours, ceiling),
      ratio(ours, floor),
      formatMiB(row.oursPeakMiB),
      ...(keyed ? [rps(keyed), `${keyed.p99Ms} ms`, keyCost] : auth ? ['', '', ''] : []),
      verdict(row),
    ];
  });
  return alignedTable([header, ...lines]);
}

export function targetNote(): string {
  return (
    `target: ours ≥ ${TARGETS.minRatio}× min(ceiling, floor); get one session ≥ ${TARGETS.getOneFloorRatio}× floor; ` +
    `p99 < ${TARGETS.maxP99Ms} ms; peak RSS < ${TARGETS.maxRssMiB} MiB (32 connections, SQLite)`
  );
}
