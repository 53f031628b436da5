/**
 * Command-line options of the bench scripts that take their own (seed:large, bench:large, soak):
 * `--name value` or `--name=value`, falling back to an environment variable. Unknown flags are
 * refused, so a typo does not silently run the defaults.
 */
export class Args {
  private readonly known = new Set<string>();

  constructor(private readonly argv: string[] = process.argv.slice(2)) {}

  text(flag: string, env: string): string | undefined {
    this.known.add(flag);
    const i = this.argv.findIndex((a) => a === flag || a.startsWith(`${flag}=`));
    if (i >= 0)
      return this.argv[i].includes('=') ? this.argv[i].slice(flag.length + 1) : this.argv[i + 1];
    return process.env[env] || undefined;
  }

  /** A non-negative integer; `_` and `,` may group digits (1_000_000). */
  integer(flag: string, env: string, fallback: number, min = 0): number {
    const text = this.text(flag, env);
    if (text === undefined) return fallback;
    const value = Number(text.replace(/[_,]/g, ''));
    if (!Number.isSafeInteger(value) || value < min) {
      throw new Error(`${flag} / ${env} must be an integer >= ${min} (got '${text}')`);
    }
    return value;
  }

  /** Call after reading every option. */
  rejectUnknown(): void {
    const unknown = this.argv.filter((a) => a.startsWith('--') && !this.known.has(a.split('=')[0]));
    if (unknown.length > 0) {
      throw new Error(`unknown option ${unknown.join(', ')}; known: ${[...this.known].join(', ')}`);
    }
  }
}
