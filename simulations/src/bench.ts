#!/usr/bin/env node
import * as tf from '@tensorflow/tfjs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HeadTrainer, type LocalFitConfig } from '@ftl/client';
import { SMALL_BACKBONE_DIR } from '@ftl/coordinator';
import {
  flagOptions,
  createDefaultBackbone,
  createHead,
  createLogger,
  createRng,
  DEFAULT_FEATURE_LAYER,
  encodeWeights,
  ErrorCode,
  extractFeatures,
  featureExtractor,
  FtlError,
  getTrainableWeights,
  initBackend,
  loadBuiltinDataset,
  numberFlag,
  parseFitResult,
  parsePartition,
  parseStrategy,
  PROTOCOL_VERSION,
  runProgram,
  saveLayersModelToFolder,
  shuffleInPlace,
  subset,
  useWasmSpeedKernels,
  type EncodedWeights,
  type FitResult,
  type HeadConfig,
} from '@ftl/shared';
import { secureAggregationBench } from './secure-aggregation-bench.js';
import { simulate } from './simulate.js';

/** A head trainer on the bench's feature vectors (one of them stands in for the validation split). */
function benchTrainer(config: HeadConfig, features: Float32Array, labels: Int32Array): HeadTrainer {
  return new HeadTrainer(config, {
    trainFeatures: features,
    trainLabels: labels,
    valFeatures: features.subarray(0, config.featureDim),
    valLabels: labels.subarray(0, 1),
  });
}

const HELP = `npm run bench -- [options]
Four measurements, each against a baseline taken in the same run:
1. CNN training throughput (images/s) of the small-fmnist backbone's architecture on the wasm backend (with
   ftl's convolution gradient kernels) against the pure-JS cpu backend: same model, same initial
   weights, same batches.
2. Head training on wasm: one client's round (1,400 MNIST feature vectors from the small-fmnist
   architecture, a 128-unit hidden layer, 10 outputs, batch 32, --epochs epochs): tfjs's
   model.fit on the stock kernels (baseline: the trainer before ftl's speed kernels) against ftl's
   training loop, on the stock kernels and on ftl's transposed-matMul and slice kernels.
3. The feature cache: a one-round federation (the demo's shape: 5 clients, Dirichlet 0.5, MNIST) run
   twice on the same client cache folder; time from start to the end of round 1 and the clients'
   feature preparation, cold cache (baseline) against warm. Once with small-fmnist (and a 128-unit
   head from a random start, the setting these figures were first measured on), once with
   a heavier one of the usual transfer-learning shape (five 3×3 convolutions, global average pooling).
4. Message validation: parsing a fit-result that carries 100,000 float32 values with the schema-derived
   validator against the hand-written one it replaced (baseline); the weights' bytes are checked by
   their length, never value by value.
5. Record-level DP-SGD (only with --only dp): seconds per epoch and per step of the head bench's round
   with ftl's loop (baseline) against DP-SGD (ghost-norm clipping, Gaussian noise from the system's
   secret randomness as a site draws it, Poisson and shuffled batches) in the same run.
6. Secure aggregation (only with --only secagg): bytes into and out of the coordinator and seconds per
   round against plain FedAvg (baseline) in the same run, at 10 and 50 MNIST sites of 60 images (the
   default head, --epochs local epochs, medians of 3 rounds), every site in this thread over the
   in-process hub; at 50 sites also SecAgg+ with 10 neighbours.
  --batches N      timed batches per backend (default 8)
  --batch-size N   (default 64)
  --repeats N      timed passes per backend; the best is kept (default 3)
  --epochs N       local epochs of the federated round and the head bench (default 5, as the demo)
  --only S         run only one: throughput | head | cache | parse | dp | secagg`;

/** Images per second of `batches` SGD steps of the default CNN on `backend` (best of `repeats`). */
async function throughput(backend: 'cpu' | 'wasm', x: tf.Tensor4D, y: tf.Tensor2D, batchSize: number, repeats: number): Promise<number> {
  await tf.setBackend(backend);
  const model = createDefaultBackbone({ seed: 1, classes: 10 });
  model.compile({ optimizer: tf.train.sgd(0.01), loss: 'categoricalCrossentropy' });
  const xs = tf.tensor(x.dataSync(), x.shape) as tf.Tensor4D;
  const ys = tf.tensor(y.dataSync(), y.shape) as tf.Tensor2D;
  await model.trainOnBatch(xs.slice(0, batchSize), ys.slice(0, batchSize)); // warm-up: kernels, buffers
  let best = 0;
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    await model.fit(xs, ys, { batchSize, epochs: 1, shuffle: false, verbose: 0 });
    best = Math.max(best, x.shape[0] / ((performance.now() - t0) / 1000));
  }
  tf.dispose([xs, ys]);
  model.dispose();
  return best;
}

/**
 * Seconds from start to the end of round 1 (features prepared by every client, one round trained and
 * evaluated) for a one-round federation on `cacheDir`; the second call on the same folder hits the cache.
 */
async function firstRound(cacheDir: string, epochs: number, backboneDir?: string): Promise<{ seconds: number; prepareSeconds: number }> {
  const t0 = performance.now();
  let end = NaN;
  const r = await simulate({
    clients: 5,
    partition: parsePartition('dirichlet:0.5'),
    rounds: 1,
    epochs,
    learningRate: 0.001,
    batchSize: 32,
    seed: 1,
    strategy: parseStrategy('fedavg'),
    cacheDir,
    backboneDir: backboneDir ?? SMALL_BACKBONE_DIR,
    hidden: [128],
    headInit: 'random',
    onRound: () => {
      end = performance.now();
    },
  });
  const seconds = (end - t0) / 1000;
  return { seconds, prepareSeconds: seconds - r.summary.rounds[0]!.seconds };
}

runProgram({ help: HELP, flags: flagOptions(['batches', 'batch-size', 'repeats', 'epochs', 'only']) }, async (values) => {
  const batches = numberFlag(values, 'batches', { default: 8, min: 1, integer: true });
  const batchSize = numberFlag(values, 'batch-size', { default: 64, min: 1, integer: true });
  const repeats = numberFlag(values, 'repeats', { default: 3, min: 1, integer: true });
  const only = values['only'];
  if (only !== undefined && !['throughput', 'head', 'cache', 'parse', 'dp', 'secagg'].includes(String(only))) {
    throw new FtlError(ErrorCode.InvalidConfig, `--only must be throughput, head, cache, parse, dp or secagg (got "${String(only)}")`);
  }
  const epochs = numberFlag(values, 'epochs', { default: 5, min: 1, integer: true });
  if (only === 'parse') return parseBench(repeats);
  await initBackend({ force: 'wasm', log: createLogger('bench', { level: 'warn' }) });
  if (only === undefined || only === 'throughput') await throughputBench(batches, batchSize, repeats);
  if (only === undefined || only === 'head') await headBench(epochs, repeats);
  if (only === 'dp') await dpBench(epochs, repeats);
  if (only === 'secagg') {
    const cacheDir = await mkdtemp(join(tmpdir(), 'ftl-bench-secagg-'));
    try {
      await secureAggregationBench({ sizes: [10, 50], rounds: 3, epochs, perSite: 60, neighbours: 10, cacheDir });
    } finally {
      await rm(cacheDir, { recursive: true, force: true });
    }
  }
  if (only === undefined || only === 'cache') {
    process.stdout.write(
      `\nFeature cache: 5 clients (Dirichlet 0.5, all of MNIST's federation pool), 1 round of ${epochs} local epochs, same cache folder twice\n`,
    );
    const rows = [['backbone', 'cache', 'start → end of round 1', 'of which before round 1', 'speed-up']];
    const dir = await mkdtemp(join(tmpdir(), 'ftl-bench-cache-'));
    try {
      const heavy = join(dir, 'heavier-backbone');
      await saveLayersModelToFolder(heavierBackbone(), heavy);
      for (const [name, backboneDir] of [
        ['small-fmnist (0.17 M MAC/image)', undefined],
        ['heavier (22 M MAC/image)', heavy],
      ] as const) {
        const cacheDir = join(dir, `cache-${rows.length}`);
        const cold = await firstRound(cacheDir, epochs, backboneDir);
        const warm = await firstRound(cacheDir, epochs, backboneDir);
        rows.push(
          [name, 'cold (baseline)', `${cold.seconds.toFixed(2)} s`, `${cold.prepareSeconds.toFixed(2)} s`, '1.0×'],
          [name, 'warm (hit)', `${warm.seconds.toFixed(2)} s`, `${warm.prepareSeconds.toFixed(2)} s`, `${(cold.seconds / warm.seconds).toFixed(2)}×`],
        );
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const widths = [26, 15, 22, 23, 8];
    for (const r of rows) process.stdout.write(`| ${r.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |\n`);
  }
  if (only === undefined) parseBench(repeats);
});

async function throughputBench(batches: number, batchSize: number, repeats: number): Promise<void> {
  const ds = subset(
    loadBuiltinDataset('mnist'),
    Array.from({ length: batches * batchSize }, (_, i) => (i * 7) % 10_000),
  );
  const x = tf.tensor4d(ds.images, [ds.n, 28, 28, 1]);
  const y = tf.oneHot(tf.tensor1d(ds.labels, 'int32'), 10) as tf.Tensor2D;
  process.stdout.write(
    `CNN training throughput: small-fmnist (conv 16×5×5/2, conv 32×3×3/2, dense 64, softmax 10), ` +
      `${batches} batches of ${batchSize} 28×28 images, best of ${repeats}\n`,
  );
  const cpu = await throughput('cpu', x, y, batchSize, repeats);
  const wasm = await throughput('wasm', x, y, batchSize, repeats);
  const rows = [
    ['backend', 'images/s', 'vs cpu'],
    ['cpu (baseline)', cpu.toFixed(1), '1.0×'],
    ['wasm + ftl kernels', wasm.toFixed(1), `${(wasm / cpu).toFixed(1)}×`],
  ];
  for (const r of rows) process.stdout.write(`| ${r[0]!.padEnd(18)} | ${r[1]!.padStart(8)} | ${r[2]!.padStart(6)} |\n`);
}

/**
 * A backbone with the shape of the ones transfer learning usually starts from: stacked 3×3 convolutions
 * ending in global average pooling, about 22 M multiply-adds per 28×28 image (small-fmnist: 0.17 M;
 * MobileNetV2 at 224 px: 300 M). Random weights: the cache bench only times it.
 */
function heavierBackbone(): tf.LayersModel {
  const conv = (filters: number, seed: number, inputShape?: number[]) =>
    tf.layers.conv2d({
      filters,
      kernelSize: 3,
      padding: 'same',
      activation: 'relu',
      kernelInitializer: tf.initializers.heNormal({ seed }),
      ...(inputShape ? { inputShape } : {}),
    });
  return tf.sequential({
    name: 'bench_heavier_backbone',
    layers: [
      conv(32, 1, [28, 28, 1]),
      conv(32, 2),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      conv(64, 3),
      conv(64, 4),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      conv(128, 5),
      tf.layers.globalAveragePooling2d({ name: 'features' }),
    ],
  });
}

/** The head the head and DP-SGD benches train: one hidden layer of 128, so the dense kernels have work to time. */
const BENCH_HIDDEN = [128];

/** The head bench's round: 1,400 MNIST feature vectors from the small backbone's architecture and a 128-unit head on them. */
async function headRound(): Promise<{ features: Float32Array; labels: Int32Array; n: number; config: HeadConfig }> {
  const mnist = loadBuiltinDataset('mnist');
  const ds = subset(
    mnist,
    Array.from({ length: 1400 }, (_, i) => (i * 7) % mnist.n),
  );
  const backbone = createDefaultBackbone({ seed: 1, classes: 10 });
  const features = await extractFeatures(featureExtractor(backbone, DEFAULT_FEATURE_LAYER), ds);
  backbone.dispose();
  return { features, labels: ds.labels, n: ds.n, config: { featureDim: features.length / ds.n, hidden: BENCH_HIDDEN, classes: 10 } };
}

/** The best of `repeats` runs: its seconds and what it returned. */
async function bestOf<T>(repeats: number, run: () => Promise<T>): Promise<{ seconds: number; result: T }> {
  let best: { seconds: number; result: T } | undefined;
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    const result = await run();
    const seconds = (performance.now() - t0) / 1000;
    if (!best || seconds < best.seconds) best = { seconds, result };
  }
  return best!;
}

/**
 * Record-level DP-SGD against the plain loop on the head bench's round, both on ftl's kernels: seconds
 * per epoch and per step (DP-SGD takes ⌊n / 32⌋ steps an epoch, the plain loop ⌈n / 32⌉), σ = 1, C = 1,
 * no seed: the noise comes from node's cryptographic generator, as on a site.
 */
async function dpBench(epochs: number, repeats: number): Promise<void> {
  const { features, labels, n, config } = await headRound();
  const fit = { epochs, batchSize: 32, learningRate: 0.001, seed: 1 };
  process.stdout.write(
    `\nDP-SGD: ${n} feature vectors (${config.featureDim} → ${BENCH_HIDDEN.join(' → ')} → 10), ${epochs} epochs of batch 32 ` +
      `with Adam, ftl kernels, σ = 1, C = 1, best of ${repeats}\n`,
  );
  const trainer = benchTrainer(config, features, labels);
  const start = createHead(config, 0);
  const initial = getTrainableWeights(start);
  start.dispose();
  useWasmSpeedKernels(true);
  const run = (dp?: LocalFitConfig['dp']) => () => trainer.fit(initial, dp ? { ...fit, dp } : fit);
  await run()(); // warm-up: kernels, buffers
  const rows = [['trainer', 's/epoch', 's/step', 'last-epoch loss', 'per step vs plain']];
  const plain = await bestOf(repeats, run());
  const plainStep = plain.seconds / (epochs * Math.ceil(n / fit.batchSize));
  rows.push(['plain loop (baseline)', (plain.seconds / epochs).toFixed(3), plainStep.toFixed(4), plain.result.metrics.loss.toFixed(4), '1.00×']);
  for (const sampling of ['poisson', 'shuffle'] as const) {
    const dp = await bestOf(repeats, run({ noiseMultiplier: 1, clipNorm: 1, sampling }));
    const step = dp.seconds / dp.result.privacy!.steps;
    rows.push([
      `DP-SGD, ${sampling}`,
      (dp.seconds / epochs).toFixed(3),
      step.toFixed(4),
      dp.result.metrics.loss.toFixed(4),
      `${(step / plainStep).toFixed(2)}×`,
    ]);
  }
  trainer.dispose();
  const widths = [21, 7, 6, 15, 17];
  for (const r of rows) process.stdout.write(`| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |\n`);
}

/** One client's head-training round on wasm: tfjs fit on stock kernels (baseline) against ftl's loop and kernels. */
async function headBench(epochs: number, repeats: number): Promise<void> {
  const { features, labels, n, config } = await headRound();
  const fit = { epochs, batchSize: 32, learningRate: 0.001, seed: 1 };
  process.stdout.write(
    `\nHead training: ${n} feature vectors (${config.featureDim} → ${BENCH_HIDDEN.join(' → ')} → 10), ` +
      `${epochs} epochs of batch 32 with Adam, best of ${repeats}\n`,
  );

  // The trainer before ftl's speed kernels: tfjs's own fit loop over each epoch's shuffled copy.
  const tfjsFit = async (): Promise<number> => {
    const head = createHead(config, 0);
    head.compile({ optimizer: tf.train.adam(fit.learningRate), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    const x = tf.tensor2d(features, [n, config.featureDim]);
    const y = tf.oneHot(tf.tensor1d(labels, 'int32'), 10) as tf.Tensor2D;
    const order = Int32Array.from({ length: n }, (_, i) => i);
    const rng = createRng(fit.seed);
    let loss = NaN;
    for (let e = 0; e < epochs; e++) {
      shuffleInPlace(order, rng);
      const idx = tf.tensor1d(order, 'int32');
      const [xe, ye] = [tf.gather(x, idx), tf.gather(y, idx)];
      loss = Number((await head.fit(xe, ye, { epochs: 1, batchSize: fit.batchSize, shuffle: false, verbose: 0 })).history['loss']?.[0]);
      tf.dispose([idx, xe, ye]);
    }
    tf.dispose([x, y]);
    head.dispose();
    return loss;
  };
  const ftlLoop = async (): Promise<number> => {
    const trainer = benchTrainer(config, features, labels);
    const start = createHead(config, 0);
    const { metrics } = await trainer.fit(getTrainableWeights(start), fit);
    start.dispose();
    trainer.dispose();
    return metrics.loss;
  };
  const best = async (run: () => Promise<number>): Promise<{ seconds: number; loss: number }> => {
    let result = { seconds: Infinity, loss: NaN };
    for (let r = 0; r < repeats; r++) {
      const t0 = performance.now();
      const loss = await run();
      const seconds = (performance.now() - t0) / 1000;
      if (seconds < result.seconds) result = { seconds, loss };
    }
    return result;
  };
  useWasmSpeedKernels(false);
  const baseline = await best(tfjsFit);
  const loopStock = await best(ftlLoop);
  useWasmSpeedKernels(true);
  const loopFast = await best(ftlLoop);
  const rows = [
    ['trainer', 'seconds', 'last-epoch loss', 'speed-up'],
    ['tfjs fit, stock kernels (baseline)', baseline.seconds.toFixed(2), baseline.loss.toFixed(4), '1.0×'],
    ['ftl loop, stock kernels', loopStock.seconds.toFixed(2), loopStock.loss.toFixed(4), `${(baseline.seconds / loopStock.seconds).toFixed(1)}×`],
    ['ftl loop, ftl kernels', loopFast.seconds.toFixed(2), loopFast.loss.toFixed(4), `${(baseline.seconds / loopFast.seconds).toFixed(1)}×`],
  ];
  for (const r of rows) process.stdout.write(`| ${r[0]!.padEnd(34)} | ${r[1]!.padStart(7)} | ${r[2]!.padStart(15)} | ${r[3]!.padStart(8)} |\n`);
}

/** The hand-written fit-result validator the schemas replaced, kept as the parse bench's baseline. */
function legacyFitResultParser(): (v: unknown) => FitResult {
  type Obj = Record<string, unknown>;
  const fail = (path: string, expected: string): never => {
    throw new FtlError(ErrorCode.InvalidMessage, `${path} must be ${expected}`);
  };
  const obj = (v: unknown, path: string): Obj => {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) fail(path, 'an object');
    return v as Obj;
  };
  const int = (v: unknown, path: string, min = 0): number => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) fail(path, `an integer ≥ ${min}`);
    return v as number;
  };
  const nonNegative = (v: unknown, path: string): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) fail(path, 'a finite number ≥ 0');
    return v as number;
  };
  const str = (v: unknown, path: string, max = 256): string => {
    if (typeof v !== 'string' || v.length === 0 || v.length > max) fail(path, `a non-empty string of at most ${max} characters`);
    return v as string;
  };
  const array = (v: unknown, path: string, max: number): unknown[] => {
    if (!Array.isArray(v) || v.length > max) fail(path, `an array of at most ${max} items`);
    const a = v as unknown[];
    const copy = new Array<unknown>(a.length);
    for (let i = 0; i < a.length; i++) copy[i] = a[i];
    return copy;
  };
  const sampleCount = (v: unknown, path: string): number => {
    if (typeof v !== 'number') fail(path, 'a positive integer');
    if (!Number.isSafeInteger(v) || (v as number) < 1) throw new FtlError(ErrorCode.SampleCount, `${path} must be a positive integer`);
    return v as number;
  };
  const accuracy = (v: unknown, path: string): number => {
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) fail(path, 'a number in [0, 1]');
    return v as number;
  };
  const weights = (v: unknown, path: string): EncodedWeights => {
    const o = obj(v, path);
    const specs = array(o['specs'], `${path}.specs`, 4096).map((s, i) => {
      const so = obj(s, `${path}.specs[${i}]`);
      const shape = array(so['shape'], `${path}.specs[${i}].shape`, 8).map((d, j) => int(d, `${path}.specs[${i}].shape[${j}]`));
      if (so['dtype'] !== 'float32') fail(`${path}.specs[${i}].dtype`, '"float32"');
      return { name: str(so['name'], `${path}.specs[${i}].name`), shape, dtype: 'float32' as const };
    });
    if (!(o['data'] instanceof Uint8Array)) fail(`${path}.data`, 'binary data');
    return { specs, data: o['data'] as Uint8Array };
  };
  return (v: unknown): FitResult => {
    const o = obj(v, 'fit-result');
    if (o['protocol'] !== PROTOCOL_VERSION) throw new FtlError(ErrorCode.ProtocolMismatch, 'fit-result.protocol is another version');
    const m = obj(o['metrics'], 'fit-result.metrics');
    return {
      protocol: PROTOCOL_VERSION,
      runId: str(o['runId'], 'fit-result.runId'),
      round: int(o['round'], 'fit-result.round'),
      modelVersion: int(o['modelVersion'], 'fit-result.modelVersion'),
      weights: weights(o['weights'], 'fit-result.weights'),
      numExamples: sampleCount(o['numExamples'], 'fit-result.numExamples'),
      metrics: {
        loss: nonNegative(m['loss'], 'fit-result.metrics.loss'),
        accuracy: accuracy(m['accuracy'], 'fit-result.metrics.accuracy'),
        seconds: nonNegative(m['seconds'], 'fit-result.metrics.seconds'),
      },
    };
  };
}

/** Microseconds per parse of a fit-result of 100,000 float32 values: the hand-written validator (baseline) against the schema's. */
function parseBench(repeats: number): void {
  const values = new Float32Array(100_000).map((_, i) => Math.sin(i));
  const specs = [
    { name: 'head_dense/kernel', shape: [999, 100], dtype: 'float32' as const },
    { name: 'head_dense/bias', shape: [100], dtype: 'float32' as const },
  ];
  const message: unknown = {
    protocol: PROTOCOL_VERSION,
    runId: 'bench',
    round: 3,
    modelVersion: 2,
    weights: encodeWeights({ specs, values }),
    numExamples: 1200,
    metrics: { loss: 0.42, accuracy: 0.87, seconds: 1.5 },
  };
  const legacyParseFitResult = legacyFitResultParser();
  const iterations = 100_000;
  const time = (parse: (v: unknown) => FitResult): number => {
    const t0 = performance.now();
    for (let i = 0; i < iterations; i++) if (parse(message).numExamples !== 1200) throw new Error('the parsed message differs');
    return ((performance.now() - t0) * 1000) / iterations;
  };
  time(legacyParseFitResult); // warm-up: both reach the optimizing compiler before they are timed
  time(parseFitResult);
  let legacy = Infinity;
  let schema = Infinity;
  for (let r = 0; r < Math.max(repeats, 5); r++) {
    legacy = Math.min(legacy, time(legacyParseFitResult));
    schema = Math.min(schema, time(parseFitResult));
  }
  process.stdout.write(
    `\nMessage validation: a fit-result of 100,000 float32 values (400 KB of weights), ${iterations.toLocaleString('en-US')} parses, best of ${Math.max(repeats, 5)}\n`,
  );
  const rows = [
    ['validator', 'µs/parse', 'vs baseline'],
    ['hand-written (baseline)', legacy.toFixed(2), '1.00×'],
    ['zod schema', schema.toFixed(2), `${(schema / legacy).toFixed(2)}×`],
  ];
  for (const r of rows) process.stdout.write(`| ${r[0]!.padEnd(23)} | ${r[1]!.padStart(8)} | ${r[2]!.padStart(11)} |\n`);
}
