import * as tf from '@tensorflow/tfjs';
import {
  createHead, createRng, getTrainableWeights, setTrainableWeights, shuffleInPlace,
  type FitConfig, type FitMetrics, type HeadConfig, type Weights,
} from '@ftl/shared';

/** Features and labels of one local split, as tensors kept for the whole run. */
interface Split {
  x: tf.Tensor2D;
  y: tf.Tensor2D;
  n: number;
}

function toSplit(features: Float32Array, labels: Int32Array, config: HeadConfig): Split {
  const n = labels.length;
  return {
    x: tf.tensor2d(features, [n, config.featureDim]),
    y: tf.oneHot(tf.tensor1d(labels, 'int32'), config.classes) as tf.Tensor2D,
    n,
  };
}

/**
 * Trains and evaluates the head on a client's cached backbone features. Features are computed once per
 * run; each round only the head's weights change.
 */
export class HeadTrainer {
  private readonly head: tf.Sequential;
  private readonly train: Split;
  private readonly val: Split;

  constructor(
    readonly config: HeadConfig,
    data: { trainFeatures: Float32Array; trainLabels: Int32Array; valFeatures: Float32Array; valLabels: Int32Array },
  ) {
    this.head = createHead(config, 0);
    this.train = toSplit(data.trainFeatures, data.trainLabels, config);
    this.val = toSplit(data.valFeatures, data.valLabels, config);
  }

  get numTrain(): number {
    return this.train.n;
  }

  get numVal(): number {
    return this.val.n;
  }

  /**
   * Trains from `weights` for `config.epochs` epochs with Adam, shuffling with `config.seed`.
   * Returns the new weights and the last epoch's loss and accuracy.
   */
  async fit(weights: Weights, config: FitConfig): Promise<{ weights: Weights; metrics: FitMetrics }> {
    const t0 = performance.now();
    setTrainableWeights(this.head, weights);
    this.head.compile({ optimizer: tf.train.adam(config.learningRate), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    const rng = createRng(config.seed);
    const order = Int32Array.from({ length: this.train.n }, (_, i) => i);
    let loss = NaN;
    let accuracy = NaN;
    for (let epoch = 0; epoch < config.epochs; epoch++) {
      shuffleInPlace(order, rng);
      const idx = tf.tensor1d(order, 'int32');
      const x = tf.gather(this.train.x, idx);
      const y = tf.gather(this.train.y, idx);
      const h = await this.head.fit(x, y, { epochs: 1, batchSize: config.batchSize, shuffle: false, verbose: 0 });
      tf.dispose([idx, x, y]);
      loss = Number(h.history['loss']?.[0]);
      accuracy = Number(h.history['acc']?.[0] ?? h.history['accuracy']?.[0]);
    }
    return { weights: getTrainableWeights(this.head), metrics: { loss, accuracy, seconds: (performance.now() - t0) / 1000 } };
  }

  /** Loss and accuracy of `weights` on the local validation split. */
  evaluate(weights: Weights): { loss: number; accuracy: number; numExamples: number } {
    setTrainableWeights(this.head, weights);
    return tf.tidy(() => {
      const probs = this.head.predict(this.val.x) as tf.Tensor2D;
      const loss = tf.metrics.categoricalCrossentropy(this.val.y, probs).mean().dataSync()[0]!;
      const accuracy = tf.metrics.categoricalAccuracy(this.val.y, probs).mean().dataSync()[0]!;
      return { loss, accuracy, numExamples: this.val.n };
    });
  }

  /** Frees the tensors. */
  dispose(): void {
    tf.dispose([this.train.x, this.train.y, this.val.x, this.val.y]);
    this.head.dispose();
  }
}
