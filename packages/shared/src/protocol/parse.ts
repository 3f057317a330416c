import type { EncodedWeights, WeightSpec } from '../codec/weights.js';
import { statsInconsistency } from '../data/federated-stats.js';
import { ErrorCode, FtlError } from '../errors.js';
import type { HeadConfig } from '../model/head.js';
import {
  PROTOCOL_VERSION, REJECT_REASONS, type Ack, type BackboneInfo, type ClientFailure, type Envelope, type EvaluateInstruction,
  type EvaluateResult, type FitConfig, type FitInstruction, type FitMetrics, type FitResult, type HandshakeAuth,
  type PersonalizeInstruction, type PersonalizeResult, type Ready, type RejectReason, type Rejection, type RunEnd,
  type Welcome, type Goodbye, type AugmentConfig, type ChannelStats, type Normalization,
  CLASS_SUMS_TENSOR, FEATURE_SCATTER_TENSOR, type ClassSumsInstruction, type ClassSumsResult,
} from './messages.js';

// Validators turn `unknown` (a decoded msgpack value) into a protocol type or throw an FtlError whose
// message names the field, what it must be and what it was.

type Obj = Record<string, unknown>;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (v instanceof Uint8Array) return `${v.byteLength} bytes`;
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

function fail(path: string, expected: string, got: unknown): never {
  throw new FtlError(ErrorCode.InvalidMessage, `${path} must be ${expected} (got ${describe(got)})`);
}

function obj(v: unknown, path: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) fail(path, 'an object', v);
  return v as Obj;
}

function int(v: unknown, path: string, min = 0): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) fail(path, `an integer ≥ ${min}`, v);
  return v;
}

function finite(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(path, 'a finite number', v);
  return v;
}

function positive(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(path, 'a positive number', v);
  return v;
}

function rate(v: unknown, path: string): number {
  if (typeof v !== 'number' || !(v >= 0 && v < 1)) fail(path, 'a number in [0, 1)', v);
  return v;
}

function nonNegative(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) fail(path, 'a finite number ≥ 0', v);
  return v;
}

function str(v: unknown, path: string, max = 256): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max) fail(path, `a non-empty string of at most ${max} characters`, v);
  return v;
}

function bytes(v: unknown, path: string): Uint8Array {
  if (!(v instanceof Uint8Array)) fail(path, 'binary data', v);
  return v;
}

function array(v: unknown, path: string, max: number): unknown[] {
  if (!Array.isArray(v) || v.length > max) fail(path, `an array of at most ${max} items`, v);
  // A plain copy: the callers' `.map` must not consult an own `constructor` or iterator the input may carry.
  const copy = new Array<unknown>(v.length);
  for (let i = 0; i < v.length; i++) copy[i] = v[i];
  return copy;
}

/**
 * A count of samples a site claims: a positive safe integer. Any other number is a `bad-sample-count`
 * (FtlError SAMPLE_COUNT); anything that is not a number is malformed.
 */
function sampleCount(v: unknown, path: string): number {
  if (typeof v !== 'number') fail(path, 'a positive integer', v);
  if (!Number.isSafeInteger(v) || v < 1) {
    throw new FtlError(ErrorCode.SampleCount, `${path} must be a positive integer (got ${describe(v)}); report the number of samples used`);
  }
  return v;
}

function lossValue(v: unknown, path: string): number {
  return nonNegative(v, path);
}

function accuracyValue(v: unknown, path: string): number {
  if (typeof v !== 'number' || !(v >= 0 && v <= 1)) fail(path, 'a number in [0, 1]', v);
  return v;
}

function protocol(o: Obj, path: string): number {
  const p = o['protocol'];
  if (p !== PROTOCOL_VERSION) {
    throw new FtlError(
      ErrorCode.ProtocolMismatch,
      `${path}.protocol is ${describe(p)} but this side speaks protocol ${PROTOCOL_VERSION}; run the same ftl version on both sides`,
    );
  }
  return PROTOCOL_VERSION;
}

function envelope(o: Obj, path: string): Envelope {
  return {
    protocol: protocol(o, path),
    runId: str(o['runId'], `${path}.runId`),
    round: int(o['round'], `${path}.round`),
    modelVersion: int(o['modelVersion'], `${path}.modelVersion`),
  };
}

const MAX_TENSORS = 4096;

function weightSpec(v: unknown, path: string): WeightSpec {
  const o = obj(v, path);
  const shape = array(o['shape'], `${path}.shape`, 8).map((d, i) => int(d, `${path}.shape[${i}]`));
  if (o['dtype'] !== 'float32') fail(`${path}.dtype`, '"float32"', o['dtype']);
  return { name: str(o['name'], `${path}.name`), shape, dtype: 'float32' };
}

/** Validates wire weights: specs and binary data (the byte length is checked by `decodeWeights`). */
export function parseEncodedWeights(v: unknown, path = 'weights'): EncodedWeights {
  const o = obj(v, path);
  const specs = array(o['specs'], `${path}.specs`, MAX_TENSORS).map((s, i) => weightSpec(s, `${path}.specs[${i}]`));
  return { specs, data: bytes(o['data'], `${path}.data`) };
}

const SITE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
// Names that are object machinery: a registry keyed by site name must never meet them.
const RESERVED_SITE_NAMES = new Set(['constructor', 'prototype']);

/**
 * Checks a site (client) name, wherever one comes from: the handshake, the operator's `clients add`, a
 * token file. A name is 1–128 letters, digits, `.`, `_` or `-` and starts with a letter or digit, which
 * also rules out `.`, `..` and `__proto__`; `constructor` and `prototype` are refused too.
 *
 * @throws FtlError(INVALID_MESSAGE) saying the rule.
 * @example
 * const name = checkSiteName(body.name, 'clients add name');
 */
export function checkSiteName(name: unknown, path = 'site name'): string {
  if (typeof name !== 'string' || !SITE_NAME.test(name) || RESERVED_SITE_NAMES.has(name)) {
    fail(path, '1–128 letters, digits, ".", "_" or "-" starting with a letter or digit, and not "constructor" or "prototype"', name);
  }
  return name;
}

/** Validates the socket.io handshake's `auth`. */
export function parseHandshakeAuth(v: unknown): HandshakeAuth {
  const o = obj(v, 'auth');
  protocol(o, 'auth');
  const name = checkSiteName(o['name'], 'auth.name');
  const token = o['token'] === undefined ? undefined : str(o['token'], 'auth.token', 256);
  return { protocol: PROTOCOL_VERSION, name, ...(token ? { token } : {}) };
}

/** Validates a `ready` message. */
export function parseReady(v: unknown): Ready {
  const o = obj(v, 'ready');
  const labels = o['labels'] === undefined
    ? undefined
    : array(o['labels'], 'ready.labels', 10_000).map((c, i) => str(c, `ready.labels[${i}]`));
  return {
    protocol: protocol(o, 'ready'),
    runId: str(o['runId'], 'ready.runId'),
    numTrain: sampleCount(o['numTrain'], 'ready.numTrain'),
    numVal: int(o['numVal'], 'ready.numVal'),
    ...(labels ? { labels } : {}),
    ...(o['stats'] === undefined ? {} : { stats: channelStats(o['stats'], 'ready.stats') }),
  };
}

// Per-feature statistics of a tabular row or an image: one value per position.
const MAX_CHANNELS = 1 << 20;

function numbers(v: unknown, path: string, n?: number): number[] {
  const a = array(v, path, MAX_CHANNELS).map((x, i) => finite(x, `${path}[${i}]`));
  if (n !== undefined && a.length !== n) fail(path, `${n} values, one per channel`, a);
  return a;
}

function channelStats(v: unknown, path: string): ChannelStats {
  const o = obj(v, path);
  const sum = numbers(o['sum'], `${path}.sum`);
  if (sum.length === 0) fail(`${path}.sum`, 'one value per channel', sum);
  const c = sum.length;
  const stats: ChannelStats = {
    count: int(o['count'], `${path}.count`, 1), sum, sumSquares: numbers(o['sumSquares'], `${path}.sumSquares`, c),
    min: numbers(o['min'], `${path}.min`, c), max: numbers(o['max'], `${path}.max`, c),
  };
  // Well-formed but impossible statistics are a `bad-statistics` refusal (FtlError DATASET), not `malformed`.
  const why = statsInconsistency(stats);
  if (why) throw new FtlError(ErrorCode.Dataset, `${path} are inconsistent: ${why}; send the statistics channelStats computes`);
  return stats;
}

function normalization(v: unknown, path: string): Normalization {
  const o = obj(v, path);
  const kind = o['kind'];
  if (kind !== 'standard' && kind !== 'min-max') fail(`${path}.kind`, 'standard or min-max', kind);
  const shift = numbers(o['shift'], `${path}.shift`);
  const scale = numbers(o['scale'], `${path}.scale`, shift.length);
  if (shift.length === 0) fail(`${path}.shift`, 'one value per channel', shift);
  scale.forEach((x, i) => x > 0 || fail(`${path}.scale[${i}]`, 'a number > 0', x));
  return { kind, shift, scale };
}

const withNormalization = (o: Record<string, unknown>, path: string): { normalization?: Normalization } =>
  o['normalization'] === undefined ? {} : { normalization: normalization(o['normalization'], `${path}.normalization`) };

function fitMetrics(v: unknown, path: string): FitMetrics {
  const o = obj(v, path);
  return {
    loss: lossValue(o['loss'], `${path}.loss`),
    accuracy: accuracyValue(o['accuracy'], `${path}.accuracy`),
    seconds: nonNegative(o['seconds'], `${path}.seconds`),
  };
}

/** Validates a `fit-result` message (structure only; the coordinator then checks it against the round). */
export function parseFitResult(v: unknown): FitResult {
  const o = obj(v, 'fit-result');
  return {
    ...envelope(o, 'fit-result'),
    weights: parseEncodedWeights(o['weights'], 'fit-result.weights'),
    numExamples: sampleCount(o['numExamples'], 'fit-result.numExamples'),
    metrics: fitMetrics(o['metrics'], 'fit-result.metrics'),
  };
}

/** Validates an `evaluate-result` message. */
export function parseEvaluateResult(v: unknown): EvaluateResult {
  const o = obj(v, 'evaluate-result');
  return {
    ...envelope(o, 'evaluate-result'),
    numExamples: sampleCount(o['numExamples'], 'evaluate-result.numExamples'),
    loss: lossValue(o['loss'], 'evaluate-result.loss'),
    accuracy: accuracyValue(o['accuracy'], 'evaluate-result.accuracy'),
  };
}

/** Validates a `failure` message. */
export function parseClientFailure(v: unknown): ClientFailure {
  const o = obj(v, 'failure');
  const stage = o['stage'];
  if (stage !== 'fit' && stage !== 'evaluate' && stage !== 'personalize' && stage !== 'class-sums') {
    fail('failure.stage', '"fit", "evaluate", "personalize" or "class-sums"', stage);
  }
  return { ...envelope(o, 'failure'), stage, message: str(o['message'], 'failure.message', 2000) };
}

function headConfig(v: unknown, path: string): HeadConfig {
  const o = obj(v, path);
  return {
    featureDim: int(o['featureDim'], `${path}.featureDim`, 1),
    hidden: array(o['hidden'], `${path}.hidden`, 16).map((u, i) => int(u, `${path}.hidden[${i}]`, 1)),
    ...(o['l2'] === undefined ? {} : { l2: nonNegative(o['l2'], `${path}.l2`) }),
    ...(o['dropout'] === undefined ? {} : { dropout: rate(o['dropout'], `${path}.dropout`) }),
    classes: int(o['classes'], `${path}.classes`, 2),
  };
}

function backboneInfo(v: unknown, path: string): BackboneInfo {
  const o = obj(v, path);
  const sha256 = str(o['sha256'], `${path}.sha256`, 64);
  if (!/^[0-9a-f]{64}$/.test(sha256)) fail(`${path}.sha256`, 'a hex SHA-256 digest', sha256);
  return {
    path: str(o['path'], `${path}.path`),
    files: array(o['files'], `${path}.files`, 1024).map((f, i) => str(f, `${path}.files[${i}]`)),
    sha256,
    featureLayer: str(o['featureLayer'], `${path}.featureLayer`),
  };
}

/** Validates a `welcome` message. */
export function parseWelcome(v: unknown): Welcome {
  const o = obj(v, 'welcome');
  return {
    protocol: protocol(o, 'welcome'),
    runId: str(o['runId'], 'welcome.runId'),
    clientId: str(o['clientId'], 'welcome.clientId'),
    backbone: backboneInfo(o['backbone'], 'welcome.backbone'),
    head: headConfig(o['head'], 'welcome.head'),
    classes: array(o['classes'], 'welcome.classes', 10_000).map((c, i) => str(c, `welcome.classes[${i}]`)),
    localLayers: array(o['localLayers'], 'welcome.localLayers', 64).map((c, i) => str(c, `welcome.localLayers[${i}]`)),
    ...(o['augment'] === undefined ? {} : { augment: augmentConfig(o['augment'], 'welcome.augment') }),
    ...(o['normalization'] === undefined ? {} : {
      normalization: o['normalization'] === 'standard' || o['normalization'] === 'min-max'
        ? o['normalization'] : fail('welcome.normalization', 'standard or min-max', o['normalization']),
    }),
    ...(o['backboneTrainsFromStart'] === undefined ? {} : {
      backboneTrainsFromStart: typeof o['backboneTrainsFromStart'] === 'boolean'
        ? o['backboneTrainsFromStart'] : fail('welcome.backboneTrainsFromStart', 'a boolean', o['backboneTrainsFromStart']),
    }),
    ...(o['normalizationScope'] === undefined ? {} : {
      normalizationScope: o['normalizationScope'] === 'channel' || o['normalizationScope'] === 'feature'
        ? o['normalizationScope'] : fail('welcome.normalizationScope', 'channel or feature', o['normalizationScope']),
    }),
  };
}

function augmentConfig(v: unknown, path: string): AugmentConfig {
  const o = obj(v, path);
  const shift = finite(o['shift'], `${path}.shift`);
  const rotation = finite(o['rotation'], `${path}.rotation`);
  if (shift < 0 || shift >= 0.5) fail(`${path}.shift`, 'a number in [0, 0.5)', shift);
  if (rotation < 0 || rotation > 180) fail(`${path}.rotation`, 'a number in [0, 180]', rotation);
  if (typeof o['flip'] !== 'boolean') fail(`${path}.flip`, 'a boolean', o['flip']);
  const copies = int(o['copies'], `${path}.copies`);
  if (copies > 20) fail(`${path}.copies`, 'an integer in [0, 20]', copies);
  return { copies, shift, flip: o['flip'] as boolean, rotation };
}

function fitConfig(v: unknown, path: string): FitConfig {
  const o = obj(v, path);
  return {
    epochs: int(o['epochs'], `${path}.epochs`, 1),
    batchSize: int(o['batchSize'], `${path}.batchSize`, 1),
    learningRate: positive(o['learningRate'], `${path}.learningRate`),
    seed: int(o['seed'], `${path}.seed`),
    ...(o['proximalMu'] === undefined ? {} : { proximalMu: nonNegative(o['proximalMu'], `${path}.proximalMu`) }),
    ...(o['backboneLrFactor'] === undefined ? {} : { backboneLrFactor: nonNegative(o['backboneLrFactor'], `${path}.backboneLrFactor`) }),
  };
}

/** Validates a `fit` instruction. */
export function parseFitInstruction(v: unknown): FitInstruction {
  const o = obj(v, 'fit');
  return { ...envelope(o, 'fit'), weights: parseEncodedWeights(o['weights'], 'fit.weights'), config: fitConfig(o['config'], 'fit.config'), ...withNormalization(o, 'fit') };
}

/** Validates an `evaluate` instruction. */
export function parseEvaluateInstruction(v: unknown): EvaluateInstruction {
  const o = obj(v, 'evaluate');
  return { ...envelope(o, 'evaluate'), weights: parseEncodedWeights(o['weights'], 'evaluate.weights'), ...withNormalization(o, 'evaluate') };
}

/** Validates a `personalize` instruction. */
export function parsePersonalizeInstruction(v: unknown): PersonalizeInstruction {
  const o = obj(v, 'personalize');
  return {
    ...envelope(o, 'personalize'), weights: parseEncodedWeights(o['weights'], 'personalize.weights'),
    config: fitConfig(o['config'], 'personalize.config'), ...withNormalization(o, 'personalize'),
  };
}

/** Validates a `personalize-result` message. */
export function parsePersonalizeResult(v: unknown): PersonalizeResult {
  const o = obj(v, 'personalize-result');
  const p = 'personalize-result';
  return {
    ...envelope(o, p),
    numExamples: sampleCount(o['numExamples'], `${p}.numExamples`),
    globalLoss: lossValue(o['globalLoss'], `${p}.globalLoss`),
    globalAccuracy: accuracyValue(o['globalAccuracy'], `${p}.globalAccuracy`),
    personalLoss: lossValue(o['personalLoss'], `${p}.personalLoss`),
    personalAccuracy: accuracyValue(o['personalAccuracy'], `${p}.personalAccuracy`),
  };
}

/** Validates a `class-sums` instruction. */
export function parseClassSumsInstruction(v: unknown): ClassSumsInstruction {
  const o = obj(v, 'class-sums');
  const scatter = o['scatter'];
  if (scatter !== undefined && typeof scatter !== 'boolean') fail('class-sums.scatter', 'true or false', scatter);
  return { ...envelope(o, 'class-sums'), ...withNormalization(o, 'class-sums'), ...(scatter ? { scatter: true } : {}) };
}

// As many classes as a run may have (welcome.classes).
const MAX_CLASSES = 10_000;

/**
 * Validates a `class-sums-result` message's structure: one tensor named `class-sums` of shape
 * `[classes, featureDim]`, and one count per class, each a non-negative integer, adding up to at least 1.
 * A count that is a number but no such integer is a `bad-sample-count` (FtlError SAMPLE_COUNT). The
 * coordinator then checks the shape against the run, the values for finiteness and the total against
 * what the site declared.
 */
export function parseClassSumsResult(v: unknown): ClassSumsResult {
  const p = 'class-sums-result';
  const o = obj(v, p);
  const sums = parseEncodedWeights(o['sums'], `${p}.sums`);
  const spec = sums.specs[0];
  if (sums.specs.length !== 1 || spec!.name !== CLASS_SUMS_TENSOR || spec!.shape.length !== 2) {
    fail(`${p}.sums.specs`, `one tensor named "${CLASS_SUMS_TENSOR}" of shape [classes, featureDim]`, sums.specs);
  }
  let total = 0;
  const counts = array(o['counts'], `${p}.counts`, MAX_CLASSES).map((c, i) => {
    const path = `${p}.counts[${i}]`;
    if (typeof c !== 'number') fail(path, 'an integer ≥ 0', c);
    if (!Number.isSafeInteger(c) || c < 0) {
      throw new FtlError(ErrorCode.SampleCount, `${path} must be an integer ≥ 0 (got ${describe(c)}); report how many training samples each class has`);
    }
    total += c;
    return c;
  });
  if (counts.length !== spec!.shape[0]) fail(`${p}.counts`, `one count per row of the sums (${spec!.shape[0]})`, counts);
  if (!Number.isSafeInteger(total) || total < 1) {
    throw new FtlError(ErrorCode.SampleCount, `${p}.counts add up to ${total}; they must count at least one training sample, and at most 2^53 − 1`);
  }
  let scatter: ClassSumsResult['scatter'];
  if (o['scatter'] !== undefined) {
    scatter = parseEncodedWeights(o['scatter'], `${p}.scatter`);
    const s = scatter.specs[0];
    const d = spec!.shape[1];
    if (scatter.specs.length !== 1 || s!.name !== FEATURE_SCATTER_TENSOR || s!.shape.length !== 2 || s!.shape[0] !== d || s!.shape[1] !== d) {
      fail(`${p}.scatter.specs`, `one tensor named "${FEATURE_SCATTER_TENSOR}" of shape [${d}, ${d}] (featureDim × featureDim)`, scatter.specs);
    }
  }
  return { ...envelope(o, p), sums, counts, ...(scatter ? { scatter } : {}) };
}

/** Validates a `run-end` message. */
export function parseRunEnd(v: unknown): RunEnd {
  const o = obj(v, 'run-end');
  const reason = o['reason'];
  if (reason !== 'completed' && reason !== 'stopped' && reason !== 'failed') fail('run-end.reason', 'completed, stopped or failed', reason);
  const message = o['message'] === undefined ? undefined : str(o['message'], 'run-end.message', 2000);
  return { protocol: protocol(o, 'run-end'), runId: str(o['runId'], 'run-end.runId'), reason, ...(message ? { message } : {}) };
}

/** Validates a `goodbye` message. */
export function parseGoodbye(v: unknown): Goodbye {
  const o = obj(v, 'goodbye');
  const reason = o['reason'];
  if (reason !== 'replaced' && reason !== 'revoked' && reason !== 'shutdown' && reason !== 'misbehaving') {
    fail('goodbye.reason', 'replaced, revoked, shutdown or misbehaving', reason);
  }
  return { protocol: protocol(o, 'goodbye'), reason, message: str(o['message'], 'goodbye.message', 2000) };
}

/** Validates an acknowledgement. */
export function parseAck(v: unknown): Ack {
  const o = obj(v, 'ack');
  if (o['accepted'] === true) return { accepted: true };
  if (o['accepted'] !== false) fail('ack.accepted', 'a boolean', o['accepted']);
  const reason = o['reason'];
  if (!(REJECT_REASONS as readonly unknown[]).includes(reason)) fail('ack.reason', `one of ${REJECT_REASONS.join(', ')}`, reason);
  return { accepted: false, reason: reason as RejectReason, message: str(o['message'], 'ack.message', 2000) };
}

/**
 * Builds a rejection from an error thrown by a validator or a check on a message, by its code:
 * PROTOCOL_MISMATCH → `protocol-mismatch`, WEIGHTS_MISMATCH → `wrong-shape`, NON_FINITE_WEIGHTS →
 * `non-finite`, SAMPLE_COUNT → `bad-sample-count`, DATASET (channel statistics) → `bad-statistics`,
 * anything else → `malformed`.
 */
export function rejectionFor(err: unknown): Rejection {
  if (err instanceof FtlError) {
    const reason: RejectReason =
      err.code === ErrorCode.ProtocolMismatch ? 'protocol-mismatch'
      : err.code === ErrorCode.WeightsMismatch ? 'wrong-shape'
      : err.code === ErrorCode.NonFiniteWeights ? 'non-finite'
      : err.code === ErrorCode.SampleCount ? 'bad-sample-count'
      : err.code === ErrorCode.Dataset ? 'bad-statistics'
      : 'malformed';
    return { accepted: false, reason, message: err.message };
  }
  return { accepted: false, reason: 'malformed', message: err instanceof Error ? err.message : String(err) };
}
