#!/usr/bin/env node
import * as tf from '@tensorflow/tfjs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createDefaultBackbone, createLogger, ErrorCode, FtlError, initBackend, loadBuiltinDataset, numberFlag, parseFlags,
  parsePartition, parseStrategy, runMain, subset,
} from '@ftl/shared';
import { simulate } from './simulate.js';

const HELP = `npm run bench -- [options]
Two measurements, each against a baseline taken in the same run:
1. CNN training throughput (images/s) of the default backbone's architecture on the wasm backend (with
   ftl's convolution gradient kernels) against the pure-JS cpu backend: same model, same initial
   weights, same batches.
2. The feature cache: a one-round federation (the demo's shape: 5 clients, Dirichlet 0.5, MNIST) run
   twice on the same client cache folder; time from start to the end of round 1 and the clients'
   feature preparation, cold cache (baseline) against warm.
  --batches N      timed batches per backend (default 8)
  --batch-size N   (default 64)
  --repeats N      timed passes per backend; the best is kept (default 3)
  --epochs N       local epochs of the federated round (default 5, as the demo)
  --only S         run only one: throughput | cache`;

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
async function firstRound(cacheDir: string, epochs: number): Promise<{ seconds: number; prepareSeconds: number }> {
  const t0 = performance.now();
  let end = NaN;
  const r = await simulate({
    clients: 5, partition: parsePartition('dirichlet:0.5'), rounds: 1, epochs, learningRate: 0.001, batchSize: 32, seed: 1,
    strategy: parseStrategy('fedavg'), cacheDir,
    onRound: () => {
      end = performance.now();
    },
  });
  const seconds = (end - t0) / 1000;
  return { seconds, prepareSeconds: seconds - r.summary.rounds[0]!.seconds };
}

runMain(async () => {
  const values = parseFlags(process.argv.slice(2), {
    batches: { type: 'string' }, 'batch-size': { type: 'string' }, repeats: { type: 'string' }, epochs: { type: 'string' },
    only: { type: 'string' }, help: { type: 'boolean' },
  });
  if (values['help']) {
    process.stdout.write(HELP + '\n');
    return;
  }
  const batches = numberFlag(values, 'batches', { default: 8, min: 1, integer: true });
  const batchSize = numberFlag(values, 'batch-size', { default: 64, min: 1, integer: true });
  const repeats = numberFlag(values, 'repeats', { default: 3, min: 1, integer: true });
  const only = values['only'];
  if (only !== undefined && only !== 'throughput' && only !== 'cache') throw new FtlError(ErrorCode.InvalidConfig, `--only must be throughput or cache (got "${String(only)}")`);
  await initBackend({ force: 'wasm', log: createLogger('bench', { level: 'warn' }) });
  if (only !== 'cache') await throughputBench(batches, batchSize, repeats);
  if (only !== 'throughput') {
    const epochs = numberFlag(values, 'epochs', { default: 5, min: 1, integer: true });
    const dir = await mkdtemp(join(tmpdir(), 'ftl-bench-cache-'));
    try {
      process.stdout.write(`\nFeature cache: 5 clients (Dirichlet 0.5, all of MNIST's federation pool), 1 round of ${epochs} local epochs, same cache folder twice\n`);
      const cold = await firstRound(dir, epochs);
      const warm = await firstRound(dir, epochs);
      const rows = [
        ['cache', 'start → end of round 1', 'of which before round 1', 'speed-up'],
        ['cold (baseline)', `${cold.seconds.toFixed(2)} s`, `${cold.prepareSeconds.toFixed(2)} s`, '1.0×'],
        ['warm (hit)', `${warm.seconds.toFixed(2)} s`, `${warm.prepareSeconds.toFixed(2)} s`, `${(cold.seconds / warm.seconds).toFixed(2)}×`],
      ];
      for (const r of rows) process.stdout.write(`| ${r[0]!.padEnd(15)} | ${r[1]!.padStart(22)} | ${r[2]!.padStart(23)} | ${r[3]!.padStart(8)} |\n`);
      process.stdout.write(`before round 1 (backbone download, feature extraction or cache read, connecting): ${(cold.prepareSeconds / warm.prepareSeconds).toFixed(2)}× faster warm\n`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
});

async function throughputBench(batches: number, batchSize: number, repeats: number): Promise<void> {
  const ds = subset(loadBuiltinDataset('mnist'), Array.from({ length: batches * batchSize }, (_, i) => i * 7 % 10_000));
  const x = tf.tensor4d(ds.images, [ds.n, 28, 28, 1]);
  const y = tf.oneHot(tf.tensor1d(ds.labels, 'int32'), 10) as tf.Tensor2D;
  process.stdout.write(`CNN training throughput: default backbone (conv 16×5×5/2, conv 32×3×3/2, dense 64, softmax 10), ` +
    `${batches} batches of ${batchSize} 28×28 images, best of ${repeats}\n`);
  const cpu = await throughput('cpu', x, y, batchSize, repeats);
  const wasm = await throughput('wasm', x, y, batchSize, repeats);
  const rows = [['backend', 'images/s', 'vs cpu'], ['cpu (baseline)', cpu.toFixed(1), '1.0×'], ['wasm + ftl kernels', wasm.toFixed(1), `${(wasm / cpu).toFixed(1)}×`]];
  for (const r of rows) process.stdout.write(`| ${r[0]!.padEnd(18)} | ${r[1]!.padStart(8)} | ${r[2]!.padStart(6)} |\n`);
}
