export interface BenchConfig {
  connections: number;
  /** Seconds of each measured round. */
  duration: number;
  /** Seconds of the warm-up round before each measured round. */
  warmup: number;
  /** Server processes of our service; more than 1 needs a cluster entry point. */
  processes: number;
  /** DATABASE_URL for our server; undefined means a fresh SQLite file in a temporary directory. */
  databaseUrl: string | undefined;
}

interface Setting {
  env: string;
  flag: string;
}

const SETTINGS = {
  connections: { env: 'BENCH_CONNECTIONS', flag: '--connections' },
  duration: { env: 'BENCH_DURATION', flag: '--duration' },
  warmup: { env: 'BENCH_WARMUP', flag: '--warmup' },
  processes: { env: 'BENCH_PROCESSES', flag: '--processes' },
  databaseUrl: { env: 'BENCH_DATABASE_URL', flag: '--database-url' },
} satisfies Record<keyof BenchConfig, Setting>;

const DEFAULTS = { connections: 32, duration: 5, warmup: 2, processes: 1 };

/** A command-line flag (`--name=value` or `--name value`) wins over its environment variable. */
function raw(setting: Setting, argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith(`${setting.flag}=`)) return argv[i].slice(setting.flag.length + 1);
    if (argv[i] === setting.flag) return argv[i + 1];
  }
  const value = process.env[setting.env];
  return value === '' ? undefined : value;
}

function integer(setting: Setting, argv: string[], fallback: number, min = 1): number {
  const value = raw(setting, argv);
  if (value === undefined) return fallback;
  if (!/^\d{1,6}$/.test(value) || Number(value) < min) {
    throw new Error(
      `${setting.env} / ${setting.flag} must be an integer >= ${min} (got '${value}')`,
    );
  }
  return Number(value);
}

function checkUnknownFlags(argv: string[]): void {
  const known = new Set<string>(Object.values(SETTINGS).map((s) => s.flag));
  const unknown = argv.filter((a) => a.startsWith('--') && !known.has(a.split('=')[0]));
  if (unknown.length > 0) {
    throw new Error(`unknown option ${unknown.join(', ')}; known: ${[...known].join(', ')}`);
  }
}

export function readConfig(argv: string[] = process.argv.slice(2)): BenchConfig {
  checkUnknownFlags(argv);
  return {
    connections: integer(SETTINGS.connections, argv, DEFAULTS.connections),
    duration: integer(SETTINGS.duration, argv, DEFAULTS.duration),
    warmup: integer(SETTINGS.warmup, argv, DEFAULTS.warmup, 0),
    processes: integer(SETTINGS.processes, argv, DEFAULTS.processes),
    databaseUrl: raw(SETTINGS.databaseUrl, argv),
  };
}
