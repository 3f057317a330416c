import * as tf from '@tensorflow/tfjs';
import { loadExportedModel } from '@ftl/coordinator';
import { federationSplit, keepClasses, loadBuiltinDataset, type BuiltinDatasetName } from '@ftl/shared';

/**
 * Accuracy of an exported global model (backbone + head, either export layout, with its input
 * normalisation if the run had one) on the dataset's held-out test set, which no client ever loads.
 */
export async function holdoutAccuracy(
  modelDir: string,
  dataset: BuiltinDatasetName = 'mnist',
  classes?: readonly number[],
): Promise<{ accuracy: number; n: number }> {
  // A task made of some classes is cut first and then split, exactly as its sites' shards are
  // (loadClientShard on the cut dataset), so the held-out images are ones no site holds.
  const data = loadBuiltinDataset(dataset);
  const { test } = federationSplit(classes ? keepClasses(data, classes) : data);
  const model = await loadExportedModel(modelDir);
  const accuracy = tf.tidy(() => {
    const x = tf.tensor4d(test.images, [test.n, test.height, test.width, test.channels]);
    const predicted = model.predict(x).argMax(1);
    return predicted.equal(tf.tensor1d(test.labels, 'int32')).mean().dataSync()[0]!;
  });
  model.dispose();
  return { accuracy, n: test.n };
}
