import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { corpusFiles, guardHostileSuite, HOSTILE_ANYTHING, onlyFtlError, VALIDATORS, validMessages } from '../../test-support/fuzz-support.js';
import { createMsgpackParser } from '../codec/socketio-parser.js';
import { decodeWeights } from '../codec/weights.js';
import { REJECT_REASONS } from './messages.js';
import { checkSiteName, parseClassSumsResult, parseEncodedWeights, rejectionFor } from './parse.js';
import { statsInconsistency } from './stats-consistency.js';

const validators: Record<string, (v: unknown) => unknown> = VALIDATORS;
const events = Object.keys(validators);

/**
 * Validates `v` as `event`: only FtlError may be thrown, a refusal maps to a reject reason of the
 * protocol, and what is accepted keeps the ranges the protocol promises (weights whose specs match
 * their bytes decode, or fail with FtlError too).
 */
function validate(event: string, v: unknown): unknown {
  let out: unknown;
  const err = onlyFtlError(() => (out = validators[event]!(v)));
  if (err) {
    expect(REJECT_REASONS).toContain(rejectionFor(err).reason);
    return undefined;
  }
  expectPromisedRanges(out as Record<string, any>);
  return out;
}

function expectPromisedRanges(m: Record<string, any>): void {
  for (const n of [m['numExamples'], m['numTrain']]) if (n !== undefined) expect(Number.isSafeInteger(n) && n >= 1).toBe(true);
  if (m['counts'] !== undefined) {
    expect((m['counts'] as number[]).every((c) => Number.isSafeInteger(c) && c >= 0)).toBe(true);
    expect((m['counts'] as number[]).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(1);
    expect(m['sums'].specs).toHaveLength(1);
    onlyFtlError(() => decodeWeights(m['sums']));
  }
  for (const k of ['loss', 'globalLoss', 'personalLoss']) if (m[k] !== undefined) expect(m[k] >= 0 && Number.isFinite(m[k])).toBe(true);
  for (const k of ['accuracy', 'globalAccuracy', 'personalAccuracy']) if (m[k] !== undefined) expect(m[k] >= 0 && m[k] <= 1).toBe(true);
  if (m['metrics']) expectPromisedRanges(m['metrics']);
  if (m['stats']) expect(statsInconsistency(m['stats'])).toBeUndefined();
  if (m['name'] !== undefined) expect(checkSiteName(m['name'])).toBe(m['name']);
  if (m['reason'] !== undefined && m['accepted'] === false) expect(REJECT_REASONS).toContain(m['reason']);
  if (m['weights']) onlyFtlError(() => decodeWeights(m['weights']));
}

// Values a hostile peer puts where a field should be.
const hostileValue = fc.oneof(
  fc.constantFrom<unknown>(
    NaN,
    Infinity,
    -Infinity,
    -1,
    0,
    -0,
    0.5,
    1.5,
    7,
    -3,
    2 ** 53,
    -(2 ** 53),
    1e300,
    -1e300,
    Number.MIN_VALUE,
    '',
    ' ',
    '.',
    '..',
    '__proto__',
    'constructor',
    'prototype',
    'x'.repeat(5000),
    '\u001b[2J',
    '\nftl coordinator info forged',
    null,
    undefined,
    true,
    [],
    {},
    [[]],
    [-1],
    [1e9, 1e9, 1e9],
    [0.5],
    ['a'],
    'float16',
    'float32',
    'int32',
    new Uint8Array(3),
    new Uint8Array(0),
    JSON.parse('{"__proto__": {"polluted": true}}'),
    { constructor: { prototype: { polluted: true } } },
    { length: 1e9 },
  ),
  fc.double(),
  fc.integer(),
  fc.string({ maxLength: 40 }),
  fc.array(fc.double(), { maxLength: 8 }),
  fc.uint8Array({ maxLength: 40 }),
);

/** A copy of `v` with the value at one path replaced (or the key removed, or a key added). */
function mutate(v: unknown, choices: number[], value: unknown, how: 'set' | 'delete' | 'add'): unknown {
  if (typeof v !== 'object' || v === null || v instanceof Uint8Array) return value;
  const copy: any = Array.isArray(v) ? [...v] : { ...v };
  const keys = Object.keys(copy);
  const [c, ...rest] = choices;
  if (keys.length === 0 || c === undefined) {
    if (how === 'add') copy[['__proto__', 'constructor', 'extra', '0'][(c ?? 0) % 4]!] = value;
    return copy;
  }
  const key = keys[c % keys.length]!;
  if (rest.length === 0 || typeof copy[key] !== 'object' || copy[key] === null) {
    if (how === 'delete') delete copy[key];
    else copy[key] = value;
    return copy;
  }
  copy[key] = mutate(copy[key], rest, value, how);
  return copy;
}

const messages = validMessages();
guardHostileSuite();

describe('every inbound validator under hostile input', () => {
  test.each(events)('the valid %s seed is accepted', (event) => {
    expect(validate(event, messages[event])).toBeDefined();
  });

  test('the committed corpus: each event decodes, and its validator refuses the payload with FtlError', () => {
    const { Decoder } = createMsgpackParser();
    const corpus = corpusFiles('event-');
    expect(corpus.length).toBeGreaterThanOrEqual(20);
    for (const [name, frame] of corpus) {
      const dec = new Decoder() as { add(c: unknown): void; on(e: 'decoded', f: (p: any) => void): void };
      let packet: any;
      dec.on('decoded', (p) => (packet = p));
      dec.add(frame);
      const [event, payload] = packet.data as [string, unknown];
      expect(events, name).toContain(event);
      expect(validate(event, payload), name).toBeUndefined();
    }
  });

  test('anything at all: only FtlError', () => {
    const anything = fc.anything({ ...HOSTILE_ANYTHING, withBoxedValues: true });
    fc.assert(
      fc.property(fc.constantFrom(...events), anything, (event, v) => void validate(event, v)),
      { numRuns: 4000 },
    );
  });

  test('valid messages with one field replaced, removed or added: only FtlError, and what passes is in range', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...events),
        fc.array(fc.nat(), { minLength: 1, maxLength: 5 }),
        hostileValue,
        fc.constantFrom('set', 'delete', 'add') as fc.Arbitrary<'set' | 'delete' | 'add'>,
        (event, path, value, how) => void validate(event, mutate(messages[event], path, value, how)),
      ),
      { numRuns: 8000 },
    );
  });

  test('valid messages with several fields replaced at once: only FtlError', () => {
    const edit = fc.tuple(fc.array(fc.nat(), { minLength: 1, maxLength: 5 }), hostileValue);
    fc.assert(
      fc.property(fc.constantFrom(...events), fc.array(edit, { minLength: 2, maxLength: 6 }), (event, edits) => {
        let m: unknown = messages[event];
        for (const [path, value] of edits) m = mutate(m, path, value, 'set');
        validate(event, m);
      }),
      { numRuns: 4000 },
    );
  });

  test('sample counts: negative, zero, fractional, enormous or not finite are bad-sample-count; positive integers pass', () => {
    const count = fc.oneof(fc.double(), fc.integer({ min: -1e6, max: 1e6 }), fc.constantFrom(0, -0, 2 ** 53, 1e300, NaN, Infinity, -Infinity, 0.5));
    fc.assert(
      fc.property(fc.constantFrom('fit-result', 'evaluate-result', 'personalize-result'), count, (event, n) => {
        const out = validate(event, { ...messages[event], numExamples: n });
        if (out === undefined) {
          let reason: string | undefined;
          try {
            validators[event]!({ ...messages[event], numExamples: n });
          } catch (err) {
            reason = rejectionFor(err).reason;
          }
          expect(reason).toBe('bad-sample-count');
        } else {
          expect(Number.isSafeInteger(n) && n >= 1).toBe(true);
        }
      }),
      { numRuns: 3000 },
    );
  });

  test('class counts: negative, fractional, enormous or not finite are bad-sample-count; non-negative integers pass', () => {
    const count = fc.oneof(fc.double(), fc.integer({ min: -1e6, max: 1e6 }), fc.constantFrom(0, -0, 2 ** 53, 1e300, NaN, Infinity, -Infinity, 0.5));
    fc.assert(
      fc.property(count, count, (a, b) => {
        const m = { ...messages['class-sums-result'], counts: [a, b] };
        if (validate('class-sums-result', m) === undefined) {
          let reason: string | undefined;
          try {
            parseClassSumsResult(m);
          } catch (err) {
            reason = rejectionFor(err).reason;
          }
          expect(reason).toBe('bad-sample-count');
        } else {
          expect([a, b].every((c) => Number.isSafeInteger(c) && c >= 0) && a + b >= 1).toBe(true);
        }
      }),
      { numRuns: 3000 },
    );
  });

  test('weights with wrong dtypes, shapes and byte lengths: only FtlError from the validator and from decoding', () => {
    const spec = fc.record({
      name: fc.oneof(fc.string({ maxLength: 10 }), fc.constant('')),
      shape: fc.array(fc.oneof(fc.integer({ min: -3, max: 70_000 }), fc.constantFrom(1.5, NaN, 2 ** 31, 2 ** 53)), { maxLength: 9 }),
      dtype: fc.constantFrom('float32', 'float16', 'int8', 'float64', 7),
    });
    fc.assert(
      fc.property(fc.array(spec, { maxLength: 5 }), fc.uint8Array({ maxLength: 256 }), (specs, data) => {
        const w = { specs, data };
        let parsed: unknown;
        if (!onlyFtlError(() => (parsed = parseEncodedWeights(w)))) onlyFtlError(() => decodeWeights(parsed as never));
        validate('fit-result', { ...messages['fit-result'], weights: w });
      }),
      { numRuns: 3000 },
    );
  });

  test('ready statistics with random numbers: only FtlError, and what passes is internally consistent', () => {
    const arr = (n: number) => fc.array(fc.oneof(fc.double(), fc.double({ min: -2, max: 2, noNaN: true })), { minLength: n, maxLength: n });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4 }), fc.oneof(fc.integer({ min: -2, max: 50 }), fc.double()), (c, count) =>
        fc.assert(
          fc.property(arr(c), arr(c), arr(c), arr(c), (sum, sumSquares, min, max) => {
            const r = validate('ready', { ...messages['ready'], stats: { count, sum, sumSquares, min, max } });
            if (r) expect(statsInconsistency((r as { stats: never }).stats)).toBeUndefined();
          }),
          { numRuns: 20 },
        ),
      ),
      { numRuns: 100 },
    );
  });

  test('site names: only FtlError, and what passes is a name no path or prototype trick can use', () => {
    const name = fc.oneof(
      fc.string({ maxLength: 140 }),
      fc.stringMatching(/^[._-]{0,3}[A-Za-z0-9._/-]{0,20}$/),
      fc.constantFrom('.', '..', '__proto__', 'constructor', 'prototype'),
    );
    fc.assert(
      fc.property(name, (n) => {
        const err = onlyFtlError(() => checkSiteName(n));
        if (!err) {
          expect(n).toMatch(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/);
          expect(['constructor', 'prototype']).not.toContain(n);
        }
        validate('auth', { ...messages['auth'], name: n });
      }),
      { numRuns: 3000 },
    );
  });
});
