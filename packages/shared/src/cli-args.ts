import { parseArgs } from 'node:util';
import { ErrorCode, FtlError } from './errors.js';

/** Raw flag values as `node:util` parseArgs returns them. */
export type RawFlags = Record<string, string | boolean | (string | boolean)[] | undefined>;

function raw(flags: RawFlags, name: string): string | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new FtlError(ErrorCode.InvalidConfig, `--${name} needs a value`);
  return v;
}

/**
 * Reads a numeric flag, checking it is finite, within [min, max] and (when `integer`) whole.
 *
 * @example
 * numberFlag(flags, 'rounds', { default: 5, min: 1, integer: true }); // "--rounds must be an integer ≥ 1 (got -1)"
 */
export function numberFlag(flags: RawFlags, name: string, o: { default: number; min?: number; max?: number; integer?: boolean }): number {
  const text = raw(flags, name);
  if (text === undefined) return o.default;
  const v = Number(text);
  const bad =
    text.trim() === '' ||
    !Number.isFinite(v) ||
    (o.integer && !Number.isInteger(v)) ||
    (o.min !== undefined && v < o.min) ||
    (o.max !== undefined && v > o.max);
  if (bad) {
    // Number.MIN_VALUE as the minimum means "above zero"; 5e-324 in a message would only puzzle.
    const low = o.min === Number.MIN_VALUE ? '> 0' : o.min !== undefined ? `≥ ${o.min}` : '';
    const range = [low, o.max !== undefined ? `≤ ${o.max}` : ''].filter(Boolean).join(' and ');
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `--${name} must be ${o.integer ? 'an integer' : 'a number'}${range ? ` ${range}` : ''} (got "${text}")`,
    );
  }
  return v;
}

/** Reads a string flag with a default. */
export function stringFlag(flags: RawFlags, name: string, fallback: string): string;
export function stringFlag(flags: RawFlags, name: string, fallback?: string): string | undefined;
export function stringFlag(flags: RawFlags, name: string, fallback?: string): string | undefined {
  return raw(flags, name) ?? fallback;
}

/** `text` on one line: a message printed to a terminal must not span lines or carry control characters. */
function oneLine(text: string): string {
  return text
    .replace(/\s*[\r\n]+\s*/g, ' ')
    .replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '?')
    .trim();
}

/**
 * Runs a CLI's main function and exits: 0 when it resolves; 1 with one line on stderr when it throws,
 * `error [CODE]: message` for an FtlError and `error: message` for anything else. A stack is printed
 * only with `FTL_LOG=debug`: a user acts on the message, a developer asks for the stack.
 */
export function runMain(main: () => Promise<void>): void {
  // If the event loop empties while main is still pending, a promise was never settled: that is a bug,
  // and it must not look like success.
  const pending = () => {
    process.stderr.write('error: the program stopped before finishing (an awaited event never came)\n');
    process.exit(1);
  };
  process.once('beforeExit', pending);
  main()
    .finally(() => process.off('beforeExit', pending))
    .then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`${errorLine(err)}\n`);
        if (process.env['FTL_LOG'] === 'debug' && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
        process.exit(1);
      },
    );
}

/**
 * Runs a program as runMain does, its command line (`o.argv`, by default the process's) parsed by
 * `o.flags` plus `--help`. With --help it prints `o.help` and runs nothing; so it does when `main`
 * returns 'help', for a program that was not told what to do.
 *
 * @example
 * runProgram({ help: HELP, flags: { rounds: { type: 'string' } } }, async (flags) => {
 *   const rounds = numberFlag(flags, 'rounds', { default: 5, min: 1, integer: true });
 * });
 */
export function runProgram(
  o: { help: string; flags: FlagOptions; argv?: string[] },
  main: (flags: RawFlags) => Promise<void> | Promise<'help' | undefined>,
): void {
  runMain(async () => {
    const values = parseFlags(o.argv ?? process.argv.slice(2), { ...o.flags, help: { type: 'boolean' } });
    if (values['help'] || (await main(values)) === 'help') process.stdout.write(`${o.help}\n`);
  });
}

/**
 * The one line a program prints for an error that ends it: `error [CODE]: message` for an FtlError,
 * `error: message (an unexpected error; FTL_LOG=debug shows where)` for anything else.
 */
function errorLine(err: unknown): string {
  if (err instanceof FtlError) return `error [${err.code}]: ${oneLine(err.message)}`;
  const message = err instanceof Error ? `${err.name !== 'Error' ? `${err.name}: ` : ''}${err.message}` : String(err);
  return `error: ${oneLine(message)} (an unexpected error; run with FTL_LOG=debug to see where it came from)`;
}

/** Option declarations as `node:util` parseArgs takes them: every ftl flag is a string or a boolean. */
export type FlagOptions = Record<string, { type: 'string' | 'boolean' }>;

/**
 * A program's flag declarations from their names: each of `values` takes a value, each of `switches` is
 * on or off.
 *
 * @example
 * parseFlags(argv, flagOptions(['rounds', 'lr'], ['quick', 'help']));
 */
export function flagOptions(values: readonly string[], switches: readonly string[] = []): FlagOptions {
  return Object.fromEntries([...values.map((n) => [n, { type: 'string' as const }]), ...switches.map((n) => [n, { type: 'boolean' as const }])]);
}

/** A value that starts with "-" but is a number, such as -1 or -0.5: a value, never a flag (ftl has no short flags). */
const NEGATIVE_NUMBER = /^-(?:\d|\.\d|Infinity$)/;

/**
 * Joins `--name -1` into `--name=-1` for string flags: parseArgs takes a value starting with "-" for a
 * mistyped option and calls it ambiguous, so the validator that would say what is wrong never saw it.
 */
function attachNegativeValues(argv: string[], options: FlagOptions): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    if (a.startsWith('--') && !a.includes('=') && options[a.slice(2)]?.type === 'string' && next !== undefined && NEGATIVE_NUMBER.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/**
 * Parses command-line flags with `node:util` parseArgs, turning its errors (unknown flag, missing value)
 * into FtlError(INVALID_CONFIG) that point at `--help`. A negative number after a string flag is its
 * value (`--rounds -1` reaches the validator). With `{ positionals: true }` words that are not flags or
 * their values are allowed and returned apart, in order.
 *
 * @example
 * const { values, positionals } = parseFlags(['add', 'site-a', '--db', 'c.db'], { db: { type: 'string' } }, { positionals: true });
 * // positionals: ['add', 'site-a'], values: { db: 'c.db' }
 */
export function parseFlags(argv: string[], options: FlagOptions): RawFlags;
export function parseFlags(argv: string[], options: FlagOptions, o: { positionals: true }): { values: RawFlags; positionals: string[] };
export function parseFlags(argv: string[], options: FlagOptions, o?: { positionals: true }): RawFlags | { values: RawFlags; positionals: string[] } {
  try {
    const parsed = parseArgs({ args: attachNegativeValues(argv, options), options, strict: true, allowPositionals: o?.positionals === true });
    return o?.positionals ? { values: parsed.values as RawFlags, positionals: parsed.positionals } : (parsed.values as RawFlags);
  } catch (err) {
    // parseArgs adds advice on positionals and `--name=value` that does not apply to ftl's programs.
    const first = (err as Error).message.split('\n')[0]?.split(/\.\s/)[0];
    throw new FtlError(ErrorCode.InvalidConfig, `${first?.replace(/\.?$/, '.')} Run with --help for the options.`, { cause: err });
  }
}
