import { describe, expect, expectTypeOf, test } from 'vitest';
import { VALIDATORS, validMessages } from '../../test-support/fuzz-support.js';
import { ErrorCode, FtlError } from '../errors.js';
import { expectFtlError, thrownBy } from '../../test-support/expect-ftl-error.js';
import {
  CLIENT_TO_SERVER_SCHEMAS,
  PROTOCOL_SCHEMAS,
  SERVER_TO_CLIENT_SCHEMAS,
  type ClientToServerEvents,
  type ServerToClientEvents,
} from './events.js';
import { PROTOCOL_VERSION } from './messages.js';
import { parseAck, parseFitResult, parseReady, rejectionFor } from './parse.js';

const validators = VALIDATORS;
const messages = validMessages();
const names = Object.keys(PROTOCOL_SCHEMAS) as Array<keyof typeof PROTOCOL_SCHEMAS>;

describe('one schema per message', () => {
  test('every event of the socket.io event maps has a schema, and no schema is for an event the maps lack', () => {
    expectTypeOf<keyof typeof SERVER_TO_CLIENT_SCHEMAS>().toEqualTypeOf<keyof ServerToClientEvents>();
    expectTypeOf<keyof typeof CLIENT_TO_SERVER_SCHEMAS>().toEqualTypeOf<keyof ClientToServerEvents>();
    expect(Object.keys(SERVER_TO_CLIENT_SCHEMAS).sort()).toEqual([
      'class-sums',
      'evaluate',
      'fit',
      'goodbye',
      'personalize',
      'run-end',
      'secagg-delivery',
      'secagg-directory',
      'secagg-unmask',
      'table-encoding',
      'welcome',
    ]);
    expect(Object.keys(CLIENT_TO_SERVER_SCHEMAS).sort()).toEqual([
      'class-sums-result',
      'evaluate-result',
      'failure',
      'fit-result',
      'personalize-result',
      'ready',
      'secagg-advertise',
      'secagg-masked-input',
      'secagg-shares',
      'secagg-unmask-shares',
    ]);
  });

  test('the fuzz seeds cover every schema: one valid message per event, the handshake and the acknowledgement', () => {
    expect(Object.keys(messages).sort()).toEqual([...names].sort());
  });

  test.each(names)('%s: the schema and its validator accept the valid message and return it field for field, as a copy', (name) => {
    const input = messages[name];
    for (const parsed of [PROTOCOL_SCHEMAS[name].parse(input), validators[name](input)]) {
      expect(parsed).toStrictEqual(input);
      expect(parsed).not.toBe(input);
    }
  });

  test.each(names)('%s: unknown fields are dropped, at the top and inside', (name) => {
    const withExtras = JSON.parse(JSON.stringify(messages[name], (_, v) => (v instanceof Uint8Array ? undefined : v))) as Record<string, unknown>;
    // The JSON round trip drops binary data: put it back, then add an unknown field to every object.
    const restore = (copy: any, original: any): void => {
      for (const [k, v] of Object.entries(original)) {
        if (v instanceof Uint8Array) copy[k] = v;
        else if (typeof v === 'object' && v !== null) restore(copy[k], v);
      }
      if (!Array.isArray(copy)) copy.unknownField = 'x';
    };
    restore(withExtras, messages[name]);
    expect(validators[name](withExtras)).toStrictEqual(messages[name]);
  });
});

/** Every path to a value that is not an object or array in `v`, e.g. `['weights', 'specs', 0, 'shape', 1]`. */
function leafPaths(v: unknown, at: Array<string | number> = []): Array<Array<string | number>> {
  if (typeof v !== 'object' || v === null || v instanceof Uint8Array) return [at];
  const entries: Array<[string | number, unknown]> = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
  return entries.length === 0 ? [at] : entries.flatMap(([k, x]) => leafPaths(x, [...at, k]));
}

function withValueAt(v: unknown, path: Array<string | number>, value: unknown): unknown {
  if (path.length === 0) return value;
  const copy: any = Array.isArray(v) ? [...v] : { ...(v as object) };
  const [key, ...rest] = path;
  copy[key!] = withValueAt(copy[key!], rest, value);
  return copy;
}

describe('refusals name the field, what it must be and what it was', () => {
  const hostile: unknown[] = [undefined, null, 'x', '', -1, 1.5, NaN, Infinity, 2 ** 53, [], {}, [1], new Uint8Array(3), true];

  test.each(names)("%s: any field replaced by a wrong value is refused in the project's words, never in zod's", (name) => {
    let refusals = 0;
    for (const path of leafPaths(messages[name])) {
      for (const value of hostile) {
        let err: unknown;
        try {
          validators[name](withValueAt(messages[name], path, value));
        } catch (e) {
          err = e;
        }
        if (err === undefined) continue;
        refusals++;
        expect(err).toBeInstanceOf(FtlError);
        const message = (err as FtlError).message;
        expect(message).toMatch(new RegExp(`^${name}[.\\[\\s]`));
        expect(message).toMatch(/ must be .+ \(got .+\)| is .+ but this side speaks protocol | add up to | are inconsistent: /);
        expect(message).not.toMatch(/Invalid input|Too (big|small)|received|expected/i);
        expect(message).not.toMatch(/[\n\r]/);
      }
    }
    expect(refusals).toBeGreaterThan(0);
  });

  test('an adapter turns each issue into the FtlError the boundary always gave: code, reason and one line', () => {
    const fit = messages['fit-result']!;
    expect(rejectionFor(thrownBy(() => parseFitResult({ ...fit, round: 1.5 })))).toEqual({
      accepted: false,
      reason: 'malformed',
      message: 'fit-result.round must be an integer ≥ 0 (got number 1.5)',
    });
    expect(rejectionFor(thrownBy(() => parseFitResult({ ...fit, numExamples: -3 })))).toEqual({
      accepted: false,
      reason: 'bad-sample-count',
      message: 'fit-result.numExamples must be a positive integer (got number -3); report the number of samples used',
    });
    expect(rejectionFor(thrownBy(() => parseFitResult({ ...fit, protocol: 2 })))).toEqual({
      accepted: false,
      reason: 'protocol-mismatch',
      message: `fit-result.protocol is number 2 but this side speaks protocol ${PROTOCOL_VERSION}; run the same ftl version on both sides`,
    });
    expect(rejectionFor(thrownBy(() => parseFitResult(new Uint8Array(4))))).toMatchObject({
      reason: 'malformed',
      message: 'fit-result must be an object (got 4 bytes)',
    });
    expect(rejectionFor(thrownBy(() => parseAck({ accepted: 'yes' })))).toMatchObject({ message: 'ack.accepted must be a boolean (got "yes")' });
    expect(rejectionFor(thrownBy(() => parseAck([])))).toMatchObject({ message: 'ack must be an object (got an array of 0)' });
  });
});

describe('weights at the boundary', () => {
  const fit = messages['fit-result']!;
  const weights = fit['weights'] as { specs: unknown[]; data: Uint8Array };

  test('data of another length than its specs describe is wrong-shape, checked by length alone', () => {
    const short = { ...fit, weights: { ...weights, data: weights.data.subarray(4) } };
    expect(rejectionFor(thrownBy(() => parseFitResult(short)))).toEqual({
      accepted: false,
      reason: 'wrong-shape',
      message: `fit-result.weights.data must be ${weights.data.byteLength} bytes, 4 per float32 value its specs describe (got ${weights.data.byteLength - 4} bytes)`,
    });
  });

  test('a Buffer is binary data too, and travels as it came, not copied', () => {
    const data = Buffer.from(weights.data);
    const parsed = parseFitResult({ ...fit, weights: { ...weights, data } });
    expect(parsed.weights.data).toBe(data);
  });
});

test('validation stops at the first problem: the items after a wrong one are never read', () => {
  const labels: unknown[] = [3];
  let reads = 0;
  for (let i = 1; i < 1000; i++) {
    Object.defineProperty(labels, i, {
      enumerable: true,
      get: () => {
        reads++;
        return 'label';
      },
    });
  }
  expectFtlError(() => parseReady({ ...messages['ready'], labels }), ErrorCode.InvalidMessage, /^ready.labels\[0\] must be a non-empty string/);
  expect(reads).toBe(0);
});
