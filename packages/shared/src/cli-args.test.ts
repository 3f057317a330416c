import { describe, expect, test } from 'vitest';
import { ErrorCode } from './errors.js';
import { flagOptions, numberFlag, parseFlags } from './cli-args.js';
import { expectFtlError } from '../test-support/expect-ftl-error.js';

const str = { type: 'string' } as const;

describe('parseFlags', () => {
  test.each([
    [['--rounds', '-1'], '-1'],
    [['--rounds', '-0.5'], '-0.5'],
    [['--rounds', '-.5'], '-.5'],
    [['--rounds', '-Infinity'], '-Infinity'],
    [['--rounds=-3'], '-3'],
  ])('a negative number after a value flag is its value: %j', (argv, value) => {
    expect(parseFlags(argv, { rounds: str })['rounds']).toBe(value);
  });

  test('the validator then says what is wrong with the negative value', () => {
    const flags = parseFlags(['--rounds', '-1'], { rounds: str });
    expectFtlError(
      () => numberFlag(flags, 'rounds', { default: 5, min: 1, integer: true }),
      'INVALID_CONFIG',
      /^--rounds must be an integer ≥ 1 \(got "-1"\)$/,
    );
  });

  test('a flag after a value flag is still a missing value, not the value', () => {
    expectFtlError(() => parseFlags(['--rounds', '--db', 'x'], { rounds: str, db: str }), 'INVALID_CONFIG', /argument is ambiguous.*Run with --help/);
  });

  test('a negative number after a boolean flag is not taken as its value', () => {
    expectFtlError(() => parseFlags(['--watch', '-1'], { watch: { type: 'boolean' } }), 'INVALID_CONFIG', /Unknown option '-1'/);
  });

  test('positionals come back apart, in order, when asked for', () => {
    expect(parseFlags(['add', '--db', 'c.db', 'site-a', '--save', 't'], { db: str, save: str }, { positionals: true })).toEqual({
      values: { db: 'c.db', save: 't' },
      positionals: ['add', 'site-a'],
    });
  });

  test('positionals are refused unless asked for', () => {
    expectFtlError(() => parseFlags(['add'], { db: str }), 'INVALID_CONFIG', /Unexpected argument 'add'/);
  });
});

describe('numberFlag', () => {
  test('a minimum of Number.MIN_VALUE reads "> 0" in the message', () => {
    expectFtlError(
      () => numberFlag({ lr: '-0.1' }, 'lr', { default: 1, min: Number.MIN_VALUE }),
      'INVALID_CONFIG',
      /^--lr must be a number > 0 \(got "-0.1"\)$/,
    );
  });
});

describe('flagOptions', () => {
  test('names become value flags and switches that parseFlags reads as such', () => {
    const options = flagOptions(['rounds', 'out'], ['quick']);
    expect(options).toEqual({ rounds: { type: 'string' }, out: { type: 'string' }, quick: { type: 'boolean' } });
    expect(parseFlags(['--rounds', '3', '--quick'], options)).toEqual({ rounds: '3', quick: true });
    expectFtlError(() => parseFlags(['--quick', 'yes', '--nope'], options), ErrorCode.InvalidConfig, /nope|yes/);
  });
});
