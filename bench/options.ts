/**
 * The one option parser of the bench scripts: `--name value` or `--name=value`, falling back to an
 * environment variable. Unknown flags are refused, so a typo does not silently run the defaults.
 */
export class Options {
  private readonly known = new Set<string>();

  constructor(private readonly argv: string[] = process.argv.slice(2)) {}

  text(flag: string, env: string): string | undefined {
    this.known.add(flag);
    const i = this.argv.findIndex((a) => a === flag || a.startsWith(`${flag}=`));
    if (i >= 0) {
      const value = this.argv[i].includes('=')
        ? this.argv[i].slice(flag.length + 1)
        : this.argv[i + 1];
      if (value === undefined || value.startsWith('--')) throw new Error(`${flag} needs a value`);
      return value;
    }
    return process.env[env] || undefined;
  }

  /** An integer of at least `min`; `_` and `,` may group digits (1_000_000). */
  integer(flag: string, env: string, fallback: number, min = 0): number {
    const text = this.text(flag, env);
    if (text === undefined) return fallback;
    const value = Number(text.replace(/[_,]/g, ''));
    if (!/^[\d_,]+$/.test(text) || !Number.isSafeInteger(value) || value < min) {
      throw new Error(`${flag} / ${env} must be an integer >= ${min} (got '${text}')`);
    }
    return value;
  }

  /** A switch without a value (`--auth`), or its environment variable set to 1 or true. */
  flag(flag: string, env: string): boolean {
    this.known.add(flag);
    if (this.argv.includes(flag)) return true;
    return ['1', 'true'].includes((process.env[env] ?? '').toLowerCase());
  }

  /** Call after reading every option. */
  rejectUnknown(): void {
    const unknown = this.argv.filter((a) => a.startsWith('--') && !this.known.has(a.split('=')[0]));
    if (unknown.length > 0) {
      throw new Error(`unknown option ${unknown.join(', ')}; known: ${[...this.known].join(', ')}`);
    }
  }
}
