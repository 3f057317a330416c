import { ErrorCode, FtlError } from '../errors.js';

/**
 * Streaming weighted mean of equal-length vectors: memory is one float64 vector whatever the number of
 * inputs, so updates can be folded in as they arrive.
 *
 * @example
 * const acc = new WeightedMean(4); acc.add(a, 100); acc.add(b, 300); const mean = acc.result();
 */
export class WeightedMean {
  private readonly sum: Float64Array;
  private total = 0;
  private count = 0;

  constructor(readonly length: number) {
    this.sum = new Float64Array(length);
  }

  /** Folds in one vector with a positive, finite weight. */
  add(values: Float32Array, weight: number): void {
    if (values.length !== this.length) {
      throw new FtlError(ErrorCode.WeightsMismatch, `vector has ${values.length} values, expected ${this.length}`);
    }
    if (!(weight > 0 && Number.isFinite(weight))) {
      throw new FtlError(ErrorCode.InvalidMessage, `weight must be a positive finite number (got ${weight})`);
    }
    for (let i = 0; i < values.length; i++) this.sum[i]! += values[i]! * weight;
    this.total += weight;
    this.count++;
  }

  /** How many vectors were added. */
  get size(): number {
    return this.count;
  }

  /** The weighted mean; throws when nothing was added. */
  result(): Float32Array {
    if (this.count === 0) throw new FtlError(ErrorCode.Quorum, 'weighted mean of zero vectors');
    const out = new Float32Array(this.length);
    for (let i = 0; i < this.length; i++) out[i] = this.sum[i]! / this.total;
    return out;
  }
}
