#!/usr/bin/env node
import { fileURLToPath } from 'node:url';
import { createLogger, ErrorCode, FtlError, numberFlag, parseFlags, runMain, stringFlag } from '@ftl/shared';
import { pretrainBackbone } from './pretrain.js';

const DEFAULT_OUT = fileURLToPath(new URL('../backbone', import.meta.url));

const HELP = `npm run pretrain -- [options]
Pretrains the default backbone (a small CNN) on Fashion-MNIST and saves it as a TensorFlow.js layers model.
  --out DIR            where to write the model (default: packages/coordinator/backbone)
  --samples N          training images (default 60000: all but the test images)
  --epochs N           passes over them (default 10)
  --filters A,B        filters of the two convolutions (default 16,32)
  --batch-size N       (default 64)
  --lr X               Adam learning rate (default 0.002)
  --test-samples N     held-out Fashion-MNIST images for the reported accuracy (default 10000)
  --seed N             (default 1)
Trains on tfjs-node when it loads, else on wasm (with ftl's convolution gradient kernels), else pure-JS cpu.`;

function parseFilters(text: string): [number, number] {
  const f = text.split(',').map(Number);
  if (f.length !== 2 || f.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new FtlError(ErrorCode.InvalidConfig, `--filters must be two positive integers like 8,16 (got "${text}")`);
  }
  return [f[0]!, f[1]!];
}

runMain(async () => {
  const values = parseFlags(process.argv.slice(2), {
      out: { type: 'string' }, samples: { type: 'string' }, filters: { type: 'string' }, epochs: { type: 'string' }, 'batch-size': { type: 'string' },
      lr: { type: 'string' }, 'test-samples': { type: 'string' }, seed: { type: 'string' }, help: { type: 'boolean' },
    });
  if (values['help']) {
    process.stdout.write(HELP + '\n');
    return;
  }
  await pretrainBackbone({
    out: stringFlag(values, 'out', DEFAULT_OUT),
    samples: numberFlag(values, 'samples', { default: 60_000, min: 100, integer: true }),
    epochs: numberFlag(values, 'epochs', { default: 10, min: 1, integer: true }),
    filters: parseFilters(stringFlag(values, 'filters', '16,32')),
    batchSize: numberFlag(values, 'batch-size', { default: 64, min: 1, integer: true }),
    learningRate: numberFlag(values, 'lr', { default: 0.002, min: 0 }),
    testSamples: numberFlag(values, 'test-samples', { default: 10_000, min: 100, max: 30_000, integer: true }),
    seed: numberFlag(values, 'seed', { default: 1, integer: true }),
    log: createLogger('pretrain'),
    progress: (line) => process.stdout.write(line + '\n'),
  });
});
