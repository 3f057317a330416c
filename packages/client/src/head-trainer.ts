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
import {
  checkDpSgdConfig,
  DpRandom,
  type DpSgdConfig,
  type DpSgdSpent,
  dpSchedule,
  PerExampleClipper,
  privateGradient,
  variableOf,
} from './dp-sgd.js';

/**
 * A round's training settings as the trainer takes them: the wire's {@link FitConfig}, and the site's
 * own record-level DP-SGD settings when it trains privately.
 */
export type LocalFitConfig = FitConfig & { dp?: DpSgdConfig };

/** The tensors one training changes, by the optimizer that steps them. */
interface TrainedVariables {
  /** Head and local layers: `optimizer`. */
  head: tf.Variable[];
  /** Unfrozen backbone layers: `backboneOptimizer` (none without one). */
  backbone: tf.Variable[];
  /** The shared tensors (all but local layers): what FedProx anchors. */
  shared: tf.LayerVariable[];
}

/** Features and labels of one local split, as tensors kept for the whole run. */
interface Split {
  x: tf.Tensor2D;
  y: tf.Tensor2D;
  n: number;
}

/** What every step of one training uses: the trained tensors, FedProx's anchors and the optimizers. */
interface StepContext {
  vars: TrainedVariables;
  /** FedProx: the shared tensors' values as received, the global model ({@link anchorAtGlobal}; empty when μ = 0). */
  anchors: tf.Tensor[];
  mu: number;
  optimizer: tf.Optimizer;
  backboneOptimizer: tf.Optimizer | undefined;
}

/**
 * FedProx's anchors: the shared tensors as they are now, which is the global model the round sent, since
 * the trainer takes them once, before the first step. Every local step of every epoch is then pulled
 * towards the global weights, as FedProx's local objective h(w) = F(w) + (μ/2)·‖w − w_global‖² asks.
 */
function anchorAtGlobal(s: StepContext): void {
  if (s.mu <= 0) return;
  tf.dispose(s.anchors);
  s.anchors = s.vars.shared.map((v) => v.read().clone());
}

function toSplit(features: Float32Array, labels: Int32Array, inputDim: number, config: HeadConfig): Split {
  const n = labels.length;
  return {
    x: tf.tensor2d(features, [n, inputDim]),
    y: tf.oneHot(tf.tensor1d(labels, 'int32'), config.classes) as tf.Tensor2D,
    n,
  };
}

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
   * (μ/2)·‖w − w_global‖² joins the loss, anchored at the weights received for every epoch. Unfrozen backbone layers get their own Adam at
   * `learningRate × backboneLrFactor` (discriminative learning rates; factor 0 leaves them as received).
   * With `config.dp` every step is DP-SGD instead (see {@link DpSgdConfig}), and `privacy` says what it
   * spent. Returns the shared tensors and the last epoch's loss and accuracy; `onEpoch` hears each epoch's.
   *
   * @throws FtlError(INVALID_CONFIG) for unusable `dp` settings or a model DP-SGD cannot train, before any step.
   */
  async fit(
    weights: Weights,
    config: LocalFitConfig,
    onEpoch?: (epoch: number, metrics: { loss: number; accuracy: number }) => void,
  ): Promise<{ weights: Weights; metrics: FitMetrics; privacy?: DpSgdSpent }> {
    const t0 = performance.now();
    const factor = config.backboneLrFactor ?? 1;
    const vars = this.trainedVariables(this.backboneLayers.length > 0 && factor > 0);
    // DP settings and the model are checked before anything changes.
    const dp = config.dp
      ? { config: checkDpSgdConfig(config.dp), clipper: PerExampleClipper.for(this.model, [...vars.head, ...vars.backbone]) }
      : undefined;
    setTrainableWeights(this.model, weights, this.localLayers);
    const mu = config.proximalMu ?? 0;
    const optimizer = tf.train.adam(config.learningRate);
    const backboneOptimizer = vars.backbone.length > 0 ? tf.train.adam(config.learningRate * factor) : undefined;
    const s: StepContext = { vars, anchors: [], mu, optimizer, backboneOptimizer };
    anchorAtGlobal(s);
    try {
      if (dp) {
        const { metrics, privacy } = await this.fitPrivately(dp.config, dp.clipper, config, s, onEpoch);
        return {
          weights: getTrainableWeights(this.model, this.localLayers),
          metrics: { ...metrics, seconds: (performance.now() - t0) / 1000 },
          privacy,
        };
      }
      const rng = createRng(config.seed);
      const order = Int32Array.from({ length: this.train.n }, (_, i) => i);
      let loss = NaN;
      let accuracy = NaN;
      for (let epoch = 0; epoch < config.epochs; epoch++) {
        shuffleInPlace(order, rng);
        const idx = tf.tensor1d(order, 'int32');
        const x = tf.gather(this.train.x, idx);
        const y = tf.gather(this.train.y, idx);
        ({ loss, accuracy } = await this.epoch(x, y, config.batchSize, s));
        tf.dispose([idx, x, y]);
        onEpoch?.(epoch + 1, { loss, accuracy });
      }
      return { weights: getTrainableWeights(this.model, this.localLayers), metrics: { loss, accuracy, seconds: (performance.now() - t0) / 1000 } };
    } finally {
      tf.dispose(s.anchors);
      optimizer.dispose();
      backboneOptimizer?.dispose();
    }
  }

  /**
   * The tensors that train: head (and local) layers always, unfrozen backbone layers when they have an
   * optimizer; without one they get no gradient and stay as they are.
   */
  private trainedVariables(backboneTrains: boolean): TrainedVariables {
    const isBackbone = (l: tf.layers.Layer) => this.backboneLayers.includes(l.name);
    const of = (layers: tf.layers.Layer[]) => layers.flatMap((l) => l.trainableWeights).map(variableOf);
    return {
      head: of(this.model.layers.filter((l) => !isBackbone(l))),
      backbone: backboneTrains ? of(this.model.layers.filter(isBackbone)) : [],
      shared: this.model.layers.filter((l) => !this.localLayers.includes(l.name)).flatMap((l) => l.trainableWeights),
    };
  }

  /**
   * The loss terms that depend on the weights alone: the layers' regularisation and (μ/2)·‖w − w_anchor‖².
   * Read from the layers: a sequential model lists its layers' losses only once it has been applied.
   */
  private regularisation(s: StepContext): tf.Scalar {
    let total: tf.Scalar = tf.scalar(0);
    for (const r of this.model.layers.flatMap((l) => l.calculateLosses())) total = total.add(r);
    if (s.mu > 0) total = total.add(tf.addN(s.vars.shared.map((v, i) => v.read().sub(s.anchors[i]!).square().sum())).mul(s.mu / 2));
    return total;
  }

  /**
   * One epoch of minibatch Adam on cross-entropy + {@link regularisation} over the trained tensors. Head
   * (and local) layers step with `optimizer`, unfrozen backbone layers with `backboneOptimizer`. Gives the
   * event loop a turn between batches now and then, so the client keeps answering pings while it trains.
   */
  private async epoch(x: tf.Tensor2D, y: tf.Tensor2D, batchSize: number, s: StepContext): Promise<{ loss: number; accuracy: number }> {
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
          return (tf.metrics.categoricalCrossentropy(yb, p).mean() as tf.Scalar).add(this.regularisation(s));
        }, [...s.vars.head, ...s.vars.backbone]);
        this.apply(s, grads);
        const batchHits = hitsT!.dataSync()[0]!;
        hitsT!.dispose();
        return [value.dataSync()[0]! * size, batchHits];
      });
      lossSum += batchLoss;
      hits += batchHits;
      await breathe();
    }
    return { loss: lossSum / this.train.n, accuracy: hits / this.train.n };
  }

  /** Steps the head (and local) layers with `optimizer` and the backbone layers with theirs. */
  private apply(s: StepContext, grads: tf.NamedTensorMap): void {
    const pick = (vars: tf.Variable[]) => Object.fromEntries(vars.map((v) => [v.name, grads[v.name]!]));
    s.optimizer.applyGradients(pick(s.vars.head));
    if (s.backboneOptimizer) s.backboneOptimizer.applyGradients(pick(s.vars.backbone));
  }

  /**
   * `config.epochs` epochs of DP-SGD with Adam: each step's gradient is the private mean of clipped
   * per-example cross-entropy gradients ({@link privateGradient}), to which the gradient of
   * {@link regularisation} is added: L2 and FedProx depend on the weights alone, not on any example, so
   * they need no clipping and no noise. Local layers train privately too: they are part of every
   * example's clipped gradient, so nothing a site keeps or sends escapes the accounting.
   *
   * The reported loss and accuracy are the training examples' own, computed without noise: they are not
   * covered by the privacy guarantee.
   */
  private async fitPrivately(
    dp: DpSgdConfig,
    clipper: PerExampleClipper,
    config: LocalFitConfig,
    s: StepContext,
    onEpoch?: (epoch: number, metrics: { loss: number; accuracy: number }) => void,
  ): Promise<{ metrics: { loss: number; accuracy: number }; privacy: DpSgdSpent }> {
    const trained = [...s.vars.head, ...s.vars.backbone];
    const n = this.train.n;
    const { expectedBatchSize, sampleRate, stepsPerEpoch } = dpSchedule(n, config.batchSize);
    const sampling = dp.seed === undefined ? DpRandom.secret() : DpRandom.seeded(dp.seed, 1);
    const noise = dp.seed === undefined ? DpRandom.secret() : DpRandom.seeded(dp.seed, 2);
    const noiseBuffer = new Float32Array(trained.reduce((k, v) => k + v.size, 0));
    const regularised = s.mu > 0 || this.model.layers.some((l) => l.losses.length > 0);
    const step = { clipNorm: dp.clipNorm, noiseMultiplier: dp.noiseMultiplier, expectedBatchSize };
    const order = Int32Array.from({ length: n }, (_, i) => i);
    const breathe = eventLoopYielder(this.options.yieldEveryMs);
    let metrics = { loss: NaN, accuracy: NaN };
    for (let epoch = 0; epoch < config.epochs; epoch++) {
      if (dp.sampling === 'shuffle') sampling.shuffle(order);
      let lossSum = 0;
      let hits = 0;
      let seen = 0;
      for (let k = 0; k < stepsPerEpoch; k++) {
        const batch =
          dp.sampling === 'poisson' ? sampling.poisson(n, sampleRate) : order.subarray(k * expectedBatchSize, (k + 1) * expectedBatchSize);
        const [batchLoss, batchHits] = tf.tidy(() => {
          const idx = tf.tensor1d(batch, 'int32');
          const xb = tf.gather(this.train.x, idx);
          const yb = tf.gather(this.train.y, idx);
          const { grads, lossSum, hits } = privateGradient(clipper, xb, yb, step, noise, noiseBuffer);
          const named: tf.NamedTensorMap = Object.fromEntries(trained.map((v, i) => [v.name, grads[i]!]));
          let penalty = 0;
          if (regularised) {
            // + 0 × a trained tensor: tfjs refuses a function that reaches none of the variables (a penalty on frozen layers only).
            const { value, grads: extra } = tf.variableGrads(() => this.regularisation(s).add(trained[0]!.sum().mul(0)), trained);
            for (const [name, g] of Object.entries(extra)) if (g) named[name] = named[name]!.add(g);
            penalty = value.dataSync()[0]!;
          }
          this.apply(s, named);
          return [lossSum.dataSync()[0]! + batch.length * penalty, hits.dataSync()[0]!];
        });
        lossSum += batchLoss;
        hits += batchHits;
        seen += batch.length;
        await breathe();
      }
      // A Poisson epoch of a tiny split may see no example: then score the weights on the whole split.
      metrics = seen > 0 ? { loss: lossSum / seen, accuracy: hits / seen } : this.score(this.train);
      onEpoch?.(epoch + 1, metrics);
    }
    const privacy: DpSgdSpent = {
      noiseMultiplier: dp.noiseMultiplier,
      sampleRate,
      steps: config.epochs * stepsPerEpoch,
      clipNorm: dp.clipNorm,
      sampling: dp.sampling,
      expectedBatchSize,
      stepsPerEpoch,
    };
    return { metrics, privacy };
  }

  /**
   * Post-training personalization: the validation metrics of the global head, then of a copy
   * fine-tuned for `config.epochs` epochs on this client's own training data (with `config.dp`, by
   * DP-SGD, and `privacy` says what it spent).
   */
  async personalize(
    weights: Weights,
    config: LocalFitConfig,
  ): Promise<{
    global: { loss: number; accuracy: number };
    personal: { loss: number; accuracy: number };
    numExamples: number;
    privacy?: DpSgdSpent;
  }> {
    const global = this.evaluate(weights);
    const { weights: tuned, privacy } = await this.fit(weights, { ...config, proximalMu: 0 });
    const personal = this.evaluate(tuned);
    return { global, personal, numExamples: this.val.n, ...(privacy ? { privacy } : {}) };
  }

  /** Loss and accuracy of `weights` (with this client's local layers) on the local validation split. */
  evaluate(weights: Weights): { loss: number; accuracy: number; numExamples: number } {
    setTrainableWeights(this.model, weights, this.localLayers);
    return { ...this.score(this.val), numExamples: this.val.n };
  }

  /** Cross-entropy and accuracy of the model as it is on `split`. */
  private score(split: Split): { loss: number; accuracy: number } {
    return tf.tidy(() => {
      const probs = this.model.predict(split.x) as tf.Tensor2D;
      const loss = tf.metrics.categoricalCrossentropy(split.y, probs).mean().dataSync()[0]!;
      const accuracy = tf.metrics.categoricalAccuracy(split.y, probs).mean().dataSync()[0]!;
      return { loss, accuracy };
    });
  }

  /** Frees the tensors. */
  dispose(): void {
    tf.dispose([this.train.x, this.train.y, this.val.x, this.val.y]);
    this.model.dispose();
  }
}
