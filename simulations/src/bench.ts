#!/usr/bin/env node
import * as tf from '@tensorflow/tfjs';
import {
  createDefaultBackbone, createLogger, initBackend, loadBuiltinDataset, numberFlag, parseFlags, runMain, subset,
} from '@ftl/shared';

const HELP = `npm run bench -- [options]
Measures, in one run, CNN training throughput (images/s) of the default backbone's architecture on the
wasm backend (with ftl's convolution gradient kernels) against the pure-JS cpu backend: same model,
same initial weights, same batches. Reports the ratio.
  --batches N      timed batches per backend (default 8)
  --batch-size N   (default 64)
  --repeats N      timed passes per backend; the best is kept (default 3)`;

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

runMain(async () => {
  const values = parseFlags(process.argv.slice(2), { batches: { type: 'string' }, 'batch-size': { type: 'string' }, repeats: { type: 'string' }, help: { type: 'boolean' } });
  if (values['help']) {
    process.stdout.write(HELP + '\n');
    return;
  }
  const batches = numberFlag(values, 'batches', { default: 8, min: 1, integer: true });
  const batchSize = numberFlag(values, 'batch-size', { default: 64, min: 1, integer: true });
  const repeats = numberFlag(values, 'repeats', { default: 3, min: 1, integer: true });
  await initBackend({ force: 'wasm', log: createLogger('bench', { level: 'warn' }) });
  const ds = subset(loadBuiltinDataset('mnist'), Array.from({ length: batches * batchSize }, (_, i) => i * 7 % 10_000));
  const x = tf.tensor4d(ds.images, [ds.n, 28, 28, 1]);
  const y = tf.oneHot(tf.tensor1d(ds.labels, 'int32'), 10) as tf.Tensor2D;
  process.stdout.write(`CNN training throughput: default backbone (conv 16×5×5/2, conv 32×3×3/2, dense 64, softmax 10), ` +
    `${batches} batches of ${batchSize} 28×28 images, best of ${repeats}\n`);
  const cpu = await throughput('cpu', x, y, batchSize, repeats);
  const wasm = await throughput('wasm', x, y, batchSize, repeats);
  const rows = [['backend', 'images/s', 'vs cpu'], ['cpu (baseline)', cpu.toFixed(1), '1.0×'], ['wasm + ftl kernels', wasm.toFixed(1), `${(wasm / cpu).toFixed(1)}×`]];
  for (const r of rows) process.stdout.write(`| ${r[0]!.padEnd(18)} | ${r[1]!.padStart(8)} | ${r[2]!.padStart(6)} |\n`);
});
