import * as tf from '@tensorflow/tfjs';
import {
  createHead,
  createRng,
  eventLoopYielder,
  getTrainableWeights,
  setTrainableWeights,
  shuffleInPlace,
  type FitConfig,
  type FitMetrics,
  type HeadConfig,
  type TrainableNetwork,
  type Weights,
} from '@ftl/shared';

/** Features and labels of one local split, as tensors kept for the whole run. */
interface Split {
  x: tf.Tensor2D;
  y: tf.Tensor2D;
  n: number;
}

function toSplit(features: Float32Array, labels: Int32Array, inputDim: number, config: HeadConfig): Split {
  const n = labels.length;
  return {
    x: tf.tensor2d(features, [n, inputDim]),
    y: tf.oneHot(tf.tensor1d(labels, 'int32'), config.classes) as tf.Tensor2D,
    n,
  };
}

/** The tfjs variable behind a layer variable (tfjs types keep it private). */
const variableOf = (v: tf.LayerVariable) => (v as unknown as { val: tf.Variable }).val;

/**
 * Trains and evaluates the head on a client's cached backbone features. Features are computed once per
 * run; each round only the trained weights change. With a {@link TrainableNetwork} (fine-tuning) the
 * features are the frozen boundary's output and the top backbone layers train too, at the learning rate
 * × `backboneLrFactor`.
 */
export class HeadTrainer {
  private readonly model: tf.LayersModel;
  private readonly train: Split;
  private readonly val: Split;
  /** Unfrozen backbone layers in the model (empty: head only). */
  readonly backboneLayers: readonly string[];

  constructor(
    readonly config: HeadConfig,
    data: { trainFeatures: Float32Array; trainLabels: Int32Array; valFeatures: Float32Array; valLabels: Int32Array },
    /** Head layers that stay on this client (personalization); they keep their values between rounds. */
    private readonly localLayers: readonly string[] = [],
    /** Fine-tuning: the network to train on cached boundary features instead of the head alone (the trainer owns it). */
    network?: TrainableNetwork,
    /** `yieldEveryMs`: give the event loop a turn between batches at least this often (default 50 ms; 0: after every batch). */
    private readonly options: { yieldEveryMs?: number } = {},
  ) {
    this.model = network?.model ?? createHead(config, 0);
    this.backboneLayers = network?.plan.unfrozen ?? [];
    const inputDim = network?.plan.inputDim ?? config.featureDim;
    this.train = toSplit(data.trainFeatures, data.trainLabels, inputDim, config);
    this.val = toSplit(data.valFeatures, data.valLabels, inputDim, config);
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
   * (μ/2)·‖w − w_global‖² joins the loss. Unfrozen backbone layers get their own Adam at
   * `learningRate × backboneLrFactor` (discriminative learning rates; factor 0 leaves them as received).
   * Returns the shared tensors and the last epoch's loss and accuracy; `onEpoch` hears each epoch's.
   */
  async fit(
    weights: Weights,
    config: FitConfig,
    onEpoch?: (epoch: number, metrics: { loss: number; accuracy: number }) => void,
  ): Promise<{ weights: Weights; metrics: FitMetrics }> {
    const t0 = performance.now();
    setTrainableWeights(this.model, weights, this.localLayers);
    const rng = createRng(config.seed);
    const order = Int32Array.from({ length: this.train.n }, (_, i) => i);
    const mu = config.proximalMu ?? 0;
    const factor = config.backboneLrFactor ?? 1;
    const optimizer = tf.train.adam(config.learningRate);
    const backboneOptimizer = this.backboneLayers.length > 0 && factor > 0 ? tf.train.adam(config.learningRate * factor) : undefined;
    let loss = NaN;
    let accuracy = NaN;
    for (let epoch = 0; epoch < config.epochs; epoch++) {
      shuffleInPlace(order, rng);
      const idx = tf.tensor1d(order, 'int32');
      const x = tf.gather(this.train.x, idx);
      const y = tf.gather(this.train.y, idx);
      ({ loss, accuracy } = await this.epoch(x, y, config.batchSize, mu, optimizer, backboneOptimizer));
      tf.dispose([idx, x, y]);
      onEpoch?.(epoch + 1, { loss, accuracy });
    }
    optimizer.dispose();
    backboneOptimizer?.dispose();
    return { weights: getTrainableWeights(this.model, this.localLayers), metrics: { loss, accuracy, seconds: (performance.now() - t0) / 1000 } };
  }

  /**
   * One epoch of minibatch Adam on cross-entropy + the model's regularisation losses + (μ/2)·‖w − w_start‖²
   * over the shared trainable tensors. Head (and local) layers step with `optimizer`, unfrozen backbone
   * layers with `backboneOptimizer`; without one they get no gradient and stay as they are. Gives the
   * event loop a turn between batches now and then, so the client keeps answering pings while it trains.
   */
  private async epoch(
    x: tf.Tensor2D,
    y: tf.Tensor2D,
    batchSize: number,
    mu: number,
    optimizer: tf.Optimizer,
    backboneOptimizer?: tf.Optimizer,
  ): Promise<{ loss: number; accuracy: number }> {
    const isBackbone = (l: tf.layers.Layer) => this.backboneLayers.includes(l.name);
    const shared = this.model.layers.filter((l) => !this.localLayers.includes(l.name)).flatMap((l) => l.trainableWeights);
    const anchors = mu > 0 ? shared.map((v) => v.read().clone()) : [];
    const headVars = this.model.layers
      .filter((l) => !isBackbone(l))
      .flatMap((l) => l.trainableWeights)
      .map(variableOf);
    const backboneVars = backboneOptimizer
      ? this.model.layers
          .filter(isBackbone)
          .flatMap((l) => l.trainableWeights)
          .map(variableOf)
      : [];
    const pick = (grads: tf.NamedTensorMap, vars: tf.Variable[]) => Object.fromEntries(vars.map((v) => [v.name, grads[v.name]!]));
    let lossSum = 0;
    let hits = 0;
    const breathe = eventLoopYielder(this.options.yieldEveryMs);
    for (let start = 0; start < this.train.n; start += batchSize) {
      const size = Math.min(batchSize, this.train.n - start);
      const [batchLoss, batchHits] = tf.tidy(() => {
        const xb = x.slice([start, 0], [size, -1]);
        const yb = y.slice([start, 0], [size, -1]);
        let hitsT: tf.Scalar | undefined;
        const { value, grads } = tf.variableGrads(() => {
          const p = this.model.apply(xb, { training: true }) as tf.Tensor2D;
          hitsT = tf.keep(tf.metrics.categoricalAccuracy(yb, p).sum() as tf.Scalar);
          let total = tf.metrics.categoricalCrossentropy(yb, p).mean() as tf.Scalar;
          for (const r of this.model.calculateLosses()) total = total.add(r);
          if (mu > 0) total = total.add(tf.addN(shared.map((v, i) => v.read().sub(anchors[i]!).square().sum())).mul(mu / 2));
          return total;
        }, [...headVars, ...backboneVars]);
        optimizer.applyGradients(pick(grads, headVars));
        if (backboneOptimizer) backboneOptimizer.applyGradients(pick(grads, backboneVars));
        return [value.dataSync()[0]! * size, hitsT!.dataSync()[0]!];
      });
      lossSum += batchLoss;
      hits += batchHits;
      await breathe();
    }
    tf.dispose(anchors);
    return { loss: lossSum / this.train.n, accuracy: hits / this.train.n };
  }

  /**
   * Post-training personalization: the validation metrics of the global head, then of a copy
   * fine-tuned for `config.epochs` epochs on this client's own training data.
   */
  async personalize(
    weights: Weights,
    config: FitConfig,
  ): Promise<{ global: { loss: number; accuracy: number }; personal: { loss: number; accuracy: number }; numExamples: number }> {
    const global = this.evaluate(weights);
    const { weights: tuned } = await this.fit(weights, { ...config, proximalMu: 0 });
    const personal = this.evaluate(tuned);
    return { global, personal, numExamples: this.val.n };
  }

  /** Loss and accuracy of `weights` (with this client's local layers) on the local validation split. */
  evaluate(weights: Weights): { loss: number; accuracy: number; numExamples: number } {
    setTrainableWeights(this.model, weights, this.localLayers);
    return tf.tidy(() => {
      const probs = this.model.predict(this.val.x) as tf.Tensor2D;
      const loss = tf.metrics.categoricalCrossentropy(this.val.y, probs).mean().dataSync()[0]!;
      const accuracy = tf.metrics.categoricalAccuracy(this.val.y, probs).mean().dataSync()[0]!;
      return { loss, accuracy, numExamples: this.val.n };
    });
  }

  /** Frees the tensors. */
  dispose(): void {
    tf.dispose([this.train.x, this.train.y, this.val.x, this.val.y]);
    this.model.dispose();
  }
}
