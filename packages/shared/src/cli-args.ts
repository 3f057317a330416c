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
export function numberFlag(
  flags: RawFlags,
  name: string,
  o: { default: number; min?: number; max?: number; integer?: boolean },
): number {
  const text = raw(flags, name);
  if (text === undefined) return o.default;
  const v = Number(text);
  const bad =
    text.trim() === '' || !Number.isFinite(v) || (o.integer && !Number.isInteger(v)) ||
    (o.min !== undefined && v < o.min) || (o.max !== undefined && v > o.max);
  if (bad) {
    const range = [o.min !== undefined ? `≥ ${o.min}` : '', o.max !== undefined ? `≤ ${o.max}` : ''].filter(Boolean).join(' and ');
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `--${name} must be ${o.integer ? 'an integer' : 'a number'}${range ? ' ' + range : ''} (got "${text}")`,
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

/**
 * Runs a CLI's main function: prints an FtlError's message (or a stack for anything else) and exits 1.
 */
export function runMain(main: () => Promise<void>): void {
  // If the event loop empties while main is still pending, a promise was never settled: that is a bug,
  // and it must not look like success.
  const pending = () => {
    process.stderr.write('error: the program stopped before finishing (an awaited event never came)\n');
    process.exit(1);
  };
  process.once('beforeExit', pending);
  main().finally(() => process.off('beforeExit', pending)).then(
    () => process.exit(0),
    (err: unknown) => {
      if (err instanceof FtlError) process.stderr.write(`error [${err.code}]: ${err.message}\n`);
      else process.stderr.write(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}

/** Option declarations as `node:util` parseArgs takes them: every ftl flag is a string or a boolean. */
export type FlagOptions = Record<string, { type: 'string' | 'boolean' }>;

/**
 * Parses command-line flags with `node:util` parseArgs, turning its errors (unknown flag, missing value)
 * into FtlError(INVALID_CONFIG) that point at `--help`.
 */
export function parseFlags(argv: string[], options: FlagOptions): RawFlags {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as RawFlags;
  } catch (err) {
    const first = (err as Error).message.split('\n')[0];
    throw new FtlError(ErrorCode.InvalidConfig, `${first?.replace(/\.?$/, '.')} Run with --help for the options.`, { cause: err });
  }
}
