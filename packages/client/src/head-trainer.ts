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
    /** Head layers that stay on this client (personalization); they keep their values between rounds. */
    private readonly localLayers: readonly string[] = [],
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
   * Trains from `weights` (the shared tensors; local layers keep their own values) for `config.epochs`
   * epochs with Adam, shuffling with `config.seed`; with `config.proximalMu` > 0 the FedProx term
   * (μ/2)·‖w − w_global‖² joins the loss. Returns the shared tensors and the last epoch's loss and accuracy.
   */
  async fit(weights: Weights, config: FitConfig): Promise<{ weights: Weights; metrics: FitMetrics }> {
    const t0 = performance.now();
    setTrainableWeights(this.head, weights, this.localLayers);
    const rng = createRng(config.seed);
    const order = Int32Array.from({ length: this.train.n }, (_, i) => i);
    const mu = config.proximalMu ?? 0;
    const optimizer = tf.train.adam(config.learningRate);
    if (mu === 0) this.head.compile({ optimizer, loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    let loss = NaN;
    let accuracy = NaN;
    for (let epoch = 0; epoch < config.epochs; epoch++) {
      shuffleInPlace(order, rng);
      const idx = tf.tensor1d(order, 'int32');
      const x = tf.gather(this.train.x, idx);
      const y = tf.gather(this.train.y, idx);
      if (mu === 0) {
        const h = await this.head.fit(x, y, { epochs: 1, batchSize: config.batchSize, shuffle: false, verbose: 0 });
        loss = Number(h.history['loss']?.[0]);
        accuracy = Number(h.history['acc']?.[0] ?? h.history['accuracy']?.[0]);
      } else {
        ({ loss, accuracy } = this.proximalEpoch(x, y, config.batchSize, mu, optimizer));
      }
      tf.dispose([idx, x, y]);
    }
    optimizer.dispose();
    return { weights: getTrainableWeights(this.head, this.localLayers), metrics: { loss, accuracy, seconds: (performance.now() - t0) / 1000 } };
  }

  /** One epoch of minibatch Adam on cross-entropy + (μ/2)·‖w − w_start‖² over the shared trainable tensors. */
  private proximalEpoch(x: tf.Tensor2D, y: tf.Tensor2D, batchSize: number, mu: number, optimizer: tf.Optimizer): { loss: number; accuracy: number } {
    const shared = this.head.layers.filter((l) => !this.localLayers.includes(l.name)).flatMap((l) => l.trainableWeights);
    const anchors = shared.map((v) => v.read().clone());
    const vars = this.head.trainableWeights.map((v) => (v as unknown as { val: tf.Variable }).val);
    let lossSum = 0;
    let hits = 0;
    for (let start = 0; start < this.train.n; start += batchSize) {
      const size = Math.min(batchSize, this.train.n - start);
      const [batchLoss, batchHits] = tf.tidy(() => {
        const xb = x.slice([start, 0], [size, -1]);
        const yb = y.slice([start, 0], [size, -1]);
        let hitsT: tf.Scalar | undefined;
        const cost = optimizer.minimize(() => {
          const p = this.head.apply(xb, { training: true }) as tf.Tensor2D;
          hitsT = tf.keep(tf.metrics.categoricalAccuracy(yb, p).sum() as tf.Scalar);
          const ce = tf.metrics.categoricalCrossentropy(yb, p).mean();
          const prox = tf.addN(shared.map((v, i) => v.read().sub(anchors[i]!).square().sum()));
          return ce.add(prox.mul(mu / 2)) as tf.Scalar;
        }, true, vars);
        return [cost!.dataSync()[0]! * size, hitsT!.dataSync()[0]!];
      });
      lossSum += batchLoss;
      hits += batchHits;
    }
    tf.dispose(anchors);
    return { loss: lossSum / this.train.n, accuracy: hits / this.train.n };
  }

  /**
   * Post-training personalization: the validation metrics of the global head, then of a copy
   * fine-tuned for `config.epochs` epochs on this client's own training data.
   */
  async personalize(weights: Weights, config: FitConfig): Promise<{ global: { loss: number; accuracy: number }; personal: { loss: number; accuracy: number }; numExamples: number }> {
    const global = this.evaluate(weights);
    const { weights: tuned } = await this.fit(weights, { ...config, proximalMu: 0 });
    const personal = this.evaluate(tuned);
    return { global, personal, numExamples: this.val.n };
  }

  /** Loss and accuracy of `weights` (with this client's local layers) on the local validation split. */
  evaluate(weights: Weights): { loss: number; accuracy: number; numExamples: number } {
    setTrainableWeights(this.head, weights, this.localLayers);
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
