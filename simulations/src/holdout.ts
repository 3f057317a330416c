import * as tf from '@tensorflow/tfjs';
import { federationSplit, loadBuiltinDataset, loadLayersModelFromFolder, type BuiltinDatasetName } from '@ftl/shared';

/**
 * Accuracy of an exported global model (a TensorFlow.js layers folder: backbone + head) on the dataset's
 * held-out test set, which no client ever loads.
 */
export async function holdoutAccuracy(modelDir: string, dataset: BuiltinDatasetName = 'mnist'): Promise<{ accuracy: number; n: number }> {
  const { test } = federationSplit(loadBuiltinDataset(dataset));
  const model = await loadLayersModelFromFolder(modelDir);
  const accuracy = tf.tidy(() => {
    const x = tf.tensor4d(test.images, [test.n, test.height, test.width, test.channels]);
    const predicted = (model.predict(x, { batchSize: 256 }) as tf.Tensor2D).argMax(1);
    return predicted.equal(tf.tensor1d(test.labels, 'int32')).mean().dataSync()[0]!;
  });
  model.dispose();
  return { accuracy, n: test.n };
}
