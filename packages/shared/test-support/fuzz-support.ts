import { readdirSync, readFileSync } from 'node:fs';
import type fc from 'fast-check';
import { afterAll, beforeAll, expect } from 'vitest';
import { FtlError } from '../src/errors.js';
import type { PROTOCOL_SCHEMAS } from '../src/protocol/events.js';
import * as parse from '../src/protocol/parse.js';

// Test support for the fuzz suites and the schema tests of this package.

/** Every inbound validator, by the name its refusals start with (`auth` is the handshake, `ack` the acknowledgement). */
export const VALIDATORS: Record<keyof typeof PROTOCOL_SCHEMAS, (v: unknown) => unknown> = {
  auth: parse.parseHandshakeAuth,
  ready: parse.parseReady,
  'fit-result': parse.parseFitResult,
  'evaluate-result': parse.parseEvaluateResult,
  'personalize-result': parse.parsePersonalizeResult,
  failure: parse.parseClientFailure,
  ack: parse.parseAck,
  welcome: parse.parseWelcome,
  fit: parse.parseFitInstruction,
  evaluate: parse.parseEvaluateInstruction,
  personalize: parse.parsePersonalizeInstruction,
  goodbye: parse.parseGoodbye,
  'run-end': parse.parseRunEnd,
  'class-sums': parse.parseClassSumsInstruction,
  'class-sums-result': parse.parseClassSumsResult,
  'table-encoding': parse.parseTableEncodingMessage,
  'secagg-advertise': (v) => parse.parsePayload('secagg-advertise', v),
  'secagg-directory': (v) => parse.parsePayload('secagg-directory', v),
  'secagg-shares': (v) => parse.parsePayload('secagg-shares', v),
  'secagg-delivery': (v) => parse.parsePayload('secagg-delivery', v),
  'secagg-masked-input': (v) => parse.parsePayload('secagg-masked-input', v),
  'secagg-unmask': (v) => parse.parsePayload('secagg-unmask', v),
  'secagg-unmask-shares': (v) => parse.parsePayload('secagg-unmask-shares', v),
};

/**
 * What `fc.anything` may make for a hostile peer: BigInts, dates, maps, sets, typed arrays, objects
 * without a prototype or named like built-ins, up to 4 deep.
 *
 * @example
 * fc.anything({ ...HOSTILE_ANYTHING, withBoxedValues: true });
 */
export const HOSTILE_ANYTHING: fc.ObjectConstraints = {
  maxDepth: 4,
  withBigInt: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withTypedArray: true,
  withNullPrototype: true,
  withObjectString: true,
};

/** The committed corpus of hostile frames, replayed by every run of the fuzz suites. */
export const FUZZ_CORPUS = new URL('../fuzz-corpus/', import.meta.url);

/** Every corpus file whose name starts with `prefix`, as `[name, bytes]`. */
export function corpusFiles(prefix: string): Array<[string, Uint8Array]> {
  return readdirSync(FUZZ_CORPUS)
    .filter((f) => f.startsWith(prefix) && f.endsWith('.bin'))
    .sort()
    .map((f) => [f, new Uint8Array(readFileSync(new URL(f, FUZZ_CORPUS)))]);
}

/**
 * Runs `fn`; a throw must be a one-line FtlError (anything else, a TypeError or a RangeError from deep
 * inside a decoder, fails the test). Returns the error, or undefined when `fn` accepted its input.
 */
export function onlyFtlError(fn: () => unknown): FtlError | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (!(err instanceof FtlError)) throw new Error(`expected only FtlError, got ${String(err)}`, { cause: err });
    expect(err.message).not.toMatch(/[\n\r]/);
    return err;
  }
}

/** Snapshot of the built-in prototypes a hostile `__proto__` could pollute. */
export function prototypeSnapshot(): string {
  const own = (o: object) => Reflect.ownKeys(o).map(String).sort().join(',');
  return `${[Object.prototype, Array.prototype, Function.prototype, String.prototype, Number.prototype]
    .map(own)
    .join('|')}|${Object.getPrototypeOf(Object.prototype) === null}`;
}

/** RSS growth allowed over a whole fuzz suite: a leak or an amplification shows as far more. */
export const RSS_GROWTH_LIMIT_BYTES = 150 * 1024 * 1024;

/**
 * Registers the checks every fuzz suite ends with: the whole suite, hostile input and all, leaves the
 * built-in prototypes as they were and grows RSS by less than {@link RSS_GROWTH_LIMIT_BYTES}.
 */
export function guardHostileSuite(): void {
  let rssBefore = 0;
  let prototypesBefore = '';
  beforeAll(() => {
    prototypesBefore = prototypeSnapshot();
    rssBefore = process.memoryUsage().rss;
  });
  afterAll(() => {
    expect(prototypeSnapshot()).toBe(prototypesBefore);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(RSS_GROWTH_LIMIT_BYTES);
  });
}

const weights = (n: number) => ({
  specs: [
    { name: 'head_output/kernel', shape: [n, 2], dtype: 'float32' },
    { name: 'head_output/bias', shape: [2], dtype: 'float32' },
  ],
  data: new Uint8Array((n * 2 + 2) * 4),
});
const envelope = { protocol: 1, runId: 'r1', round: 2, modelVersion: 1 };
/** The envelope of the phase before round 1 (class sums for the head). */
const envelope0 = { protocol: 1, runId: 'r1', round: 0, modelVersion: 0 };
const privacy = { noiseMultiplier: 1.1, clipNorm: 1, sampling: 'poisson', delta: 1e-5 };
const config = { epochs: 1, batchSize: 8, learningRate: 0.01, seed: 3, proximalMu: 0.1, backboneLrFactor: 0.5, privacy };
const spent = { epsilon: 1.25, delta: 1e-5, budget: 8 };
const normalization = { kind: 'standard', shift: [0.1, 0.2, 0.3], scale: [0.5, 0.5, 0.5] };

/**
 * One valid message of every kind the protocol has, by event name (`auth` is the handshake), each of
 * which its validator accepts: the seeds the fuzz suites mutate.
 */
export function validMessages(): Record<string, Record<string, unknown>> {
  return {
    auth: { protocol: 1, name: 'site-1', token: 't0ken' },
    ready: {
      protocol: 1,
      runId: 'r1',
      numTrain: 100,
      numVal: 20,
      labels: ['cat', 'dog'],
      stats: { count: 4, sum: [2, 1, 0.4], sumSquares: [1.5, 0.5, 0.1], min: [0, 0, 0], max: [1, 0.5, 0.2] },
    },
    'fit-result': { ...envelope, weights: weights(4), numExamples: 100, metrics: { loss: 0.3, accuracy: 0.9, seconds: 1.5 }, privacy: spent },
    'evaluate-result': { ...envelope, numExamples: 20, loss: 0.4, accuracy: 0.8 },
    'personalize-result': {
      ...envelope,
      numExamples: 20,
      globalLoss: 0.4,
      globalAccuracy: 0.8,
      personalLoss: 0.3,
      personalAccuracy: 0.85,
      privacy: spent,
    },
    failure: {
      ...envelope,
      stage: 'fit',
      message: 'privacy budget: ε would reach 8.31 > budget 8 at δ 1e-5',
      reason: 'privacy-budget',
      privacy: spent,
    },
    ack: { accepted: false, reason: 'stale-round', message: 'update is for round 1 but round 2 is open' },
    welcome: {
      protocol: 1,
      runId: 'r1',
      clientId: 'site-1',
      classes: ['cat', 'dog'],
      localLayers: [],
      backbone: { path: '/backbone', files: ['model.json', 'group1-shard1of1.bin'], sha256: 'a'.repeat(64), featureLayer: 'features' },
      head: { featureDim: 4, hidden: [8], classes: 2, l2: 0.001, dropout: 0.1 },
      augment: { copies: 1, shift: 0.1, flip: true, rotation: 10 },
      normalization: 'standard',
      normalizationScope: 'channel',
      backboneTrainsFromStart: false,
    },
    fit: {
      ...envelope,
      weights: weights(4),
      config,
      normalization,
      secureAggregation: { self: 1, neighbours: [2, 3], threshold: 2, clipRange: 1, scale: 2 ** 20, weight: 100, rounding: 'stochastic' },
    },
    evaluate: { ...envelope, weights: weights(4), normalization },
    personalize: { ...envelope, weights: weights(4), config, normalization },
    goodbye: { protocol: 1, reason: 'revoked', message: 'the operator revoked this site' },
    'run-end': { protocol: 1, runId: 'r1', reason: 'completed', message: 'done' },
    'class-sums': { ...envelope0, normalization: { kind: 'standard', shift: [0.1], scale: [0.5] } },
    'class-sums-result': {
      ...envelope0,
      counts: [3, 0],
      sums: { specs: [{ name: 'class-sums', shape: [2, 4], dtype: 'float32' }], data: new Uint8Array(32) },
    },
    'table-encoding': {
      protocol: 1,
      runId: 'r1',
      encoding: {
        columns: [
          { name: 'age', fill: 52.5, shift: 52.5, scale: 11.2 },
          { name: 'smoker', vocabulary: ['no', 'yes'], fill: 'no' },
        ],
      },
    },
    'secagg-advertise': {
      ...envelope,
      cPublicKey: new Uint8Array(32).fill(1),
      sPublicKey: new Uint8Array(32).fill(2),
      numExamples: 100,
      metrics: { loss: 0.3, accuracy: 0.9, seconds: 1.5 },
      privacy: spent,
    },
    'secagg-directory': { ...envelope, keys: [{ id: 2, cPublicKey: new Uint8Array(32).fill(3), sPublicKey: new Uint8Array(32).fill(4) }] },
    'secagg-shares': { ...envelope, shares: [{ to: 2, sealed: new Uint8Array(168) }], seedCommitment: new Uint8Array(32) },
    'secagg-delivery': { ...envelope, shares: [{ from: 2, sealed: new Uint8Array(168) }] },
    'secagg-masked-input': { ...envelope, masked: new Uint8Array(40) },
    'secagg-unmask': { ...envelope, survivors: [1, 2], dropped: [3] },
    'secagg-unmask-shares': { ...envelope, seedShares: [{ of: 1, share: new Uint8Array(66) }], keyShares: [{ of: 3, share: new Uint8Array(66) }] },
  };
}
