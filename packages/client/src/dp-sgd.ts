import { randomFillSync } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import { createRng, deriveSeed, ErrorCode, FtlError, GaussianNoise, noiseMultiplierFor, type RecordPrivacy } from '@ftl/shared';

// Record-level differential privacy for local training: DP-SGD (Abadi et al., 2016). Every step takes a
// sample of the site's examples, clips each example's gradient to L2 norm C (over all trained tensors
// together), sums the clipped gradients, adds Gaussian noise of standard deviation σ·C to every
// coordinate, and divides by the expected batch size. What one step releases is then the sampled
// Gaussian mechanism with sensitivity C, whose privacy `RdpAccountant` (`@ftl/shared/fl`) adds up.
//
// Dense layers never materialise a per-example gradient: for z = a·W + b the gradient of example i is
// aᵢᵀδᵢ (δᵢ = ∂ℓᵢ/∂zᵢ), of squared norm ‖aᵢ‖²·‖δᵢ‖², and its bias's ‖δᵢ‖² ("ghost norms"), so one
// batched forward and backward pass gives every norm, and the clipped sum is Aᵀ·diag(c)·Δ. Any other
// trained layer (a convolution or a batch normalisation of fine-tuning) takes one backward pass per
// example instead: correct, and slower.

/** How DP-SGD draws each step's examples. */
export type DpSampling = 'poisson' | 'shuffle';

/**
 * Record-level DP-SGD settings for one local training (`HeadTrainer.fit`'s `dp`).
 *
 * Privacy holds only if the randomness is secret from whoever sees the update: leave `seed` out in a
 * deployment, and the sampling and the noise come from the operating system's cryptographic generator.
 * A seed makes a run repeat (simulations, tests), and anyone who knows or guesses it (32 bits) can
 * subtract the noise; never pass the coordinator's round seed.
 *
 * @example
 * await trainer.fit(global, { ...config, dp: { noiseMultiplier: 1.1, clipNorm: 1, sampling: 'poisson' } });
 */
export interface DpSgdConfig {
  /** σ ≥ 0: the noise's standard deviation is σ × `clipNorm`. 0 clips without noise, which is no privacy (an accountant refuses it). */
  noiseMultiplier: number;
  /** C > 0: each example's gradient over all trained tensors together is scaled to L2 norm at most C. */
  clipNorm: number;
  /**
   * `poisson`: each step holds each example independently with probability q = batchSize / n (a fresh
   * draw per step, so a step's size varies), ⌊n / batchSize⌋ steps per epoch; this is what the RDP
   * accountant's analysis covers. `shuffle`: ⌊n / batchSize⌋ batches of exactly batchSize examples from
   * each epoch's shuffled order (the rest of the order sits the epoch out). Shuffled batches are accounted
   * as if they were Poisson samples of the same rate, which is the common practice and not a proof:
   * the ε reported is the Poisson analysis's.
   */
  sampling: DpSampling;
  /** An integer: makes the sampling and the noise repeat (not private against anyone who knows it; see above). */
  seed?: number;
}

/**
 * What one DP-SGD training spent, for a site's accountant:
 * `accountant.step({ noiseMultiplier, sampleRate, steps })`. Every step ran the sampled Gaussian
 * mechanism with the same `sampleRate` and `noiseMultiplier`.
 */
export interface DpSgdSpent {
  /** σ of every step. */
  noiseMultiplier: number;
  /** q = expectedBatchSize / n of every step. */
  sampleRate: number;
  /** Noisy steps taken (every epoch's), each one release of the mechanism. */
  steps: number;
  /** C of every step. */
  clipNorm: number;
  sampling: DpSampling;
  /** q·n: what every step's noisy sum was divided by. */
  expectedBatchSize: number;
  stepsPerEpoch: number;
}

const SAMPLINGS: readonly DpSampling[] = ['poisson', 'shuffle'];

/**
 * `dp` checked: a one-line FtlError(INVALID_CONFIG) for the first setting that is not usable.
 *
 * @throws FtlError(INVALID_CONFIG) for σ not a finite number ≥ 0, C not a finite number > 0, an unknown
 * sampling, or a seed that is not an integer.
 */
export function checkDpSgdConfig(dp: DpSgdConfig): DpSgdConfig {
  const got = (v: unknown) => (typeof v === 'string' ? `"${v}"` : String(v));
  const fail = (message: string): never => {
    throw new FtlError(ErrorCode.InvalidConfig, message);
  };
  if (typeof dp !== 'object' || dp === null) fail(`dp must be an object with noiseMultiplier, clipNorm and sampling (got ${got(dp)})`);
  const { noiseMultiplier, clipNorm, sampling, seed } = dp;
  if (typeof noiseMultiplier !== 'number' || !Number.isFinite(noiseMultiplier) || noiseMultiplier < 0) {
    fail(`dp.noiseMultiplier must be a finite number ≥ 0 (got ${got(noiseMultiplier)}); noiseMultiplierFor finds the σ that spends an (ε, δ) budget`);
  }
  if (typeof clipNorm !== 'number' || !Number.isFinite(clipNorm) || clipNorm <= 0) {
    fail(`dp.clipNorm must be a finite number > 0 (got ${got(clipNorm)}); it bounds each example's gradient norm, e.g. 1`);
  }
  if (!SAMPLINGS.includes(sampling)) fail(`dp.sampling must be "poisson" or "shuffle" (got ${got(sampling)})`);
  if (seed !== undefined && !Number.isSafeInteger(seed)) {
    fail(`dp.seed must be an integer (got ${got(seed)}); leave it out so the noise comes from the system's secret randomness`);
  }
  return dp;
}

/**
 * Each step's expected size b = min(batchSize, n), the sample rate q = b / n, and ⌊n / b⌋ steps per
 * epoch, the same for both samplings.
 */
export function dpSchedule(n: number, batchSize: number): { expectedBatchSize: number; sampleRate: number; stepsPerEpoch: number } {
  const expectedBatchSize = Math.min(batchSize, n);
  return { expectedBatchSize, sampleRate: expectedBatchSize / n, stepsPerEpoch: Math.floor(n / expectedBatchSize) };
}

/**
 * The σ this site trains a run's DP-SGD with: the run's own, or, when the run gives an ε target instead,
 * the smallest σ whose ε at the run's δ stays within it over every epoch the run may ask
 * (`plannedEpochs` × ⌊n / b⌋ steps at q = b / n). A site with more records samples a smaller share of
 * them per step, so it reaches the same ε with less noise.
 *
 * @throws FtlError(INVALID_CONFIG) when the mechanism gives neither, or no σ up to 10⁶ keeps the target.
 */
export function noiseMultiplierOf(mechanism: RecordPrivacy, n: number, batchSize: number): number {
  if (mechanism.noiseMultiplier !== undefined) return mechanism.noiseMultiplier;
  const { targetEpsilon, plannedEpochs } = mechanism;
  if (targetEpsilon === undefined || plannedEpochs === undefined) {
    throw new FtlError(
      ErrorCode.InvalidMessage,
      'the run asks for record-level DP with neither a noiseMultiplier nor a targetEpsilon and plannedEpochs; the coordinator must send one or the other',
    );
  }
  const { sampleRate, stepsPerEpoch } = dpSchedule(n, batchSize);
  return noiseMultiplierFor({ epsilon: targetEpsilon, delta: mechanism.delta, sampleRate, steps: plannedEpochs * stepsPerEpoch });
}

const TWO_POW_32 = 4294967296;

/**
 * The randomness of DP-SGD: which examples a step takes and the noise it adds (the Gaussian noise of
 * {@link GaussianNoise}, on the same words). {@link DpRandom.secret} reads the operating system's
 * cryptographic generator (what privacy needs); {@link DpRandom.seeded} runs the project's seeded
 * generator, so a run repeats.
 */
export class DpRandom extends GaussianNoise {
  private constructor(fill: (words: Uint32Array) => void) {
    super(fill);
  }

  /** Secret randomness: node's `randomFillSync`. */
  static secret(): DpRandom {
    return new DpRandom((words) => randomFillSync(words));
  }

  /** Repeatable randomness from `seed`; `stream` gives independent generators of one seed (sampling, noise). */
  static override seeded(seed: number, stream = 0): DpRandom {
    const rng = createRng(deriveSeed(seed, 0xd95d, stream));
    return new DpRandom((words) => {
      // `next()` is a 32-bit word divided by 2³²: multiplying back is exact.
      for (let i = 0; i < words.length; i++) words[i] = rng.next() * TWO_POW_32;
    });
  }

  /** A Poisson sample of 0 … n−1: each index independently with probability q, in increasing order. */
  poisson(n: number, q: number): Int32Array {
    const w = this.words(n);
    const threshold = q * TWO_POW_32;
    const picked = new Int32Array(n);
    let size = 0;
    for (let i = 0; i < n; i++) if (w[i]! < threshold) picked[size++] = i;
    return picked.slice(0, size);
  }

  /** Fisher–Yates shuffle of `items` in place. */
  shuffle(items: Int32Array): Int32Array {
    const w = this.words(items.length);
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor((w[i]! / TWO_POW_32) * (i + 1));
      const t = items[i]!;
      items[i] = items[j]!;
      items[j] = t;
    }
    return items;
  }
}

/** Σᵢ cᵢ·gᵢ over a batch, with what was learned on the way. Tensors belong to the caller. */
export interface ClippedSum {
  /** The clipped sum per trained tensor, in the order the clipper was given them. */
  sums: tf.Tensor[];
  /** ‖gᵢ‖ over all trained tensors, per example, before clipping. */
  norms: tf.Tensor1D;
  /** Σᵢ cross-entropy of example i (no regularisation). */
  lossSum: tf.Scalar;
  /** Examples whose most probable class is the label. */
  hits: tf.Scalar;
}

/** How a clipper finds per-example gradients: ghost norms through dense layers, or a backward pass per example. */
export type PerExampleMethod = 'ghost' | 'per-example';

/** A dense layer of the part that ghost norms run through. */
interface DenseStep {
  kind: 'dense';
  kernel: tf.Variable;
  bias: tf.Variable | undefined;
  activation: 'relu' | 'linear' | 'softmax';
  /** Positions of the kernel and the bias among the trained tensors (−1: not trained, held fixed). */
  kernelAt: number;
  biasAt: number;
}

/** A dropout right after a relu dense layer. */
interface DropoutStep {
  kind: 'dropout';
  layer: tf.layers.Layer;
  keep: number;
}

type TailStep = DenseStep | DropoutStep;

/** The tfjs variable behind a layer variable (tfjs types keep it private). */
export const variableOf = (v: tf.LayerVariable): tf.Variable => (v as unknown as { val: tf.Variable }).val;

const classOf = (layer: tf.layers.Layer) => layer.getClassName();

/** Clipping factor min(1, C / ‖g‖); 1 for a zero gradient. */
function clipFactor(norms: tf.Tensor, clipNorm: number): tf.Tensor {
  return tf.minimum(1, tf.div(clipNorm, tf.maximum(norms, 1e-30)));
}

/**
 * Per-example gradients of a model's cross-entropy, each clipped to norm C, summed: the core of a
 * DP-SGD step. Built for one model and one set of trained tensors ({@link PerExampleClipper.for}); it
 * reads the variables' current values at every call.
 *
 * Ghost norms serve when every layer from the first trained one up is dense (relu or linear, softmax
 * last), with dropout only right after a relu layer; the layers below are applied as they are. Any other
 * trained layer gets one backward pass per example. Regularisation terms (L2, FedProx) depend on the
 * weights alone, not on any example: they are not in this sum, and the trainer adds their gradient to
 * the noisy mean outside it.
 */
export class PerExampleClipper {
  private constructor(
    readonly method: PerExampleMethod,
    private readonly model: tf.LayersModel,
    private readonly trained: readonly tf.Variable[],
    /** Ghost: layers below the first trained one, applied in order. */
    private readonly prefix: readonly tf.layers.Layer[],
    /** Ghost: the dense (and dropout) layers from the first trained one to the output. */
    private readonly tail: readonly TailStep[],
  ) {}

  /**
   * The clipper for `model` training `trained`.
   *
   * @throws FtlError(INVALID_CONFIG) in one line when a layer's examples cannot be told apart (a batch
   * normalisation that uses batch statistics), when the model does not end in softmax probabilities, or
   * when nothing is trained.
   */
  static for(model: tf.LayersModel, trained: readonly tf.Variable[]): PerExampleClipper {
    if (trained.length === 0) throw new FtlError(ErrorCode.InvalidConfig, 'DP-SGD has no trained tensor to clip; train at least the head');
    const layers = model.layers.filter((l) => classOf(l) !== 'InputLayer');
    const last = layers.at(-1);
    if (last?.getConfig()['activation'] !== 'softmax') {
      throw new FtlError(
        ErrorCode.InvalidConfig,
        `DP-SGD needs a model that ends in softmax probabilities (its per-example loss is cross-entropy), but "${last?.name}" does not`,
      );
    }
    for (const layer of layers) {
      // The trainable network's batch normalisations always use their stored statistics: `freezeStatistics`
      // replaces the layer's own `call`. Any other batch normalisation mixes a batch's examples while it trains.
      if (classOf(layer) === 'BatchNormalization' && !Object.hasOwn(layer, 'call')) {
        throw new FtlError(
          ErrorCode.InvalidConfig,
          `DP-SGD cannot train with layer "${layer.name}" (BatchNormalization with batch statistics mixes examples, so no per-example gradient exists); freeze its statistics or leave it out`,
        );
      }
    }
    const inTrained = new Map(trained.map((v, i) => [v, i]));
    const at = (layer: tf.layers.Layer, part: string) => {
      const v = layer.trainableWeights.find((w) => w.originalName.endsWith(`/${part}`));
      return v ? { variable: variableOf(v), index: inTrained.get(variableOf(v)) ?? -1 } : undefined;
    };
    const first = layers.findIndex((l) => l.trainableWeights.some((v) => inTrained.has(variableOf(v))));
    const tail = first < 0 || !isChain(model, layers) ? undefined : ghostTail(layers.slice(first), at);
    // Every trained tensor must be a kernel or a bias of the tail, or the sum would miss it.
    const covered = new Set(tail?.flatMap((s) => (s.kind === 'dense' ? [s.kernelAt, s.biasAt] : [])).filter((i) => i >= 0));
    return tail && covered.size === trained.length
      ? new PerExampleClipper('ghost', model, trained, layers.slice(0, first), tail)
      : new PerExampleClipper('per-example', model, trained, [], []);
  }

  /**
   * Σᵢ min(1, C/‖gᵢ‖)·gᵢ over the rows of `x` (features) and `y` (one-hot labels), with the norms, the
   * summed loss and the hits. An empty batch gives zeros.
   */
  clippedSum(x: tf.Tensor2D, y: tf.Tensor2D, clipNorm: number): ClippedSum {
    if (x.shape[0] === 0) {
      return { sums: this.trained.map((v) => tf.zerosLike(v)), norms: tf.zeros([0]), lossSum: tf.scalar(0), hits: tf.scalar(0) };
    }
    return this.method === 'ghost' ? this.ghost(x, y, clipNorm) : this.perExample(x, y, clipNorm);
  }

  private ghost(x: tf.Tensor2D, y: tf.Tensor2D, clipNorm: number): ClippedSum {
    let a: tf.Tensor = x;
    for (const layer of this.prefix) a = layer.apply(a, { training: true }) as tf.Tensor;
    // Forward: each step's input, and a dense layer's pre-activation z.
    const seen: Array<{ input: tf.Tensor; z?: tf.Tensor; out: tf.Tensor }> = [];
    for (const step of this.tail) {
      const input = a;
      if (step.kind === 'dense') {
        const product = tf.matMul(input, step.kernel);
        const z = step.bias ? product.add(step.bias) : product;
        const out = step.activation === 'relu' ? tf.relu(z) : step.activation === 'softmax' ? tf.softmax(z) : z;
        seen.push({ input, z, out });
        a = out;
      } else {
        a = step.layer.apply(input, { training: true }) as tf.Tensor;
        seen.push({ input, out: a });
      }
    }
    const top = seen.at(-1)!;
    const lossSum = tf.metrics.categoricalCrossentropy(y, top.out).sum() as tf.Scalar;
    const hits = tf.metrics.categoricalAccuracy(y, top.out).sum() as tf.Scalar;
    // δ at the logits through the same softmax and loss the batch trainer differentiates: row i is ∂ℓᵢ/∂zᵢ.
    let dz = tf.grad((z: tf.Tensor) => tf.metrics.categoricalCrossentropy(y, tf.softmax(z)).sum())(top.z!);
    // Backward: ∂ℓᵢ/∂zᵢ of every dense layer, top down.
    const grads: Array<{ step: DenseStep; input: tf.Tensor; dz: tf.Tensor }> = [];
    let dOut: tf.Tensor | undefined;
    for (let k = this.tail.length - 1; k >= 0; k--) {
      const step = this.tail[k]!;
      const { input, z, out } = seen[k]!;
      if (step.kind === 'dense') {
        if (dOut) dz = step.activation === 'relu' ? tf.mul(dOut, tf.step(z!)) : dOut;
        grads.push({ step, input, dz });
        if (k > 0) dOut = tf.matMul(dz, step.kernel, false, true);
      } else {
        // out = input·mask/keep; it follows a relu, so where input is 0 the relu's derivative is 0 anyway.
        dOut = tf.mul(dOut!, tf.notEqual(out, 0).cast('float32')).div(step.keep);
      }
    }
    // ‖gᵢ‖² = Σ over layers (‖aᵢ‖² [kernel] + 1 [bias])·‖δᵢ‖².
    const squares = grads.map(({ step, input, dz }) => {
      const dzSquares = dz.square().sum(1);
      const kernel = step.kernelAt >= 0 ? input.square().sum(1) : undefined;
      const weight = kernel && step.biasAt >= 0 ? kernel.add(1) : (kernel ?? (step.biasAt >= 0 ? tf.onesLike(dzSquares) : tf.zerosLike(dzSquares)));
      return weight.mul(dzSquares);
    });
    const norms = (squares.length === 1 ? squares[0]! : tf.addN(squares)).sqrt() as tf.Tensor1D;
    const c = clipFactor(norms, clipNorm).expandDims(1);
    const sums: tf.Tensor[] = new Array(this.trained.length);
    for (const { step, input, dz } of grads) {
      const scaled = dz.mul(c);
      if (step.kernelAt >= 0) sums[step.kernelAt] = tf.matMul(input, scaled, true, false);
      if (step.biasAt >= 0) sums[step.biasAt] = scaled.sum(0);
    }
    return { sums, norms, lossSum, hits };
  }

  private perExample(x: tf.Tensor2D, y: tf.Tensor2D, clipNorm: number): ClippedSum {
    let sums: tf.Tensor[] = this.trained.map((v) => tf.zerosLike(v));
    const norms: tf.Scalar[] = [];
    const losses: tf.Scalar[] = [];
    const hits: tf.Scalar[] = [];
    for (let i = 0; i < x.shape[0]; i++) {
      const next = tf.tidy(() => {
        const xi = x.slice([i, 0], [1, -1]);
        const yi = y.slice([i, 0], [1, -1]);
        let hit: tf.Scalar | undefined;
        const { value, grads } = tf.variableGrads(() => {
          const p = this.model.apply(xi, { training: true }) as tf.Tensor2D;
          hit = tf.keep(tf.metrics.categoricalAccuracy(yi, p).sum() as tf.Scalar);
          return tf.metrics.categoricalCrossentropy(yi, p).sum() as tf.Scalar;
        }, this.trained as tf.Variable[]);
        // A tensor the loss does not reach has no gradient: zero.
        const g = this.trained.map((v) => grads[v.name] ?? tf.zerosLike(v));
        const norm = tf.addN(g.map((t) => t.square().sum())).sqrt() as tf.Scalar;
        const c = clipFactor(norm, clipNorm);
        const hitCopy = hit!.clone();
        hit!.dispose();
        return { sums: sums.map((s, j) => s.add(g[j]!.mul(c))), norm, loss: value, hit: hitCopy };
      });
      tf.dispose(sums);
      sums = next.sums;
      norms.push(next.norm);
      losses.push(next.loss);
      hits.push(next.hit);
    }
    const result = { sums, norms: tf.stack(norms) as tf.Tensor1D, lossSum: tf.addN(losses), hits: tf.addN(hits) };
    tf.dispose([...norms, ...losses, ...hits]);
    return result;
  }
}

/** Whether every layer takes the previous one's output alone (applying them in order is the model). */
function isChain(model: tf.LayersModel, layers: readonly tf.layers.Layer[]): boolean {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) return false;
  return layers.every((layer, i) => {
    const nodes = layer.inboundNodes;
    const inbound = nodes.length === 1 ? nodes[0]!.inboundLayers : [];
    return inbound.length === 1 && (i === 0 ? classOf(inbound[0]!) === 'InputLayer' : inbound[0] === layers[i - 1]);
  });
}

/** The steps ghost norms run through, or undefined when a layer from the first trained one up is of another kind. */
function ghostTail(
  layers: readonly tf.layers.Layer[],
  at: (layer: tf.layers.Layer, part: string) => { variable: tf.Variable; index: number } | undefined,
): TailStep[] | undefined {
  const steps: TailStep[] = [];
  for (const [i, layer] of layers.entries()) {
    const config = layer.getConfig();
    if (classOf(layer) === 'Dense') {
      const activation = config['activation'];
      const kernel = at(layer, 'kernel');
      const bias = at(layer, 'bias');
      const shape = (layer.input as tf.SymbolicTensor).shape;
      const known = layer.trainableWeights.length === (bias ? 2 : 1);
      const fits = activation === 'relu' || activation === 'linear' || (activation === 'softmax' && i === layers.length - 1);
      if (!kernel || !known || !fits || shape.length !== 2) return undefined;
      steps.push({
        kind: 'dense',
        kernel: kernel.variable,
        bias: bias?.variable,
        activation: activation as DenseStep['activation'],
        kernelAt: kernel.index,
        biasAt: bias?.index ?? -1,
      });
    } else if (classOf(layer) === 'Dropout') {
      const before = steps.at(-1);
      if (before?.kind !== 'dense' || before.activation !== 'relu' || config['noiseShape'] != null) return undefined;
      steps.push({ kind: 'dropout', layer, keep: 1 - (config['rate'] as number) });
    } else return undefined;
  }
  return steps;
}

/** One DP-SGD step's settings. */
export interface NoisyStep {
  clipNorm: number;
  noiseMultiplier: number;
  /** What the noisy sum is divided by: q·n, whatever the sample's own size. */
  expectedBatchSize: number;
}

/**
 * One step's private gradient: (Σᵢ clipped gᵢ + N(0, (σC)²)) / (q·n) per trained tensor, noise drawn
 * from `random`; with the batch's summed loss and hits. Call it inside `tf.tidy`.
 */
export function privateGradient(
  clipper: PerExampleClipper,
  x: tf.Tensor2D,
  y: tf.Tensor2D,
  step: NoisyStep,
  random: DpRandom,
  noise?: Float32Array,
): { grads: tf.Tensor[]; lossSum: tf.Scalar; hits: tf.Scalar } {
  const { sums, lossSum, hits } = clipper.clippedSum(x, y, step.clipNorm);
  const std = step.noiseMultiplier * step.clipNorm;
  const size = sums.reduce((n, s) => n + s.size, 0);
  const buffer = std > 0 ? random.gaussian(noise && noise.length === size ? noise : new Float32Array(size), std) : undefined;
  let offset = 0;
  const grads = sums.map((s) => {
    const noisy = buffer ? s.add(tf.tensor(buffer.subarray(offset, offset + s.size), s.shape)) : s;
    offset += s.size;
    return noisy.div(step.expectedBatchSize);
  });
  return { grads, lossSum, hits };
}
