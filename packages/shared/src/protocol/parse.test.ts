import { describe, expect, test } from 'vitest';
import { FtlError } from '../errors.js';
import { PROTOCOL_VERSION } from './messages.js';
import { parseFitInstruction, parseFitResult, parseGoodbye, parseHandshakeAuth, parsePersonalizeInstruction, parseReady, parseWelcome, rejectionFor } from './parse.js';

const good = () => ({
  protocol: PROTOCOL_VERSION, runId: 'r1', round: 2, modelVersion: 1,
  weights: { specs: [{ name: 'head_output/bias', shape: [2], dtype: 'float32' }], data: new Uint8Array(8) },
  numExamples: 120, metrics: { loss: 0.3, accuracy: 0.9, seconds: 1.5 },
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
    ['zero samples', (m) => (m.numExamples = 0), /numExamples must be an integer ≥ 1 \(got number 0\)/],
    ['a NaN loss', (m) => (m.metrics.loss = NaN), /metrics.loss must be a finite number/],
  ])('rejects %s', (_, mutate, message) => {
    const m = good();
    mutate(m);
    expect(() => parseFitResult(m)).toThrow(message);
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
      accepted: false, reason: 'protocol-mismatch',
      message: `fit-result.protocol is number 99 but this side speaks protocol ${PROTOCOL_VERSION}; run the same ftl version on both sides`,
    });
  });
});

describe('handshake and welcome', () => {
  test.each([
    [{ protocol: PROTOCOL_VERSION }, /auth.name must be a non-empty string/],
    [{ protocol: PROTOCOL_VERSION, name: 'a b' }, /auth.name must be letters, digits/],
    [{ name: 'a' }, /auth.protocol is undefined/],
  ])('rejects handshake %j', (auth, message) => {
    expect(() => parseHandshakeAuth(auth)).toThrow(message);
  });

  test('rejects a welcome whose digest is not hex SHA-256', () => {
    const w = {
      protocol: PROTOCOL_VERSION, runId: 'r', clientId: 'c', classes: ['a', 'b'], localLayers: [],
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
    expect(() => parseGoodbye({ protocol: PROTOCOL_VERSION, reason: 'bored', message: 'm' })).toThrow(/goodbye.reason must be replaced, revoked or shutdown/);
    expect(() => parseGoodbye({ protocol: PROTOCOL_VERSION, reason: 'revoked' })).toThrow(/goodbye.message/);
  });
});

describe('fit instruction: the backbone learning-rate factor', () => {
  const fit = (config: Record<string, unknown>) => ({
    protocol: PROTOCOL_VERSION, runId: 'r1', round: 2, modelVersion: 1,
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

describe('welcome augmentation settings', () => {
  const welcome = (augment: unknown) => ({
    protocol: PROTOCOL_VERSION, runId: 'r', clientId: 'c', classes: ['a', 'b'], localLayers: [],
    backbone: { path: '/backbone', files: ['model.json'], sha256: 'a'.repeat(64), featureLayer: 'features' },
    head: { featureDim: 4, hidden: [], classes: 2 }, augment,
  });
  test('are optional, validated and kept', () => {
    expect(parseWelcome(welcome(undefined)).augment).toBeUndefined();
    expect(parseWelcome(welcome({ copies: 2, shift: 0.1, flip: false, rotation: 10 })).augment).toEqual({ copies: 2, shift: 0.1, flip: false, rotation: 10 });
    expect(() => parseWelcome(welcome({ copies: 2, shift: 0.7, flip: false, rotation: 0 }))).toThrow(/welcome.augment.shift must be a number in \[0, 0.5\)/);
    expect(() => parseWelcome(welcome({ copies: 99, shift: 0, flip: false, rotation: 0 }))).toThrow(/welcome.augment.copies must be an integer in \[0, 20\]/);
  });
});

describe('federated normalisation messages', () => {
  const ready = (stats: unknown) => ({ protocol: PROTOCOL_VERSION, runId: 'r', numTrain: 10, numVal: 2, stats });
  test('ready carries per-channel statistics, checked for shape and finiteness', () => {
    const stats = { count: 4, sum: [1, 2], sumSquares: [1, 3], min: [0, 0], max: [1, 1] };
    expect(parseReady(ready(stats)).stats).toEqual(stats);
    expect(() => parseReady(ready({ ...stats, sumSquares: [1] }))).toThrow(/ready.stats.sumSquares must be 2 values, one per channel/);
    expect(() => parseReady(ready({ ...stats, sum: [NaN, 1] }))).toThrow(/ready.stats.sum\[0\] must be a finite number/);
  });
  test('instructions carry the normalisation; a non-positive scale is refused', () => {
    const fit = {
      protocol: PROTOCOL_VERSION, runId: 'r', round: 1, modelVersion: 0,
      weights: { specs: [{ name: 'head_output/bias', shape: [2], dtype: 'float32' }], data: new Uint8Array(8) },
      config: { epochs: 1, batchSize: 8, learningRate: 0.01, seed: 1 },
    };
    const normalization = { kind: 'standard', shift: [0.13], scale: [0.31] };
    expect(parseFitInstruction({ ...fit, normalization }).normalization).toEqual(normalization);
    expect(parseFitInstruction(fit).normalization).toBeUndefined();
    expect(() => parseFitInstruction({ ...fit, normalization: { ...normalization, scale: [0] } })).toThrow(/fit.normalization.scale\[0\] must be a number > 0/);
  });
});
