import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  combineTableSummaries,
  compareLabels,
  encodedWidth,
  encodeTable,
  loadCsvTable,
  rawLabels,
  saveLayersModelToFolder,
  sourceLogits,
  splitRawTable,
  splitTypedTable,
  summarizeTable,
  tfjsSeed,
  typeTable,
  type Logger,
  type TableSpec,
} from '@ftl/shared';
import { BACKBONE_META_FILE } from './backbone-meta.js';

/** The layer whose output a tabular encoder's head reads. */
export const TABLE_FEATURE_LAYER = 'features';

/** What {@link pretrainTableBackbone} trains on and how. */
export interface TablePretrainOptions {
  /** The source table (a CSV file). */
  file: string;
  /** Its columns, as a run's `table` block gives them: the encoder takes rows encoded by them. */
  spec: TableSpec;
  /**
   * Train on one part of the rows only: the `fraction` drawn with `seed` (the same rows a study sets aside
   * with `data.table.sourceSplit`, so the sites never hold them).
   */
  sourceSplit?: { fraction: number; seed: number };
  /** Units of the encoder's dense layers; the last one is the feature layer (default [32, 16]). */
  hidden: number[];
  epochs: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  out: string;
  /** The command that made it, for the description. */
  command: string;
  log: Logger;
}

/**
 * The tabular encoder: the encoded row (a 1 × width × 1 input, as the sites' vectors are) flattened, dense
 * ReLU layers (He-initialised, seeded), the last of them `features`, then the source task's softmax.
 */
export function createTableEncoder(width: number, hidden: readonly number[], classes: number, seed: number): tf.Sequential {
  const model = tf.sequential({ name: 'ftl_table_encoder' });
  model.add(tf.layers.flatten({ name: 'flatten', inputShape: [1, width, 1] }));
  hidden.forEach((units, i) =>
    model.add(
      tf.layers.dense({
        name: i === hidden.length - 1 ? TABLE_FEATURE_LAYER : `dense${i + 1}`,
        units,
        activation: 'relu',
        kernelInitializer: tf.initializers.heNormal({ seed: tfjsSeed(seed + i) }),
      }),
    ),
  );
  model.add(sourceLogits(classes, seed + hidden.length));
  return model;
}

/**
 * Pretrains a tabular encoder on a source table and writes it as a backbone folder (TensorFlow.js layers
 * model + `ftl-backbone.json`): the rows are read against `spec`, encoded with their own statistics (as one
 * site's encoding would be), 20 % held out for the reported accuracy. A run with the same columns fixes its
 * own encoding from its sites, so the encoder's input has the same layout with the federation's scaling.
 */
export async function pretrainTableBackbone(o: TablePretrainOptions): Promise<{ testAccuracy: number }> {
  const t0 = performance.now();
  const raw = loadCsvTable(o.file);
  const classes = [...new Set(rawLabels(raw, o.spec))].sort(compareLabels);
  const source = o.sourceSplit ? splitRawTable(raw, o.sourceSplit.fraction, o.sourceSplit.seed)[1] : raw;
  const { train, val: test } = splitTypedTable(typeTable(source, o.spec), { seed: o.seed, valFraction: 0.2 });
  const encoding = combineTableSummaries([{ summary: summarizeTable(train, o.spec), rows: train.labels.length }], o.spec);
  const [trainSet, testSet] = [train, test].map((t) => encodeTable(t, o.spec, encoding, classes));
  const width = encodedWidth(o.spec);
  const model = createTableEncoder(width, o.hidden, classes.length, o.seed);
  model.compile({ optimizer: tf.train.adam(o.learningRate), loss: 'sparseCategoricalCrossentropy', metrics: ['accuracy'] });
  const [xs, ys, xt, yt] = tf.tidy(() => [
    tf.tensor4d(trainSet!.images, [trainSet!.n, 1, width, 1]),
    tf.tensor1d(Float32Array.from(trainSet!.labels)),
    tf.tensor4d(testSet!.images, [testSet!.n, 1, width, 1]),
    tf.tensor1d(Float32Array.from(testSet!.labels)),
  ]);
  try {
    await model.fit(xs!, ys!, {
      epochs: o.epochs,
      batchSize: o.batchSize,
      shuffle: true,
      verbose: 0,
      callbacks: { onEpochEnd: (epoch, logs) => o.log.debug('epoch', { epoch: epoch + 1, loss: logs?.['loss']?.toFixed(4) ?? '' }) },
    });
    const evaluated = model.evaluate(xt!, yt!) as tf.Scalar[];
    const testAccuracy = (await evaluated[1]!.data())[0]!;
    tf.dispose(evaluated);
    const { digest } = await saveLayersModelToFolder(model, o.out);
    const meta = {
      name: 'ftl-table-encoder',
      featureLayer: TABLE_FEATURE_LAYER,
      inputShape: [1, width, 1],
      sha256: digest,
      architecture: { arch: 'mlp', hidden: o.hidden, featureDim: o.hidden.at(-1) },
      source: {
        dataset: o.file,
        table: o.spec,
        ...(o.sourceSplit ? { sourceSplit: o.sourceSplit } : {}),
        classNames: classes,
        trainSamples: trainSet!.n,
        testSamples: testSet!.n,
        epochs: o.epochs,
        batchSize: o.batchSize,
        learningRate: o.learningRate,
        seed: o.seed,
        testAccuracy,
        trainingSeconds: (performance.now() - t0) / 1000,
        backend: tf.getBackend(),
      },
      parameters: { encoder: model.countParams() - model.getLayer('source_logits').countParams() },
      command: o.command,
    };
    await writeFile(join(o.out, BACKBONE_META_FILE), `${JSON.stringify(meta, null, 2)}\n`);
    o.log.info('pretrained', { out: o.out, rows: trainSet!.n, testAccuracy: testAccuracy.toFixed(4) });
    return { testAccuracy };
  } finally {
    tf.dispose([xs!, ys!, xt!, yt!]);
    model.dispose();
  }
}
