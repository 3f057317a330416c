import {
  CLASS_SUMS_TENSOR,
  encodeWeights,
  ErrorCode,
  FEATURE_SCATTER_TENSOR,
  FtlError,
  withinClassScatter,
  PROTOCOL_VERSION,
  rejectionFor,
  type ClassSumsResult,
  type HeadConfig,
} from '@ftl/shared';
import { describe, expect, test } from 'vitest';
import { checkClassSums, classSumsMessageBytes, outputLayerOf, poolClassMeans, poolWithinScatter, withRecordedOutputLayer } from './class-means.js';
import { applyRunConfig, defaultCoordinatorConfig, parseCoordinatorArgs, toRunConfig } from './config.js';
import { parseRunConfig } from './run-config.js';

const head: HeadConfig = { featureDim: 2, hidden: [], classes: 3 };

const answer = (values: number[], counts: number[], shape = [3, 2]): ClassSumsResult => ({
  protocol: PROTOCOL_VERSION,
  runId: 'r',
  round: 0,
  modelVersion: 0,
  counts,
  sums: encodeWeights({ specs: [{ name: CLASS_SUMS_TENSOR, shape, dtype: 'float32' }], values: Float32Array.from(values) }),
});

/** `m` with a scatter tensor of `values` (shape [2, 2] unless given). */
const withScatter = (m: ClassSumsResult, values: number[], shape = [2, 2]): ClassSumsResult => ({
  ...m,
  scatter: encodeWeights({ specs: [{ name: FEATURE_SCATTER_TENSOR, shape, dtype: 'float32' }], values: Float32Array.from(values) }),
});

/** The reason a coordinator would send for what `fn` throws. */
function reasonOf(fn: () => unknown): { reason: string; message: string } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FtlError);
    return rejectionFor(err);
  }
  throw new Error('expected a refusal');
}

describe('class sums from a site', () => {
  test("sums and counts that fit the run are kept; pooled means are the means over every site's samples", () => {
    const a = checkClassSums(answer([2, 4, 0, 0, 3, 3], [2, 0, 1]), head, 3);
    const b = checkClassSums(answer([1, 1, 6, 6, 0, 0], [1, 3, 0]), head, 10);
    const { means, counts } = poolClassMeans([a, b], head);
    expect(counts).toEqual([3, 3, 1]);
    expect(Array.from(means)).toEqual([1, 5 / 3, 2, 2, 3, 3]);
  });

  test.each<[string, ClassSumsResult, number | undefined, string, RegExp]>([
    [
      'counts beyond what the site declared',
      answer([0, 0, 0, 0, 1, 1], [0, 0, 5]),
      4,
      'bad-sample-count',
      /add up to 5, more than the 4 training samples this site declared at ready/,
    ],
    [
      'another number of classes',
      answer([0, 0, 0, 0], [1, 1], [2, 2]),
      10,
      'wrong-shape',
      /shape \[2, 2\] with 2 counts do not fit this run's 3 classes × 2 features/,
    ],
    ['another feature length', answer(new Array(9).fill(0), [1, 1, 1], [3, 3]), 10, 'wrong-shape', /shape \[3, 3\] with 3 counts do not fit/],
    ['a sum that is not finite', answer([0, NaN, 0, 0, 1, 1], [1, 1, 1]), 10, 'non-finite', /class sum 1 is NaN/],
    ['a class counted 0 with a sum', answer([0, 0, 0, 7, 1, 1], [1, 0, 1]), 10, 'bad-statistics', /class 1 is counted 0 but its sum is not zero/],
    [
      "a mean beyond the trust policy's bound on a value",
      answer([0, 0, 0, 0, 2e6, 1], [1, 1, 1]),
      10,
      'bad-statistics',
      /class 2's mean value 0 is 2000000, beyond the run's bound of 1000000/,
    ],
  ])('%s is refused', (_, msg, declared, reason, message) => {
    const r = reasonOf(() => checkClassSums(msg, head, declared, 1e6));
    expect(r.reason).toBe(reason);
    expect(r.message).toMatch(message);
  });

  test('a byte length that does not match the shape is refused before anything is made of it', () => {
    const msg = answer([0, 0, 0, 0, 0, 0], [1, 1, 1]);
    msg.sums.data = msg.sums.data.subarray(0, 20);
    expect(reasonOf(() => checkClassSums(msg, head, 10)).reason).toBe('wrong-shape');
  });
});

describe('within-class scatter from a site', () => {
  // Five samples of 2 values in 3 classes, split over two sites.
  const x = Float32Array.from([1, 2, 3, 1, 0, 5, 2, 7, 4, 4]);
  const y = Int32Array.from([0, 0, 1, 1, 2]);
  const site = async (rows: number[]) => {
    const xs = Float32Array.from(rows.flatMap((i) => [x[2 * i]!, x[2 * i + 1]!]));
    const ys = Int32Array.from(rows.map((i) => y[i]!));
    const counts = [0, 1, 2].map((c) => ys.filter((v) => v === c).length);
    const sums = new Float64Array(6);
    ys.forEach((c, i) => [0, 1].forEach((j) => (sums[c * 2 + j]! += xs[i * 2 + j]!)));
    const means = sums.map((v, k) => (counts[Math.floor(k / 2)]! ? v / counts[Math.floor(k / 2)]! : 0));
    return withScatter(answer(Array.from(sums), counts), Array.from(await withinClassScatter(xs, ys, means, 2)));
  };

  test("the sites' scatters pool to the scatter of their union, exactly", async () => {
    const a = checkClassSums(await site([0, 2]), head, 10, 0, true);
    const b = checkClassSums(await site([1, 3, 4]), head, 10, 0, true);
    const { means } = poolClassMeans([a, b], head);
    const pooledMeans = poolClassMeans([checkClassSums(await site([0, 1, 2, 3, 4]), head, 10, 0, true)], head).means;
    const union = await withinClassScatter(x, y, pooledMeans, 2);
    Array.from(await poolWithinScatter([a, b], means, head)).forEach((v, k) => expect(v).toBeCloseTo(union[k]!, 5));
  });

  test.each<[string, (m: ClassSumsResult) => ClassSumsResult, string, RegExp]>([
    [
      'no scatter though it was asked for',
      (m) => ({ ...m, scatter: undefined }),
      'malformed',
      /asked for the within-class scatter, but the answer has none/,
    ],
    [
      'a scatter of another size',
      (m) => withScatter(m, new Array(9).fill(0), [3, 3]),
      'wrong-shape',
      /has shape \[3, 3\]; this run's features have 2 values/,
    ],
    ['a value that is not finite', (m) => withScatter(m, [1, Infinity, 0, 1]), 'non-finite', /scatter value 1 is Infinity/],
    ['a negative sum of squares', (m) => withScatter(m, [-1, 0, 0, 1]), 'bad-statistics', /diagonal 0 is -1/],
    ['an asymmetric matrix', (m) => withScatter(m, [1, 0.5, -0.5, 1]), 'bad-statistics', /not those of a sum of outer products/],
    ['a correlation above 1', (m) => withScatter(m, [1, 3, 3, 1]), 'bad-statistics', /not those of a sum of outer products/],
    [
      "a variance beyond the trust policy's bound",
      (m) => withScatter(m, [1e15, 0, 0, 1]),
      'bad-statistics',
      /beyond what 3 samples within the run's bound of 1000000/,
    ],
  ])('%s is refused', (_, change, reason, message) => {
    const r = reasonOf(() => checkClassSums(change(answer([1, 1, 1, 1, 1, 1], [1, 1, 1])), head, 10, 1e6, true));
    expect(r.reason).toBe(reason);
    expect(r.message).toMatch(message);
  });

  test('a run with a discriminant head allows messages of featureDim² values', () => {
    const big: HeadConfig = { featureDim: 256, hidden: [], classes: 10 };
    expect(classSumsMessageBytes('discriminant', big)).toBe(4 * (256 * 256 + 2560) + 64 * 1024);
    expect(classSumsMessageBytes('class-means', big)).toBe(4 * 2560 + 64 * 1024);
    expect(classSumsMessageBytes('random', big)).toBe(0);
  });
});

describe('the recorded head', () => {
  const weights = {
    specs: [
      { name: 'head_output/kernel', shape: [2, 3], dtype: 'float32' as const },
      { name: 'head_output/bias', shape: [3], dtype: 'float32' as const },
    ],
    values: Float32Array.from([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]),
  };

  test('survives JSON exactly and is put back into the same tensors', () => {
    const recorded = JSON.parse(JSON.stringify({ method: 'class-means', head: outputLayerOf(weights) }));
    const zero = { specs: weights.specs, values: new Float32Array(9) };
    expect(withRecordedOutputLayer(zero, recorded).values).toEqual(weights.values);
  });

  test('a damaged record is refused, saying what to do', () => {
    expect(() => withRecordedOutputLayer(weights, { head: { kernel: [1, 2], bias: [0, 0, 0] } })).toThrow(
      /does not hold an output layer of 6 \+ 3 finite values.*another run id/,
    );
    expect(() => withRecordedOutputLayer(weights, null)).toThrow(FtlError);
  });
});

describe('headInit in the run config and on the command line', () => {
  test('class-means needs a linear head and a pretrained backbone, with a message that says what to change', () => {
    expect(parseRunConfig({}).headInit).toBe('auto');
    expect(parseRunConfig({ headInit: 'class-means' }).headInit).toBe('class-means');
    expect(() => parseRunConfig({ headInit: 'class-means', hidden: [128] })).toThrow(
      /headInit: class-means sets a linear head, but hidden is \[128\]; set hidden to \[\]/,
    );
    expect(() => parseRunConfig({ headInit: 'class-means', hidden: [], fineTuning: { mode: 'scratch' } })).toThrow(/re-initialises the backbone/);
    expect(() => parseRunConfig({ headInit: 'nearest' })).toThrow(/headInit must be auto .*, random, class-means .* or discriminant/);
    expect(() => parseRunConfig({ headInit: 'discriminant', hidden: [128] })).toThrow(
      /headInit: discriminant sets a linear head, but hidden is \[128\]/,
    );
    expect(parseRunConfig({ headInit: 'discriminant', hidden: [] }).headInit).toBe('discriminant');
    expect(parseRunConfig({ headInit: 'class-means', hidden: [], fineTuning: { mode: 'gradual', layers: 1, everyRounds: 3 } }).fineTuning.mode).toBe(
      'gradual',
    );
  });

  test("--head-init goes through the same check, and the field survives the store's round trip", () => {
    const config = parseCoordinatorArgs(['--head-init', 'class-means', '--hidden', '']);
    expect(config !== 'help' && config.headInit).toBe('class-means');
    expect(() => parseCoordinatorArgs(['--head-init', 'class-means', '--hidden', '128'])).toThrow(
      expect.objectContaining({
        code: ErrorCode.InvalidConfig,
        message: expect.stringMatching(/command line: --head-init \(headInit\): class-means sets a linear head/),
      }),
    );
    const run = parseRunConfig({ headInit: 'class-means', hidden: [] });
    const back = toRunConfig(applyRunConfig(defaultCoordinatorConfig(), run));
    expect(back.headInit).toBe('class-means');
  });
});
