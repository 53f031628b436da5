import { cpus, totalmem } from 'node:os';
import type { BenchConfig } from './config';
import type { Measurement } from './load';

/** The targets, at the default 32 connections. */
export const TARGET_MIN_RATIO = 0.5;
export const TARGET_MAX_P99_MS = 25;

export interface Row {
  scenario: string;
  ours: Measurement;
  baseline: Measurement;
}

export function machineInfo(config: BenchConfig, ourDatabase: string): string {
  const cpuList = cpus();
  return [
    `node ${process.version} on ${process.platform} ${process.arch}`,
    `cpu: ${cpuList[0]?.model ?? 'unknown'}, ${cpuList.length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM`,
    `load: ${config.connections} connections, ${config.warmup} s warm-up + ${config.duration} s measured per round`,
    `our server: ${config.processes} process(es), ${ourDatabase}; baseline: node:http + better-sqlite3 on SQLite`,
    'Absolute numbers vary a lot on shared cores; compare the ratios within one run.',
  ].join('\n');
}

function verdict(row: Row): string {
  const misses: string[] = [];
  if (row.ours.requestsPerSecond < TARGET_MIN_RATIO * row.baseline.requestsPerSecond) {
    misses.push('ratio');
  }
  if (row.ours.p99Ms >= TARGET_MAX_P99_MS) misses.push('p99');
  return misses.length === 0 ? 'ok' : `MISS ${misses.join('+')}`;
}

function cells(row: Row): string[] {
  const { ours, baseline } = row;
  const ratio = ours.requestsPerSecond / baseline.requestsPerSecond;
  return [
    row.scenario,
    ours.requestsPerSecond.toFixed(0),
    `${ours.p50Ms} ms`,
    `${ours.p99Ms} ms`,
    baseline.requestsPerSecond.toFixed(0),
    `${baseline.p50Ms} ms`,
    `${baseline.p99Ms} ms`,
    `${ratio.toFixed(2)}×`,
    verdict(row),
  ];
}

const HEADER = [
  'scenario',
  'ours req/s',
  'p50',
  'p99',
  'base req/s',
  'p50',
  'p99',
  'ours/base',
  'target',
];

/** A plain-text table: the first column left-aligned, numbers right-aligned. */
export function table(rows: Row[]): string {
  const lines = [HEADER, ...rows.map(cells)];
  const widths = HEADER.map((_, i) => Math.max(...lines.map((line) => line[i].length)));
  const format = (line: string[]) =>
    line.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [format(HEADER), rule, ...lines.slice(1).map(format)].join('\n');
}

export function targetNote(): string {
  return `target: ours/base >= ${TARGET_MIN_RATIO} and our p99 < ${TARGET_MAX_P99_MS} ms (at 32 connections)`;
}

export function formatMiB(mib: number | undefined): string {
  return mib === undefined ? 'n/a (no /proc)' : `${mib.toFixed(1)} MiB`;
}
