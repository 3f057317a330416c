import {
  CLASS_SUMS_TENSOR, classMeanHead, decodeWeights, ErrorCode, firstNonFinite, FtlError, HEAD_LAYER_PREFIX, shapeSize,
  type ClassSumsResult, type HeadConfig, type Weights,
} from '@ftl/shared';
import { headInitProblem, type HeadInit } from './run-config.js';

/**
 * The store event of a run's head initialisation (`headInit: "class-means"`): the sites that answered,
 * the pooled count per class, and the output layer it gave. Written once, before round 1; a resumed run
 * finds it and never asks the sites again. Logs show the counts only.
 */
export const HEAD_INIT_EVENT = 'head-init';

/** One site's accepted answer to `class-sums`: its sums as float32 and its counts. */
export interface SiteClassSums {
  sums: Float32Array;
  counts: number[];
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
}

/**
 * Content checks of a site's `class-sums-result` against the run: the sums' shape is `[classes,
 * featureDim]` (`wrong-shape`), every value is finite (`non-finite`), the counts add up to at most the
 * training samples the site declared at ready (`bad-sample-count`), a class counted 0 has a zero sum, and
 * no class's mean value is larger in magnitude than `maxAbsValue` (the trust policy's bound on a value;
 * 0 = none) (`bad-statistics`: sums that contradict their counts, or that no feature extractor gives).
 */
export function checkClassSums(msg: ClassSumsResult, head: HeadConfig, declaredNumTrain: number | undefined, maxAbsValue = 0): SiteClassSums {
  const { classes, featureDim } = head;
  const shape = msg.sums.specs[0]!.shape;
  if (shape[0] !== classes || shape[1] !== featureDim || msg.counts.length !== classes) {
    throw new FtlError(
      ErrorCode.WeightsMismatch,
      `class sums of shape [${shape.join(', ')}] with ${msg.counts.length} counts do not fit this run's ${classes} classes × ${featureDim} features; ` +
        'send one sum per class and feature of the features at the run\'s cut',
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
        throw new FtlError(ErrorCode.Dataset, `class ${c} is counted 0 but its sum is not zero (value ${j} is ${sum}); sums and counts must describe the same samples`);
      }
      if (maxAbsValue > 0 && Math.abs(sum) > n * maxAbsValue) {
        throw new FtlError(ErrorCode.Dataset, `class ${c}'s mean value ${j} is ${sum / n}, beyond the run's bound of ${maxAbsValue} on a value (trust.maxAbsValue); send the sums of the features at the run's cut`);
      }
    }
  });
  return { sums, counts: [...msg.counts] };
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
