#!/usr/bin/env node
import { fileURLToPath } from 'node:url';
import { flagOptions, createLogger, ErrorCode, FtlError, initBackend, numberFlag, runProgram, stringFlag, type AugmentOptions } from '@ftl/shared';
import { backboneTable, summarizeBackbones } from './backbone-catalog.js';
import { pretrainBackbone, pretrainCommand, PRETRAIN_ARCHS, type PretrainArch, type PretrainOptions } from './pretrain.js';
import { readFileSync } from 'node:fs';
import { pretrainTableBackbone } from './pretrain-table.js';
import { parseRunConfig } from './run-config.js';

const DEFAULT_OUT = fileURLToPath(new URL('../backbone', import.meta.url));

const HELP = `npm run pretrain -- [options]
Pretrains a backbone on Fashion-MNIST and saves it as a TensorFlow.js layers model with ftl-backbone.json.
  --arch small|encoder   small (default): the default backbone, two strided convolutions whose 800 flattened
                         values are the features; encoder: 3×3 convolution blocks with batch normalisation
                         and global average pooling to a compact embedding
  --out DIR              where to write the model (default: packages/coordinator/backbone)
  --samples N            training images (default 60000: all but the test images)
  --classes LIST         Fashion-MNIST classes to pretrain on, e.g. 0,1,2,3,4 (default: all ten)
  --epochs N             passes over them (default 10)
  --filters LIST         small: filters of its two convolutions (default 16,32);
                         encoder: filters of its blocks (default 16,32,64)
  --embedding N          encoder: filters of its last block, pooled into the "features" (default 128)
  --spatial N            encoder: keep the final 4×4 grid instead of pooling it: a 1×1 block of N channels,
                         flattened (16·N values), is the "features" layer
  --shift X              augmentation: random shifts up to X of the side, e.g. 0.1 (default 0: none)
  --flip                 augmentation: mirror left–right with probability 0.5
  --rotation DEG         augmentation: random rotation up to DEG degrees (default 0)
  --batch-size N         (default 64)
  --lr X                 Adam learning rate (default 0.002)
  --final-lr-factor X    cosine decay of the learning rate over the epochs down to X of it (default 1: constant)
  --test-samples N       held-out Fashion-MNIST images for the reported accuracy (default 10000)
  --seed N               (default 1)
Tabular (an MLP encoder on a CSV table instead of Fashion-MNIST):
  --table FILE           the source table; its rows encoded as a tabular run encodes them
  --schema FILE          JSON of the run config's table block ({"columns": [...]}) for its columns
  --source-split F,SEED  train on the fraction F of the rows drawn with SEED only (the rows a study's
                         data.table.sourceSplit sets aside), e.g. 0.5,7
  --hidden LIST          units of the encoder's dense layers, the last one the features (default 32,16)
  (with --epochs (default 60), --batch-size (default 32), --lr (default 0.003), --seed, --out)
  --list                 print the committed backbones (packages/coordinator/backbones/ and the default
                         one) as a markdown table, read from their files, and train nothing
Trains on tfjs-node when it loads, else on wasm (with ftl's convolution gradient kernels), else pure-JS cpu.`;

function parseList(flag: string, text: string, min: number): number[] {
  const list = text.split(',').map((t) => Number(t.trim()));
  if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n < min)) {
    throw new FtlError(ErrorCode.InvalidConfig, `--${flag} must be integers ≥ ${min} separated by commas (got "${text}")`);
  }
  return list;
}

const FLAGS = flagOptions(
  [
    'arch',
    'out',
    'samples',
    'classes',
    'filters',
    'embedding',
    'spatial',
    'epochs',
    'shift',
    'rotation',
    'batch-size',
    'lr',
    'final-lr-factor',
    'test-samples',
    'seed',
    'table',
    'schema',
    'source-split',
    'hidden',
  ],
  ['flip', 'list'],
);

runProgram({ help: HELP, flags: FLAGS }, async (values) => {
  if (values['list']) {
    await initBackend({ log: createLogger('pretrain') });
    process.stdout.write(backboneTable(await summarizeBackbones()));
    return;
  }
  const table = stringFlag(values, 'table');
  if (table !== undefined) {
    await initBackend({ log: createLogger('pretrain') });
    await pretrainTable(values, table);
    return;
  }
  const arch = stringFlag(values, 'arch', 'small');
  if (!(PRETRAIN_ARCHS as readonly string[]).includes(arch)) {
    throw new FtlError(ErrorCode.InvalidConfig, `--arch must be one of ${PRETRAIN_ARCHS.join(', ')} (got "${arch}")`);
  }
  const filters = parseList('filters', stringFlag(values, 'filters', arch === 'small' ? '16,32' : '16,32,64'), 1);
  if (arch === 'small' && filters.length !== 2) {
    throw new FtlError(ErrorCode.InvalidConfig, `--filters of the small backbone must be two integers like 16,32 (got "${filters.join(',')}")`);
  }
  const classesText = stringFlag(values, 'classes');
  const shift = numberFlag(values, 'shift', { default: 0, min: 0, max: 0.49 });
  const rotation = numberFlag(values, 'rotation', { default: 0, min: 0, max: 180 });
  const flip = values['flip'] === true;
  const augment: AugmentOptions | undefined =
    shift > 0 || rotation > 0 || flip
      ? { ...(shift > 0 ? { shift } : {}), ...(flip ? { flip } : {}), ...(rotation > 0 ? { rotation } : {}) }
      : undefined;
  const out = stringFlag(values, 'out');
  const o: Omit<PretrainOptions, 'log' | 'progress' | 'out'> = {
    arch: arch as PretrainArch,
    samples: numberFlag(values, 'samples', { default: 60_000, min: 100, integer: true }),
    epochs: numberFlag(values, 'epochs', { default: 10, min: 1, integer: true }),
    filters,
    embedding: numberFlag(values, 'embedding', { default: 128, min: 1, integer: true }),
    ...(values['spatial'] !== undefined ? { spatial: numberFlag(values, 'spatial', { default: 1, min: 1, integer: true }) } : {}),
    ...(classesText !== undefined ? { classes: parseList('classes', classesText, 0) } : {}),
    ...(augment ? { augment } : {}),
    batchSize: numberFlag(values, 'batch-size', { default: 64, min: 1, integer: true }),
    learningRate: numberFlag(values, 'lr', { default: 0.002, min: 0 }),
    finalLrFactor: numberFlag(values, 'final-lr-factor', { default: 1, min: 0, max: 1 }),
    testSamples: numberFlag(values, 'test-samples', { default: 10_000, min: 100, max: 30_000, integer: true }),
    seed: numberFlag(values, 'seed', { default: 1, integer: true }),
  };
  await pretrainBackbone({
    ...o,
    out: out ?? DEFAULT_OUT,
    command: pretrainCommand({ ...o, ...(out !== undefined ? { out } : {}) }),
    log: createLogger('pretrain'),
    progress: (line) => process.stdout.write(`${line}\n`),
  });
});

/** `--table`: an MLP encoder on a source table, written as a backbone folder with the command that made it. */
async function pretrainTable(values: Parameters<typeof stringFlag>[0], table: string): Promise<void> {
  const schemaFile = stringFlag(values, 'schema');
  if (schemaFile === undefined)
    throw new FtlError(ErrorCode.InvalidConfig, "--table needs --schema FILE: the run config's table block for its columns");
  let schema: unknown;
  try {
    schema = JSON.parse(readFileSync(schemaFile, 'utf8'));
  } catch (err) {
    throw new FtlError(ErrorCode.InvalidConfig, `--schema ${schemaFile}: cannot read it as JSON (${(err as Error).message})`, { cause: err });
  }
  const spec = parseRunConfig({ table: schema }, `--schema ${schemaFile}`).table!;
  const splitText = stringFlag(values, 'source-split');
  let sourceSplit: { fraction: number; seed: number } | undefined;
  if (splitText !== undefined) {
    const [fraction, seed] = splitText.split(',').map(Number);
    if (!(fraction! > 0 && fraction! < 1) || !Number.isInteger(seed) || seed! < 0) {
      throw new FtlError(ErrorCode.InvalidConfig, `--source-split must be "F,SEED" with F in (0, 1) and SEED an integer ≥ 0 (got "${splitText}")`);
    }
    sourceSplit = { fraction: fraction!, seed: seed! };
  }
  const hidden = parseList('hidden', stringFlag(values, 'hidden', '32,16'), 1);
  const out = stringFlag(values, 'out');
  if (out === undefined) throw new FtlError(ErrorCode.InvalidConfig, '--table needs --out DIR (e.g. packages/coordinator/backbones/NAME)');
  const epochs = numberFlag(values, 'epochs', { default: 60, min: 1, integer: true });
  const batchSize = numberFlag(values, 'batch-size', { default: 32, min: 1, integer: true });
  const learningRate = numberFlag(values, 'lr', { default: 0.003, min: 0 });
  const seed = numberFlag(values, 'seed', { default: 1, integer: true });
  const command = [
    `npm run pretrain -- --table ${table} --schema ${schemaFile}`,
    ...(sourceSplit ? [`--source-split ${sourceSplit.fraction},${sourceSplit.seed}`] : []),
    `--hidden ${hidden.join(',')} --epochs ${epochs} --batch-size ${batchSize} --lr ${learningRate} --seed ${seed} --out ${out}`,
  ].join(' ');
  const { testAccuracy } = await pretrainTableBackbone({
    file: table,
    spec,
    ...(sourceSplit ? { sourceSplit } : {}),
    hidden,
    epochs,
    batchSize,
    learningRate,
    seed,
    out,
    command,
    log: createLogger('pretrain'),
  });
  process.stdout.write(`held-out accuracy on the source split: ${(testAccuracy * 100).toFixed(2)}%\nwrote ${out}\n`);
}
