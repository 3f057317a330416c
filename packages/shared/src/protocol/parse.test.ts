import { describe, expect, test } from 'vitest';
import { ErrorCode, FtlError } from '../errors.js';
import { expectFtlError } from '../../test-support/expect-ftl-error.js';
import { PROTOCOL_VERSION, REJECT_REASONS } from './messages.js';
import {
  checkSiteName,
  parseAck,
  parseClassSumsInstruction,
  parseClassSumsResult,
  parseClientFailure,
  parseEvaluateResult,
  parseFitInstruction,
  parseFitResult,
  parseGoodbye,
  parseHandshakeAuth,
  parsePersonalizeInstruction,
  parsePersonalizeResult,
  parseReady,
  parseWelcome,
  rejectionFor,
} from './parse.js';

/** The rejection a coordinator would send for what `fn` throws. */
function rejected(fn: () => unknown): { reason: string; message: string } {
  try {
    fn();
  } catch (err) {
    const { reason, message } = rejectionFor(err);
    return { reason, message };
  }
  throw new Error('expected a refusal');
}

const good = () => ({
  protocol: PROTOCOL_VERSION,
  runId: 'r1',
  round: 2,
  modelVersion: 1,
  weights: { specs: [{ name: 'head_output/bias', shape: [2], dtype: 'float32' }], data: new Uint8Array(8) },
  numExamples: 120,
  metrics: { loss: 0.3, accuracy: 0.9, seconds: 1.5 },
});

describe('fit-result validation', () => {
  test('accepts a well-formed update', () => {
    expect(parseFitResult(good()).numExamples).toBe(120);
  });

  test.each<[string, (m: any) => void, RegExp]>([
    ['a missing runId', (m) => delete m.runId, /fit-result.runId must be a non-empty string/],
    ['a fractional round', (m) => (m.round = 1.5), /fit-result.round must be an integer ≥ 0 \(got number 1.5\)/],
    ['weights as a number array', (m) => (m.weights.data = [0, 0]), /fit-result.weights.data must be binary data \(got an array of 2\)/],
    ['weights as base64 text', (m) => (m.weights.data = 'AAAAAAAAAAA='), /fit-result.weights.data must be binary data/],
    ['a float16 tensor', (m) => (m.weights.specs[0].dtype = 'float16'), /dtype must be "float32"/],
    ['a negative dimension', (m) => (m.weights.specs[0].shape = [-2]), /shape\[0\] must be an integer ≥ 0/],
    ['a NaN loss', (m) => (m.metrics.loss = NaN), /metrics.loss must be a finite number ≥ 0 \(got number NaN\)/],
    ['a negative loss', (m) => (m.metrics.loss = -1e9), /metrics.loss must be a finite number ≥ 0 \(got number -1000000000\)/],
    ['an accuracy of 7', (m) => (m.metrics.accuracy = 7), /metrics.accuracy must be a number in \[0, 1\] \(got number 7\)/],
    ['a negative accuracy', (m) => (m.metrics.accuracy = -3), /metrics.accuracy must be a number in \[0, 1\]/],
    ['negative seconds', (m) => (m.metrics.seconds = -1), /metrics.seconds must be a finite number ≥ 0/],
    ['a sample count as text', (m) => (m.numExamples = '120'), /numExamples must be a positive integer \(got "120"\)/],
  ])('rejects %s', (_, mutate, message) => {
    const m = good();
    mutate(m);
    expect(() => parseFitResult(m)).toThrow(message);
  });

  test.each([[0], [-5], [1.5], [NaN], [Infinity], [2 ** 53]])('a sample count of %d is refused as bad-sample-count, not malformed', (n) => {
    const m = { ...good(), numExamples: n };
    expect(rejected(() => parseFitResult(m))).toEqual({
      reason: 'bad-sample-count',
      message: `fit-result.numExamples must be a positive integer (got number ${n}); report the number of samples used`,
    });
  });

  test('rejects a message that is not an object', () => {
    expect(() => parseFitResult([good()])).toThrow('fit-result must be an object (got an array of 1)');
  });

  test('another protocol version is a protocol mismatch, reported as such in the ack', () => {
    let caught: unknown;
    try {
      parseFitResult({ ...good(), protocol: 99 });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(FtlError);
    expect(rejectionFor(caught)).toEqual({
      accepted: false,
      reason: 'protocol-mismatch',
      message: `fit-result.protocol is number 99 but this side speaks protocol ${PROTOCOL_VERSION}; run the same ftl version on both sides`,
    });
  });
});

describe('handshake and welcome', () => {
  test.each([
    [
      { protocol: PROTOCOL_VERSION },
      /auth.name must be 1–128 letters, digits, ".", "_" or "-" starting with a letter or digit, and not "constructor" or "prototype" \(got undefined\)/,
    ],
    [{ protocol: PROTOCOL_VERSION, name: 'a b' }, /auth.name must be 1–128 letters, digits/],
    [{ name: 'a' }, /auth.protocol is undefined/],
  ])('rejects handshake %j', (auth, message) => {
    expect(() => parseHandshakeAuth(auth)).toThrow(message);
  });

  test.each(['.', '..', '__proto__', 'constructor', 'prototype', '-rf', '_site', '.hidden', 'a/b', '', 'x'.repeat(129), 'é'])(
    'refuses the site name %j, in the handshake and wherever else a name comes from',
    (name) => {
      expectFtlError(() => parseHandshakeAuth({ protocol: PROTOCOL_VERSION, name }), ErrorCode.InvalidMessage, /^auth.name must be 1–128 letters/);
      expectFtlError(
        () => checkSiteName(name),
        ErrorCode.InvalidMessage,
        /^site name must be 1–128 letters, digits, "\.", "_" or "-" starting with a letter or digit, and not "constructor" or "prototype" \(got /,
      );
    },
  );

  test.each(['site-1', 'H.Example_2', '0', 'x'.repeat(128), 'Constructor'])('accepts the site name %j', (name) => {
    expect(checkSiteName(name)).toBe(name);
    expect(parseHandshakeAuth({ protocol: PROTOCOL_VERSION, name }).name).toBe(name);
  });

  test('rejects a welcome whose digest is not hex SHA-256', () => {
    const w = {
      protocol: PROTOCOL_VERSION,
      runId: 'r',
      clientId: 'c',
      classes: ['a', 'b'],
      localLayers: [],
      head: { featureDim: 4, hidden: [], classes: 2 },
      backbone: { path: '/backbone', files: ['model.json'], sha256: 'abc', featureLayer: 'features' },
    };
    expect(() => parseWelcome(w)).toThrow('welcome.backbone.sha256 must be a hex SHA-256 digest (got "abc")');
    w.backbone.sha256 = 'a'.repeat(64);
    expect(parseWelcome(w).backbone.sha256).toBe('a'.repeat(64));
  });
});

describe('ready', () => {
  const ready = { protocol: PROTOCOL_VERSION, runId: 'r', numTrain: 10, numVal: 2 };

  test('the local labels are optional, and kept when sent', () => {
    expect(parseReady(ready)).toEqual(ready);
    expect(parseReady({ ...ready, labels: ['normal', 'pneumonia'] }).labels).toEqual(['normal', 'pneumonia']);
  });

  test.each<[unknown, RegExp]>([
    ['normal', /^ready.labels must be an array of at most 10000 items \(got "normal"\)$/],
    [['normal', ''], /^ready.labels\[1\] must be a non-empty string of at most 256 characters \(got ""\)$/],
    [[3], /^ready.labels\[0\] must be a non-empty string/],
    [new Array(10_001).fill('x'), /^ready.labels must be an array of at most 10000 items/],
  ])('rejects labels %#', (labels, message) => {
    expect(() => parseReady({ ...ready, labels })).toThrow(message);
  });
});

describe('goodbye validation', () => {
  test('accepts the three reasons and refuses others', () => {
    for (const reason of ['replaced', 'revoked', 'shutdown'] as const) {
      expect(parseGoodbye({ protocol: PROTOCOL_VERSION, reason, message: 'm' })).toEqual({ protocol: PROTOCOL_VERSION, reason, message: 'm' });
    }
    expect(() => parseGoodbye({ protocol: PROTOCOL_VERSION, reason: 'bored', message: 'm' })).toThrow(
      /goodbye.reason must be replaced, revoked, shutdown or misbehaving/,
    );
    expect(() => parseGoodbye({ protocol: PROTOCOL_VERSION, reason: 'revoked' })).toThrow(/goodbye.message/);
  });
});

describe('fit instruction: the backbone learning-rate factor', () => {
  const fit = (config: Record<string, unknown>) => ({
    protocol: PROTOCOL_VERSION,
    runId: 'r1',
    round: 2,
    modelVersion: 1,
    weights: { specs: [{ name: 'conv2/bias', shape: [2], dtype: 'float32' }], data: new Uint8Array(8) },
    config: { epochs: 1, batchSize: 8, learningRate: 0.01, seed: 3, ...config },
  });

  test('is optional, and kept when sent (0 included: backbone layers stay fixed)', () => {
    expect(parseFitInstruction(fit({})).config).not.toHaveProperty('backboneLrFactor');
    expect(parseFitInstruction(fit({ backboneLrFactor: 0.1 })).config.backboneLrFactor).toBe(0.1);
    expect(parseFitInstruction(fit({ backboneLrFactor: 0 })).config.backboneLrFactor).toBe(0);
    expect(parsePersonalizeInstruction(fit({ backboneLrFactor: 0.5 })).config.backboneLrFactor).toBe(0.5);
  });

  test.each<[unknown, RegExp]>([
    [-0.1, /fit.config.backboneLrFactor must be a finite number ≥ 0 \(got number -0.1\)/],
    [Infinity, /fit.config.backboneLrFactor must be a finite number ≥ 0 \(got number Infinity\)/],
    ['0.1', /fit.config.backboneLrFactor must be a finite number ≥ 0 \(got "0.1"\)/],
  ])('refuses %j', (value, message) => {
    expect(() => parseFitInstruction(fit({ backboneLrFactor: value }))).toThrow(message);
  });
});

describe('record-level privacy on the wire', () => {
  const instruction = (privacy: unknown) => ({
    protocol: PROTOCOL_VERSION,
    runId: 'r1',
    round: 2,
    modelVersion: 1,
    weights: { specs: [{ name: 'head_output/bias', shape: [2], dtype: 'float32' }], data: new Uint8Array(8) },
    config: { epochs: 1, batchSize: 8, learningRate: 0.01, seed: 3, privacy },
  });
  const mechanism = { noiseMultiplier: 1.1, clipNorm: 1, sampling: 'poisson', delta: 1e-5 };

  test('the fit and personalize configs carry the DP mechanism when the run has one, and nothing when not', () => {
    expect(parseFitInstruction(instruction(mechanism)).config.privacy).toEqual(mechanism);
    expect(parsePersonalizeInstruction(instruction({ ...mechanism, sampling: 'shuffle' })).config.privacy?.sampling).toBe('shuffle');
    const { privacy: _, ...plain } = instruction(mechanism).config;
    expect(parseFitInstruction({ ...instruction(mechanism), config: plain }).config).not.toHaveProperty('privacy');
  });

  test.each<[string, Record<string, unknown>, RegExp]>([
    ['σ 0', { noiseMultiplier: 0 }, /^fit.config.privacy.noiseMultiplier must be a positive number \(got number 0\)$/],
    ['C −1', { clipNorm: -1 }, /^fit.config.privacy.clipNorm must be a positive number \(got number -1\)$/],
    ['an unknown sampling', { sampling: 'fixed' }, /^fit.config.privacy.sampling must be poisson or shuffle \(got "fixed"\)$/],
    ['δ 1', { delta: 1 }, /^fit.config.privacy.delta must be a number in \(0, 1\) \(got number 1\)$/],
    ['δ 0', { delta: 0 }, /^fit.config.privacy.delta must be a number in \(0, 1\)/],
  ])('a mechanism with %s is refused', (_, change, message) => {
    expectFtlError(() => parseFitInstruction(instruction({ ...mechanism, ...change })), ErrorCode.InvalidMessage, message);
  });

  test('a fit-result carries the privacy spent, with or without a budget', () => {
    expect(parseFitResult({ ...good(), privacy: { epsilon: 2.5, delta: 1e-5, budget: 8 } }).privacy).toEqual({
      epsilon: 2.5,
      delta: 1e-5,
      budget: 8,
    });
    expect(parseFitResult({ ...good(), privacy: { epsilon: 0, delta: 1e-5 } }).privacy).toEqual({ epsilon: 0, delta: 1e-5 });
    expect(parseFitResult(good())).not.toHaveProperty('privacy');
  });

  test.each<[string, Record<string, unknown>, string]>([
    ['a negative ε', { epsilon: -0.5 }, 'fit-result.privacy.epsilon must be a finite number ≥ 0 (got number -0.5)'],
    ['a NaN ε', { epsilon: NaN }, 'fit-result.privacy.epsilon must be a finite number ≥ 0 (got number NaN)'],
    ['an infinite ε', { epsilon: Infinity }, 'fit-result.privacy.epsilon must be a finite number ≥ 0 (got number Infinity)'],
    ['ε as text', { epsilon: '1.2' }, 'fit-result.privacy.epsilon must be a finite number ≥ 0 (got "1.2")'],
    ['a δ of 2', { delta: 2 }, 'fit-result.privacy.delta must be a number in (0, 1) (got number 2)'],
    ['a budget of 0', { budget: 0 }, 'fit-result.privacy.budget must be a positive number (got number 0)'],
  ])('a fit-result with %s is refused as malformed, naming the field', (_, change, message) => {
    expect(rejected(() => parseFitResult({ ...good(), privacy: { epsilon: 1, delta: 1e-5, ...change } }))).toEqual({ reason: 'malformed', message });
  });

  test('a failure may say the site refused for its privacy budget, and what it has spent', () => {
    const failure = { protocol: PROTOCOL_VERSION, runId: 'r1', round: 3, modelVersion: 2, stage: 'fit', message: 'privacy budget: …' };
    const f = parseClientFailure({ ...failure, reason: 'privacy-budget', privacy: { epsilon: 7.9, delta: 1e-5, budget: 8 } });
    expect(f).toMatchObject({ reason: 'privacy-budget', privacy: { epsilon: 7.9, budget: 8 } });
    expect(parseClientFailure(failure)).not.toHaveProperty('reason');
    expect(() => parseClientFailure({ ...failure, reason: 'tired' })).toThrow(/^failure.reason must be privacy-budget \(got "tired"\)$/);
    expect(() => parseClientFailure({ ...failure, privacy: { epsilon: -1, delta: 1e-5 } })).toThrow(
      /^failure.privacy.epsilon must be a finite number ≥ 0/,
    );
  });
});

describe('welcome augmentation settings', () => {
  const welcome = (augment: unknown) => ({
    protocol: PROTOCOL_VERSION,
    runId: 'r',
    clientId: 'c',
    classes: ['a', 'b'],
    localLayers: [],
    backbone: { path: '/backbone', files: ['model.json'], sha256: 'a'.repeat(64), featureLayer: 'features' },
    head: { featureDim: 4, hidden: [], classes: 2 },
    augment,
  });
  test('are optional, validated and kept', () => {
    expect(parseWelcome(welcome(undefined)).augment).toBeUndefined();
    expect(parseWelcome(welcome({ copies: 2, shift: 0.1, flip: false, rotation: 10 })).augment).toEqual({
      copies: 2,
      shift: 0.1,
      flip: false,
      rotation: 10,
    });
    expect(() => parseWelcome(welcome({ copies: 2, shift: 0.7, flip: false, rotation: 0 }))).toThrow(
      /welcome.augment.shift must be a number in \[0, 0.5\)/,
    );
    expect(() => parseWelcome(welcome({ copies: 99, shift: 0, flip: false, rotation: 0 }))).toThrow(
      /welcome.augment.copies must be an integer in \[0, 20\]/,
    );
  });
});

describe('federated normalisation messages', () => {
  const ready = (stats: unknown) => ({ protocol: PROTOCOL_VERSION, runId: 'r', numTrain: 10, numVal: 2, stats });
  test('ready carries per-channel statistics, checked for shape and finiteness', () => {
    const stats = { count: 4, sum: [1, 2], sumSquares: [1, 1.5], min: [0, 0], max: [1, 1] };
    expect(parseReady(ready(stats)).stats).toEqual(stats);
    expect(() => parseReady(ready({ ...stats, sumSquares: [1] }))).toThrow(/ready.stats.sumSquares must be 2 values, one per channel/);
    expect(() => parseReady(ready({ ...stats, sum: [NaN, 1] }))).toThrow(/ready.stats.sum\[0\] must be a finite number/);
  });
  test.each<[string, Record<string, unknown>, RegExp]>([
    ['min above max', { min: [0, 2] }, /ready.stats are inconsistent: channel 1 has min 2 > max 1/],
    ['a negative variance', { sumSquares: [0.1, 1.5] }, /channel 0 has sumSquares 0.1 < sum²\/count 0.25 \(a negative variance\)/],
    ['too much energy for the range', { sumSquares: [1, 4.5] }, /channel 1 has sumSquares 4.5 > count·max\(min², max²\) 4/],
    ['a mean outside [min, max]', { sum: [1, 60], sumSquares: [1, 900], max: [1, 10] }, /channel 1 has mean 15 outside \[min 0, max 10\]/],
    [
      'sums of 1e300 (finite)',
      { sum: [1e300, 2], sumSquares: [1e300, 1.5], max: [1e300, 1] },
      /channel 0 has sumSquares 1e\+300 < sum²\/count Infinity/,
    ],
  ])('ready statistics with %s are refused as bad-statistics', (_, change, message) => {
    const stats = { count: 4, sum: [1, 2], sumSquares: [1, 1.5], min: [0, 0], max: [1, 1], ...change };
    const r = rejected(() => parseReady(ready(stats)));
    expect(r.reason).toBe('bad-statistics');
    expect(r.message).toMatch(message);
  });

  test('a ready statistics count must be a positive integer', () => {
    const stats = { count: 0, sum: [0], sumSquares: [0], min: [0], max: [0] };
    expect(() => parseReady(ready(stats))).toThrow(/ready.stats.count must be an integer ≥ 1 \(got number 0\)/);
  });

  test('instructions carry the normalisation; a non-positive scale is refused', () => {
    const fit = {
      protocol: PROTOCOL_VERSION,
      runId: 'r',
      round: 1,
      modelVersion: 0,
      weights: { specs: [{ name: 'head_output/bias', shape: [2], dtype: 'float32' }], data: new Uint8Array(8) },
      config: { epochs: 1, batchSize: 8, learningRate: 0.01, seed: 1 },
    };
    const normalization = { kind: 'standard', shift: [0.13], scale: [0.31] };
    expect(parseFitInstruction({ ...fit, normalization }).normalization).toEqual(normalization);
    expect(parseFitInstruction(fit).normalization).toBeUndefined();
    expect(() => parseFitInstruction({ ...fit, normalization: { ...normalization, scale: [0] } })).toThrow(
      /fit.normalization.scale\[0\] must be a number > 0/,
    );
  });
});

describe('evaluation and personalisation results', () => {
  const evaluation = () => ({ protocol: PROTOCOL_VERSION, runId: 'r', round: 1, modelVersion: 1, numExamples: 20, loss: 0.4, accuracy: 0.8 });
  const personal = () => ({
    protocol: PROTOCOL_VERSION,
    runId: 'r',
    round: 3,
    modelVersion: 3,
    numExamples: 20,
    globalLoss: 0.4,
    globalAccuracy: 0.8,
    personalLoss: 0.3,
    personalAccuracy: 0.85,
  });

  test('accept metrics in range', () => {
    expect(parseEvaluateResult(evaluation()).accuracy).toBe(0.8);
    expect(parseEvaluateResult({ ...evaluation(), loss: 0, accuracy: 1 }).accuracy).toBe(1);
    expect(parsePersonalizeResult(personal()).personalAccuracy).toBe(0.85);
  });

  test.each<[string, Record<string, unknown>, RegExp]>([
    ['an accuracy of 7', { accuracy: 7 }, /^evaluate-result.accuracy must be a number in \[0, 1\] \(got number 7\)$/],
    ['an accuracy of -3', { accuracy: -3 }, /^evaluate-result.accuracy must be a number in \[0, 1\]/],
    ['a NaN accuracy', { accuracy: NaN }, /^evaluate-result.accuracy must be a number in \[0, 1\]/],
    ['a loss of -1e9', { loss: -1e9 }, /^evaluate-result.loss must be a finite number ≥ 0/],
    ['an infinite loss', { loss: Infinity }, /^evaluate-result.loss must be a finite number ≥ 0/],
  ])('an evaluation with %s is refused', (_, change, message) => {
    expectFtlError(() => parseEvaluateResult({ ...evaluation(), ...change }), ErrorCode.InvalidMessage, message);
  });

  test.each([[0], [-1], [0.5], [1e300]])('evaluation and personalisation sample counts of %d are bad-sample-count', (n) => {
    expect(rejected(() => parseEvaluateResult({ ...evaluation(), numExamples: n })).reason).toBe('bad-sample-count');
    expect(rejected(() => parsePersonalizeResult({ ...personal(), numExamples: n })).reason).toBe('bad-sample-count');
  });

  test.each([
    ['globalAccuracy', 1.5],
    ['personalAccuracy', -0.1],
    ['globalLoss', -1],
    ['personalLoss', NaN],
  ])('a personalisation %s of %d is refused', (field, value) => {
    expectFtlError(
      () => parsePersonalizeResult({ ...personal(), [field]: value }),
      ErrorCode.InvalidMessage,
      new RegExp(`^personalize-result.${field} must be`),
    );
  });
});

describe('acknowledgements', () => {
  test('every reject reason of the protocol is accepted, and kept', () => {
    for (const reason of REJECT_REASONS) {
      expect(parseAck({ accepted: false, reason, message: 'm' })).toEqual({ accepted: false, reason, message: 'm' });
    }
    expect(parseAck({ accepted: true })).toEqual({ accepted: true });
  });

  test.each([['bored'], ['__proto__'], [3], [undefined]])('a reason outside the union (%j) is refused, not cast', (reason) => {
    expectFtlError(
      () => parseAck({ accepted: false, reason, message: 'm' }),
      ErrorCode.InvalidMessage,
      /^ack.reason must be one of malformed, protocol-mismatch, .*rate-limited \(got /,
    );
  });
});

test('an array that carries its own constructor property is read as a plain array, not through it', () => {
  const w = {
    protocol: PROTOCOL_VERSION,
    runId: 'r',
    clientId: 'c',
    classes: Object.assign(['a', 'b'], { constructor: '' }),
    localLayers: [],
    backbone: { path: '/backbone', files: ['model.json'], sha256: 'a'.repeat(64), featureLayer: 'features' },
    head: { featureDim: 4, hidden: [], classes: 2 },
  };
  expect(parseWelcome(w).classes).toEqual(['a', 'b']);
});

describe('class-sums validation', () => {
  const sums = (rows: number, cols: number, name = 'class-sums') => ({
    specs: [{ name, shape: [rows, cols], dtype: 'float32' }],
    data: new Uint8Array(rows * cols * 4),
  });
  const result = () => ({ protocol: PROTOCOL_VERSION, runId: 'r1', round: 0, modelVersion: 0, sums: sums(3, 4), counts: [2, 0, 5] });

  test('accepts per-class sums and counts, and an instruction with or without normalisation', () => {
    expect(parseClassSumsResult(result()).counts).toEqual([2, 0, 5]);
    expect(parseClassSumsInstruction({ protocol: PROTOCOL_VERSION, runId: 'r1', round: 0, modelVersion: 0 }).round).toBe(0);
    const normalization = { kind: 'standard', shift: [0.5], scale: [0.25] };
    expect(parseClassSumsInstruction({ protocol: PROTOCOL_VERSION, runId: 'r1', round: 0, modelVersion: 0, normalization }).normalization).toEqual(
      normalization,
    );
    expect(
      parseClientFailure({ protocol: PROTOCOL_VERSION, runId: 'r1', round: 0, modelVersion: 0, stage: 'class-sums', message: 'no features' }).stage,
    ).toBe('class-sums');
    // The discriminant head's request and answer: the within-class scatter, featureDim × featureDim.
    expect(parseClassSumsInstruction({ protocol: PROTOCOL_VERSION, runId: 'r1', round: 0, modelVersion: 0, scatter: true }).scatter).toBe(true);
    expect(parseClassSumsResult({ ...result(), scatter: sums(4, 4, 'feature-scatter') }).scatter!.specs[0]!.shape).toEqual([4, 4]);
    expect(() => parseClassSumsInstruction({ protocol: PROTOCOL_VERSION, runId: 'r1', round: 0, modelVersion: 0, scatter: 'yes' })).toThrow(
      /class-sums.scatter must be true or false/,
    );
  });

  test.each<[string, (m: any) => void, string, RegExp]>([
    ['a negative count', (m) => (m.counts[1] = -1), 'bad-sample-count', /counts\[1\] must be an integer ≥ 0 \(got number -1\)/],
    ['a fractional count', (m) => (m.counts[0] = 1.5), 'bad-sample-count', /counts\[0\] must be an integer ≥ 0/],
    ['an infinite count', (m) => (m.counts[2] = Infinity), 'bad-sample-count', /counts\[2\] must be an integer ≥ 0/],
    ['a count as text', (m) => (m.counts[0] = '2'), 'malformed', /counts\[0\] must be an integer ≥ 0 \(got "2"\)/],
    ['counts that add up to 0', (m) => (m.counts = [0, 0, 0]), 'bad-sample-count', /add up to 0/],
    ['counts that add up past 2^53', (m) => (m.counts = [2 ** 52, 2 ** 52, 2 ** 52]), 'bad-sample-count', /add up to/],
    ['fewer counts than rows', (m) => (m.counts = [1, 1]), 'malformed', /one count per row of the sums \(3\)/],
    ['two tensors', (m) => m.sums.specs.push({ name: 'x', shape: [1], dtype: 'float32' }), 'malformed', /one tensor named "class-sums"/],
    ['another tensor name', (m) => (m.sums = sums(3, 4, 'head_output/kernel')), 'malformed', /one tensor named "class-sums"/],
    ['a flat tensor', (m) => (m.sums.specs[0].shape = [12]), 'malformed', /of shape \[classes, featureDim\]/],
    ['sums as a number array', (m) => (m.sums.data = [0, 0]), 'malformed', /sums.data must be binary data/],
    [
      'more counts than any run has classes',
      (m) => (m.counts = new Array(10_001).fill(1)),
      'malformed',
      /counts must be an array of at most 10000 items/,
    ],
    [
      'a scatter under another name',
      (m) => (m.scatter = sums(4, 4, 'class-sums')),
      'malformed',
      /one tensor named "feature-scatter" of shape \[4, 4\]/,
    ],
    [
      'a scatter that is not featureDim × featureDim',
      (m) => (m.scatter = sums(3, 4, 'feature-scatter')),
      'malformed',
      /of shape \[4, 4\] \(featureDim × featureDim\)/,
    ],
  ])('refuses %s', (_, edit, reason, message) => {
    const m = result();
    edit(m);
    const r = rejected(() => parseClassSumsResult(m));
    expect(r.reason).toBe(reason);
    expect(r.message).toMatch(message);
  });
});
