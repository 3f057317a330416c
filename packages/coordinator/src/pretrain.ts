import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  augmentDataset,
  createDefaultBackbone,
  createRng,
  DEFAULT_FEATURE_LAYER,
  ErrorCode,
  FtlError,
  initBackend,
  loadBuiltinDataset,
  saveLayersModelToFolder,
  shuffleInPlace,
  sourceLogits,
  splitIndices,
  subset,
  tfjsSeed,
  type AugmentOptions,
  type ImageDataset,
  type Logger,
} from '@ftl/shared';
import { BACKBONE_META_FILE, type BackboneMeta } from './backbone-meta.js';

/** The backbone architectures `npm run pretrain` builds. */
export const PRETRAIN_ARCHS = ['small', 'encoder'] as const;
export type PretrainArch = (typeof PRETRAIN_ARCHS)[number];

/** Options of `npm run pretrain`. */
export interface PretrainOptions {
  out: string;
  /** `small`: the default backbone (two strided convolutions, flattened); `encoder`: {@link createEncoderBackbone}. */
  arch: PretrainArch;
  /** Training images drawn from Fashion-MNIST (the rest of the 70,000, less the test set, is unused). */
  samples: number;
  epochs: number;
  /** `small`: filters of its two convolutions; `encoder`: filters of its blocks. */
  filters: number[];
  /** `encoder` only: filters of its last block, the width of the pooled embedding (the `features` layer). */
  embedding: number;
  /** `encoder` only: keep the final 4×4 grid, a 1×1 block of this many channels flattened, instead of pooling. */
  spatial?: number;
  /**
   * Fashion-MNIST classes to pretrain on (indices 0–9), relabelled 0…k−1 in this order; all ten when
   * undefined. Training and held-out images are both limited to them.
   */
  classes?: number[];
  /** Training-time augmentation, a fresh seeded copy of every image each epoch (none when undefined). */
  augment?: AugmentOptions;
  batchSize: number;
  learningRate: number;
  /** Cosine decay of the learning rate over the epochs, down to this share of it (1 = constant). */
  finalLrFactor: number;
  seed: number;
  /** Fashion-MNIST images held out to report source-domain accuracy (before keeping `classes`). */
  testSamples: number;
  log: Logger;
  /** Progress sink (one line per event); stdout in the CLI. */
  progress: (line: string) => void;
  /** The command recorded in the description (default: {@link pretrainCommand} of these options). */
  command?: string;
}

/** `ftl-backbone.json` as `npm run pretrain` writes it: the description plus how the backbone was made and its size. */
export interface PretrainedBackboneMeta extends Omit<BackboneMeta, 'source'> {
  /** The architecture, enough to rebuild it with the same builder. */
  architecture: { arch: PretrainArch; filters: number[]; embedding?: number; spatial?: number; featureDim: number };
  source: NonNullable<BackboneMeta['source']> & {
    /** Fashion-MNIST class indices pretrained on, and their names. */
    classes: number[];
    classNames: string[];
    augment?: AugmentOptions;
    finalLrFactor: number;
  };
  /** Parameters of the encoder (every layer up to the feature layer) and of a 10-class linear head on its features. */
  parameters: { encoder: number; linearHead10: number };
}

/** Options of {@link createEncoderBackbone}. */
export interface EncoderBackboneOptions {
  seed: number;
  /** Classes of the pretraining task (the `source_logits` layer, used only while pretraining). */
  classes: number;
  /**
   * Filters of the convolution blocks (default 16, 32, 64). Each block halves the resolution with a
   * stride of 2 (28×28 → 14×14 → 7×7 → 4×4).
   */
  blocks?: number[];
  /** Filters of the last 3×3 block, at the final resolution; global average pooling makes them the `features` (default 128). */
  embedding?: number;
  /**
   * Keep the final grid instead of pooling it away: a 1×1 block of this many channels, flattened, is the
   * `features` layer (4×4×`spatial` values). Where a shape is matters more in some target tasks (digits)
   * than in the source one.
   */
  spatial?: number;
}

/**
 * A deeper encoder for transfer: strided 3×3 convolution blocks (convolution without bias → batch
 * normalisation → ReLU), a last unstrided block of `embedding` filters,
 * and global average pooling to a compact embedding named {@link DEFAULT_FEATURE_LAYER}. Nearly all the
 * parameters sit in the encoder, so a head on the embedding is small (128 → 10 linear: 1,290 values).
 * The `source_logits` softmax only serves pretraining. Seeded initialisers make pretraining repeatable.
 *
 * @example
 * const model = createEncoderBackbone({ seed: 1, classes: 10, blocks: [16, 32, 64], embedding: 128 });
 */
export function createEncoderBackbone(options: EncoderBackboneOptions): tf.Sequential {
  const { seed, classes } = options;
  const blocks = options.blocks ?? [16, 32, 64];
  const embedding = options.embedding ?? 128;
  const { spatial } = options;
  if (blocks.length === 0 || [...blocks, embedding, spatial ?? 1].some((f) => !Number.isInteger(f) || f < 1)) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `an encoder needs at least one block and positive integer filters (got blocks ${blocks.join(',')}, embedding ${embedding})`,
    );
  }
  const model = tf.sequential({ name: 'ftl_encoder' });
  const block = (i: number, filters: number, strides: number, first: boolean, kernelSize = 3) => {
    model.add(
      tf.layers.conv2d({
        name: `conv${i}`,
        ...(first ? { inputShape: [28, 28, 1] } : {}),
        filters,
        kernelSize,
        strides,
        padding: 'same',
        useBias: false,
        kernelInitializer: tf.initializers.heNormal({ seed: tfjsSeed(seed + i) }),
      }),
    );
    model.add(tf.layers.batchNormalization({ name: `bn${i}`, momentum: 0.9 }));
    model.add(tf.layers.reLU({ name: `relu${i}` }));
  };
  blocks.forEach((filters, i) => block(i + 1, filters, 2, i === 0));
  block(blocks.length + 1, embedding, 1, false);
  if (spatial === undefined) {
    model.add(tf.layers.globalAveragePooling2d({ name: DEFAULT_FEATURE_LAYER }));
  } else {
    block(blocks.length + 2, spatial, 1, false, 1);
    model.add(tf.layers.flatten({ name: DEFAULT_FEATURE_LAYER }));
  }
  model.add(sourceLogits(classes, seed + 100));
  return model;
}

/** Images of `classes` only, relabelled 0…k−1 in that order. */
function onlyClasses(ds: ImageDataset, classes: readonly number[]): ImageDataset {
  const label = new Map(classes.map((c, i) => [c, i]));
  const keep: number[] = [];
  for (let i = 0; i < ds.n; i++) if (label.has(ds.labels[i]!)) keep.push(i);
  const kept = subset(ds, keep);
  return { ...kept, labels: kept.labels.map((l) => label.get(l)!), classes: classes.map((c) => ds.classes[c]!) };
}

function toTensors(ds: ImageDataset, order: ArrayLike<number>): { x: tf.Tensor4D; y: tf.Tensor2D } {
  const s = subset(ds, order);
  return {
    x: tf.tensor4d(s.images, [s.n, s.height, s.width, s.channels]),
    y: tf.oneHot(tf.tensor1d(s.labels, 'int32'), ds.classes.length) as tf.Tensor2D,
  };
}

/** Parameters of the layers up to and including `feature`, and the width of its (flattened) output. */
function encoderSize(model: tf.LayersModel, feature: string): { encoder: number; featureDim: number } {
  const at = model.layers.findIndex((l) => l.name === feature);
  const encoder = model.layers.slice(0, at + 1).reduce((n, l) => n + l.countParams(), 0);
  const shape = model.layers[at]!.outputShape as number[];
  return { encoder, featureDim: shape.slice(1).reduce((a, b) => a * b, 1) };
}

/** The command that repeats a pretraining, with every option that shapes the result. */
export function pretrainCommand(o: Omit<PretrainOptions, 'log' | 'progress' | 'out' | 'command'> & { out?: string }): string {
  const parts = ['npm run pretrain --', `--arch ${o.arch}`];
  if (o.out !== undefined) parts.push(`--out ${o.out}`);
  parts.push(`--samples ${o.samples}`, `--epochs ${o.epochs}`, `--filters ${o.filters.join(',')}`);
  if (o.arch === 'encoder') parts.push(`--embedding ${o.embedding}`);
  if (o.arch === 'encoder' && o.spatial !== undefined) parts.push(`--spatial ${o.spatial}`);
  if (o.classes !== undefined) parts.push(`--classes ${o.classes.join(',')}`);
  if (o.augment?.shift) parts.push(`--shift ${o.augment.shift}`);
  if (o.augment?.flip) parts.push('--flip');
  if (o.augment?.rotation) parts.push(`--rotation ${o.augment.rotation}`);
  parts.push(`--batch-size ${o.batchSize}`, `--lr ${o.learningRate}`);
  if (o.finalLrFactor !== 1) parts.push(`--final-lr-factor ${o.finalLrFactor}`);
  parts.push(`--seed ${o.seed}`);
  return parts.join(' ');
}

/**
 * Pretrains a backbone on Fashion-MNIST (the source domain), all classes or some, and saves it as a
 * TensorFlow.js layers model with an `ftl-backbone.json` description (architecture, feature layer,
 * held-out accuracy, time, parameter counts, command).
 */
export async function pretrainBackbone(o: PretrainOptions): Promise<PretrainedBackboneMeta> {
  const backend = await initBackend({ log: o.log });
  const t0 = performance.now();
  const fashion = loadBuiltinDataset('fashion-mnist', o.log);
  const classes = o.classes ?? fashion.classes.map((_, i) => i);
  if (
    classes.length < 2 ||
    new Set(classes).size !== classes.length ||
    classes.some((c) => !Number.isInteger(c) || c < 0 || c >= fashion.classes.length)
  ) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `pretraining classes must be two or more distinct indices 0–${fashion.classes.length - 1} (got ${classes.join(',')})`,
    );
  }
  const [rest, testIdx] = splitIndices(fashion.n, o.testSamples / fashion.n, o.seed);
  // `rest` is sorted, and the classes are contiguous: shuffle before taking a sample of it.
  const train = onlyClasses(subset(fashion, shuffleInPlace(rest, createRng(o.seed + 1)).slice(0, o.samples)), classes);
  const test = onlyClasses(subset(fashion, testIdx), classes);
  o.progress(
    `pretrain ${o.arch}: ${train.n} Fashion-MNIST training images of classes ${classes.join(',')}, ${test.n} held-out images, backend ${backend}`,
  );

  const model =
    o.arch === 'small'
      ? createDefaultBackbone({ seed: o.seed, classes: classes.length, filters: o.filters as [number, number] })
      : createEncoderBackbone({
          seed: o.seed,
          classes: classes.length,
          blocks: o.filters,
          embedding: o.embedding,
          ...(o.spatial ? { spatial: o.spatial } : {}),
        });
  const { encoder, featureDim } = encoderSize(model, DEFAULT_FEATURE_LAYER);
  o.progress(`  ${model.countParams()} parameters, ${encoder} up to the ${featureDim}-value "${DEFAULT_FEATURE_LAYER}" layer`);
  const optimizer = tf.train.adam(o.learningRate);
  model.compile({ optimizer, loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  const rng = createRng(o.seed + 2);
  const order = Int32Array.from({ length: train.n }, (_, i) => i);
  const trainStart = performance.now();
  for (let epoch = 1; epoch <= o.epochs; epoch++) {
    // Cosine decay: large steps first, small ones to settle (Adam keeps its moments across epochs).
    const lr = o.learningRate * (o.finalLrFactor + (1 - o.finalLrFactor) * 0.5 * (1 + Math.cos((Math.PI * (epoch - 1)) / o.epochs)));
    (optimizer as unknown as { learningRate: number }).learningRate = lr;
    shuffleInPlace(order, rng);
    const data = o.augment === undefined ? train : augmentDataset(train, o.augment, o.seed * 1000 + epoch);
    const { x, y } = toTensors(data, order);
    const batches = Math.ceil(train.n / o.batchSize);
    const h = await model.fit(x, y, {
      epochs: 1,
      batchSize: o.batchSize,
      shuffle: false,
      verbose: 0,
      callbacks: {
        onBatchEnd: async (batch) => {
          if ((batch + 1) % 50 === 0) {
            const s = (performance.now() - trainStart) / 1000;
            o.progress(`  epoch ${epoch}/${o.epochs} batch ${batch + 1}/${batches} (${s.toFixed(0)} s)`);
          }
        },
      },
    });
    x.dispose();
    y.dispose();
    const loss = h.history['loss']?.[0] as number;
    const acc = h.history['acc']?.[0] ?? h.history['accuracy']?.[0];
    o.progress(
      `epoch ${epoch}/${o.epochs}: lr ${lr.toPrecision(3)} loss ${loss.toFixed(4)} train accuracy ${(Number(acc) * 100).toFixed(1)}% ` +
        `(${((performance.now() - trainStart) / 1000).toFixed(0)} s)`,
    );
  }
  const trainingSeconds = (performance.now() - trainStart) / 1000;
  const { x, y } = toTensors(
    test,
    Int32Array.from({ length: test.n }, (_, i) => i),
  );
  const [, accT] = model.evaluate(x, y, { batchSize: 500 }) as tf.Scalar[];
  const testAccuracy = (await accT!.data())[0]!;
  tf.dispose([x, y]);
  const { digest } = await saveLayersModelToFolder(model, o.out);
  model.dispose();
  const meta: PretrainedBackboneMeta = {
    name: o.arch === 'small' ? 'ftl-default-backbone' : 'ftl-encoder-backbone',
    featureLayer: DEFAULT_FEATURE_LAYER,
    inputShape: [28, 28, 1],
    sha256: digest,
    architecture: {
      arch: o.arch,
      filters: o.filters,
      ...(o.arch === 'encoder' ? { embedding: o.embedding } : {}),
      ...(o.arch === 'encoder' && o.spatial ? { spatial: o.spatial } : {}),
      featureDim,
    },
    source: {
      dataset: 'fashion-mnist',
      classes,
      classNames: train.classes.slice(),
      trainSamples: train.n,
      testSamples: test.n,
      epochs: o.epochs,
      batchSize: o.batchSize,
      learningRate: o.learningRate,
      finalLrFactor: o.finalLrFactor,
      ...(o.augment ? { augment: o.augment } : {}),
      seed: o.seed,
      testAccuracy,
      trainingSeconds,
      backend,
    },
    parameters: { encoder, linearHead10: featureDim * 10 + 10 },
    command: o.command ?? pretrainCommand({ ...o, out: undefined }),
  };
  await writeFile(join(o.out, BACKBONE_META_FILE), `${JSON.stringify(meta, null, 2)}\n`);
  o.progress(
    `source-domain (Fashion-MNIST classes ${classes.join(',')}) held-out accuracy ${(testAccuracy * 100).toFixed(2)}% on ${test.n} images; ` +
      `training ${trainingSeconds.toFixed(0)} s, total ${((performance.now() - t0) / 1000).toFixed(0)} s; saved to ${o.out}`,
  );
  return meta;
}
