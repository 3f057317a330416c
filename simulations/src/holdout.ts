import * as tf from '@tensorflow/tfjs';
import { loadExportedModel } from '@ftl/coordinator';
import { federationSplit, keepClasses, loadBuiltinDataset, type BuiltinDatasetName, type ImageDataset } from '@ftl/shared';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EXPORT_META_FILE } from '@ftl/coordinator';
import { encodeTable, ErrorCode, FtlError, typeTable, type RawTable, type TableEncoding, type TableSpec } from '@ftl/shared';

const testSets = new Map<string, ImageDataset>();
const loaded = new Map<BuiltinDatasetName, ImageDataset>();

/** A built-in dataset (loaded once per process), cut to some classes when a task names them. */
export function taskDataset(dataset: BuiltinDatasetName, classes?: readonly number[]): ImageDataset {
  let ds = loaded.get(dataset);
  if (!ds) loaded.set(dataset, (ds = loadBuiltinDataset(dataset)));
  return classes ? keepClasses(ds, classes) : ds;
}
const HELD_OUT_BATCH = 1000;

/**
 * The held-out images of a built-in task: the dataset's test split, which no client ever loads. A task
 * made of some classes is cut first and then split, exactly as its sites' shards are (loadClientShard on
 * the cut dataset), so the held-out images are ones no site holds. Loaded once per process.
 */
export function heldOutSet(dataset: BuiltinDatasetName = 'mnist', classes?: readonly number[]): ImageDataset {
  const key = `${dataset}:${classes?.join(',') ?? 'all'}`;
  let test = testSets.get(key);
  if (!test) {
    // Only the test split stays: a study's coordinator thread need not hold the sites' pool.
    const full = loaded.get(dataset) ?? loadBuiltinDataset(dataset);
    test = federationSplit(classes ? keepClasses(full, classes) : full).test;
    testSets.set(key, test);
  }
  return test;
}

/**
 * Accuracy of an exported global model (backbone + head, either export layout, with its input
 * normalisation if the run had one) on `test`.
 */
export async function heldOutAccuracy(modelDir: string, test: ImageDataset): Promise<number> {
  const model = await loadExportedModel(modelDir);
  const size = test.height * test.width * test.channels;
  let correct = 0;
  try {
    // In batches: 10,000 images at once would hold every layer's activations for all of them.
    for (let from = 0; from < test.n; from += HELD_OUT_BATCH) {
      const n = Math.min(HELD_OUT_BATCH, test.n - from);
      correct += tf.tidy(() => {
        const x = tf.tensor4d(test.images.subarray(from * size, (from + n) * size), [n, test.height, test.width, test.channels]);
        const predicted = model.predict(x).argMax(1);
        return predicted
          .equal(tf.tensor1d(test.labels.subarray(from, from + n), 'int32'))
          .sum()
          .dataSync()[0]!;
      });
    }
    return correct / test.n;
  } finally {
    model.dispose();
  }
}

/** Accuracy of an exported global model on the built-in task's held-out images, and how many there are. */
export async function holdoutAccuracy(
  modelDir: string,
  dataset: BuiltinDatasetName = 'mnist',
  classes?: readonly number[],
): Promise<{ accuracy: number; n: number }> {
  const test = heldOutSet(dataset, classes);
  return { accuracy: await heldOutAccuracy(modelDir, test), n: test.n };
}

/**
 * Accuracy of an exported tabular model on held-out table rows: read against the run's columns and
 * encoded with the encoding the run fixed, both from the export's description, as a user of the model would.
 *
 * @throws FtlError(BACKBONE_LOAD) when the export records no table.
 */
export async function heldOutTableAccuracy(modelDir: string, rows: RawTable): Promise<number> {
  const meta = JSON.parse(await readFile(join(modelDir, EXPORT_META_FILE), 'utf8')) as {
    classes?: string[];
    table?: { spec: TableSpec; encoding: TableEncoding };
  };
  if (!meta.table || !meta.classes) throw new FtlError(ErrorCode.BackboneLoad, `${modelDir} is not the export of a tabular run: it records no table`);
  const test = encodeTable(typeTable(rows, meta.table.spec), meta.table.spec, meta.table.encoding, meta.classes);
  return heldOutAccuracy(modelDir, test);
}
