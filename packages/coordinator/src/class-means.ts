import {
  classMeanHead,
  decodeWeights,
  discriminantHead,
  eventLoopYielder,
  ErrorCode,
  firstNonFinite,
  FtlError,
  HEAD_LAYER_PREFIX,
  shapeSize,
  type ClassSumsResult,
  type HeadConfig,
  type Weights,
} from '@ftl/shared';
import { headInitProblem, MAX_DISCRIMINANT_FEATURES, type HeadInit } from './run-config.js';

/**
 * The store event of a run's head initialisation (`headInit: "class-means"`): the sites that answered,
 * the pooled count per class, and the output layer it gave. Written once, before round 1; a resumed run
 * finds it and never asks the sites again. Logs show the counts only.
 */
export const HEAD_INIT_EVENT = 'head-init';

/** One site's accepted answer to `class-sums`: its sums as float32 and its counts (and its within-class scatter when asked). */
export interface SiteClassSums {
  sums: Float32Array;
  counts: number[];
  scatter?: Float32Array;
}

/**
 * Refuses a head initialisation the run cannot do, when the run is built: class means set a linear head
 * on the pretrained backbone's features.
 *
 * @throws FtlError(INVALID_CONFIG) saying what to change.
 */
export function assertHeadInit(config: { headInit?: HeadInit; fineTuning: { mode: string } }, head: HeadConfig): void {
  const problem = headInitProblem(config.headInit, head.hidden, config.fineTuning.mode);
  if (problem) throw new FtlError(ErrorCode.InvalidConfig, `headInit: ${problem}`);
  if (config.headInit === 'discriminant' && head.featureDim > MAX_DISCRIMINANT_FEATURES) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `headInit: discriminant needs featureDim² values from every site, and this backbone's features have ${head.featureDim} values ` +
        `(at most ${MAX_DISCRIMINANT_FEATURES}); use class-means, or a featureLayer with fewer values`,
    );
  }
}

/** Bytes of the largest `class-sums-result` a run with `headInit` asks for (envelope included). */
export function classSumsMessageBytes(headInit: HeadInit | undefined, head: HeadConfig): number {
  if (headInit !== 'class-means' && headInit !== 'discriminant') return 0;
  const d = head.featureDim;
  return 4 * (head.classes * d + (headInit === 'discriminant' ? d * d : 0)) + 64 * 1024;
}

/**
 * Content checks of a site's `class-sums-result` against the run: the sums' shape is `[classes,
 * featureDim]` (`wrong-shape`), every value is finite (`non-finite`), the counts add up to at most the
 * training samples the site declared at ready (`bad-sample-count`), a class counted 0 has a zero sum, and
 * no class's mean value is larger in magnitude than `maxAbsValue` (the trust policy's bound on a value;
 * 0 = none) (`bad-statistics`: sums that contradict their counts, or that no feature extractor gives).
 */
export function checkClassSums(
  msg: ClassSumsResult,
  head: HeadConfig,
  declaredNumTrain: number | undefined,
  maxAbsValue = 0,
  wantScatter = false,
): SiteClassSums {
  const { classes, featureDim } = head;
  const shape = msg.sums.specs[0]!.shape;
  if (shape[0] !== classes || shape[1] !== featureDim || msg.counts.length !== classes) {
    throw new FtlError(
      ErrorCode.WeightsMismatch,
      `class sums of shape [${shape.join(', ')}] with ${msg.counts.length} counts do not fit this run's ${classes} classes × ${featureDim} features; ` +
        "send one sum per class and feature of the features at the run's cut",
    );
  }
  // decodeWeights checks the byte length against the spec before making anything of it.
  const sums = decodeWeights(msg.sums).values;
  const bad = firstNonFinite(sums);
  if (bad >= 0) throw new FtlError(ErrorCode.NonFiniteWeights, `class sum ${bad} is ${sums[bad]}; class sums must be finite`);
  const total = msg.counts.reduce((a, b) => a + b, 0);
  if (declaredNumTrain !== undefined && total > declaredNumTrain) {
    throw new FtlError(
      ErrorCode.SampleCount,
      `class counts add up to ${total}, more than the ${declaredNumTrain} training samples this site declared at ready; count each training sample once`,
    );
  }
  msg.counts.forEach((n, c) => {
    for (let j = 0; j < featureDim; j++) {
      const sum = sums[c * featureDim + j]!;
      if (n === 0 && sum !== 0) {
        throw new FtlError(
          ErrorCode.Dataset,
          `class ${c} is counted 0 but its sum is not zero (value ${j} is ${sum}); sums and counts must describe the same samples`,
        );
      }
      if (maxAbsValue > 0 && Math.abs(sum) > n * maxAbsValue) {
        throw new FtlError(
          ErrorCode.Dataset,
          `class ${c}'s mean value ${j} is ${sum / n}, beyond the run's bound of ${maxAbsValue} on a value (trust.maxAbsValue); send the sums of the features at the run's cut`,
        );
      }
    }
  });
  if (!wantScatter) return { sums, counts: [...msg.counts] };
  return { sums, counts: [...msg.counts], scatter: checkScatter(msg, featureDim, total, maxAbsValue) };
}

/**
 * Content checks of a site's within-class scatter: present, `[featureDim, featureDim]`, finite, symmetric
 * (to float32 rounding), a non-negative diagonal and no off-diagonal value above what its diagonal allows
 * (|S_ab| ≤ √(S_aa·S_bb), as for any sum of outer products), and no variance beyond `maxAbsValue`².
 */
function checkScatter(msg: ClassSumsResult, d: number, total: number, maxAbsValue: number): Float32Array {
  if (!msg.scatter) {
    throw new FtlError(
      ErrorCode.InvalidMessage,
      'this run sets a discriminant head and asked for the within-class scatter, but the answer has none; send class-sums-result.scatter',
    );
  }
  const shape = msg.scatter.specs[0]!.shape;
  if (shape[0] !== d || shape[1] !== d) {
    throw new FtlError(
      ErrorCode.WeightsMismatch,
      `the within-class scatter has shape [${shape.join(', ')}]; this run's features have ${d} values, send [${d}, ${d}]`,
    );
  }
  const s = decodeWeights(msg.scatter).values;
  const bad = firstNonFinite(s);
  if (bad >= 0) throw new FtlError(ErrorCode.NonFiniteWeights, `scatter value ${bad} is ${s[bad]}; the scatter must be finite`);
  for (let a = 0; a < d; a++) {
    const saa = s[a * d + a]!;
    if (saa < 0) throw new FtlError(ErrorCode.Dataset, `scatter diagonal ${a} is ${saa}; a sum of squares cannot be negative`);
    if (maxAbsValue > 0 && saa > total * maxAbsValue * maxAbsValue) {
      throw new FtlError(
        ErrorCode.Dataset,
        `scatter diagonal ${a} is ${saa}, beyond what ${total} samples within the run's bound of ${maxAbsValue} on a value can give`,
      );
    }
    for (let b = a + 1; b < d; b++) {
      const sab = s[a * d + b]!;
      const sba = s[b * d + a]!;
      const bound = Math.sqrt(saa * s[b * d + b]!);
      const slack = 1e-4 * (bound + Math.abs(sab)) + 1e-6;
      if (Math.abs(sab - sba) > slack || Math.abs(sab) > bound + slack) {
        throw new FtlError(
          ErrorCode.Dataset,
          `scatter values [${a}, ${b}] = ${sab} and [${b}, ${a}] = ${sba} are not those of a sum of outer products; send the scatter of the features at the run's cut`,
        );
      }
    }
  }
  return s;
}

/**
 * The pooled within-class scatter of the sites' features, exactly as one pass over their union would give
 * it: the sum of the sites' own scatters plus, per site and class, n_sc·(m_sc − μ_c)(m_sc − μ_c)ᵀ for the
 * site's class mean m_sc and the pooled mean μ_c.
 */
export async function poolWithinScatter(sites: readonly SiteClassSums[], means: Float64Array, head: HeadConfig): Promise<Float64Array> {
  const { classes, featureDim: d } = head;
  const scatter = new Float64Array(d * d);
  const diff = new Float64Array(d);
  const breathe = eventLoopYielder();
  for (const site of sites) {
    const own = site.scatter!;
    for (let k = 0; k < d * d; k++) scatter[k]! += own[k]!;
    for (let c = 0; c < classes; c++) {
      await breathe();
      const n = site.counts[c]!;
      if (n === 0) continue;
      for (let j = 0; j < d; j++) diff[j] = site.sums[c * d + j]! / n - means[c * d + j]!;
      for (let a = 0; a < d; a++) {
        const va = n * diff[a]!;
        if (va === 0) continue;
        for (let b = 0; b < d; b++) scatter[a * d + b]! += va * diff[b]!;
      }
    }
  }
  return scatter;
}

/** The global model with its head set to the pooled shrinkage linear discriminant of the sites' statistics. */
export async function discriminantHeadOf(
  global: Weights,
  sites: readonly SiteClassSums[],
  head: HeadConfig,
): Promise<{ weights: Weights; counts: number[] }> {
  const { means, counts } = poolClassMeans(sites, head);
  return { weights: await discriminantHead(global, means, counts, await poolWithinScatter(sites, means, head)), counts };
}

/** Pooled class means from the sites' sums and counts: what one pass over the union of their features would give. */
export function poolClassMeans(sites: readonly SiteClassSums[], head: HeadConfig): { means: Float64Array; counts: number[] } {
  const { classes, featureDim } = head;
  const sums = new Float64Array(classes * featureDim);
  const counts = new Array<number>(classes).fill(0);
  for (const site of sites) {
    for (let i = 0; i < sums.length; i++) sums[i]! += site.sums[i]!;
    site.counts.forEach((n, c) => (counts[c]! += n));
  }
  counts.forEach((n, c) => {
    if (n > 0) for (let j = 0; j < featureDim; j++) sums[c * featureDim + j]! /= n;
  });
  return { means: sums, counts };
}

const OUTPUT_KERNEL = `${HEAD_LAYER_PREFIX}output/kernel`;
const OUTPUT_BIAS = `${HEAD_LAYER_PREFIX}output/bias`;

/** Where each output tensor lies in `weights.values`. */
function outputSlices(weights: Weights): Record<'kernel' | 'bias', { offset: number; size: number }> {
  const found: Partial<Record<'kernel' | 'bias', { offset: number; size: number }>> = {};
  let offset = 0;
  for (const s of weights.specs) {
    const size = shapeSize(s.shape);
    if (s.name === OUTPUT_KERNEL) found.kernel = { offset, size };
    if (s.name === OUTPUT_BIAS) found.bias = { offset, size };
    offset += size;
  }
  if (!found.kernel || !found.bias) throw new FtlError(ErrorCode.WeightsMismatch, `the global model has no ${OUTPUT_KERNEL} and ${OUTPUT_BIAS}`);
  return found as Record<'kernel' | 'bias', { offset: number; size: number }>;
}

/** The output layer's values, to record the initialised head (plain numbers: float32 values survive JSON exactly). */
export function outputLayerOf(weights: Weights): { kernel: number[]; bias: number[] } {
  const { kernel, bias } = outputSlices(weights);
  return {
    kernel: Array.from(weights.values.subarray(kernel.offset, kernel.offset + kernel.size)),
    bias: Array.from(weights.values.subarray(bias.offset, bias.offset + bias.size)),
  };
}

/**
 * `weights` with the output layer recorded in a {@link HEAD_INIT_EVENT} (other tensors kept), for a run
 * resumed after its head was initialised but before a round was checkpointed.
 *
 * @throws FtlError(WEIGHTS_MISMATCH) when the record does not fit the run's head.
 */
export function withRecordedOutputLayer(weights: Weights, recorded: unknown): Weights {
  const head = (recorded as { head?: { kernel?: unknown; bias?: unknown } } | null)?.head;
  const { kernel, bias } = outputSlices(weights);
  const numbers = (v: unknown, n: number) => Array.isArray(v) && v.length === n && v.every((x) => typeof x === 'number' && Number.isFinite(x));
  if (!head || !numbers(head.kernel, kernel.size) || !numbers(head.bias, bias.size)) {
    throw new FtlError(
      ErrorCode.WeightsMismatch,
      `the recorded ${HEAD_INIT_EVENT} event does not hold an output layer of ${kernel.size} + ${bias.size} finite values; the store is damaged, start the run under another run id`,
    );
  }
  const values = weights.values.slice();
  values.set(head.kernel as number[], kernel.offset);
  values.set(head.bias as number[], bias.offset);
  return { specs: weights.specs, values };
}

/** The global model with its head set to the nearest-class-mean classifier of the pooled sums (classes no site has keep theirs). */
export function classMeansHead(global: Weights, sites: readonly SiteClassSums[], head: HeadConfig): { weights: Weights; counts: number[] } {
  const { means, counts } = poolClassMeans(sites, head);
  return { weights: classMeanHead(global, means, counts), counts };
}
