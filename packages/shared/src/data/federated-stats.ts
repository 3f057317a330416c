import { ErrorCode, FtlError } from '../errors.js';
import type { ImageDataset } from './dataset.js';
import type { ChannelStats, Normalization } from '../protocol/messages.js';
import { statsInconsistency } from '../protocol/stats-consistency.js';

// Statistics and normalisation travel in `ready` and the instructions: their types come from the protocol's schemas.
export type { ChannelStats, Normalization } from '../protocol/messages.js';
export { statsInconsistency } from '../protocol/stats-consistency.js';

/** A client's channel statistics over its images (NHWC, `channels` last). */
export function channelStats(ds: Pick<ImageDataset, 'images' | 'channels'>): ChannelStats {
  const c = ds.channels;
  const s: ChannelStats = {
    count: 0,
    sum: new Array<number>(c).fill(0),
    sumSquares: new Array<number>(c).fill(0),
    min: new Array<number>(c).fill(Infinity),
    max: new Array<number>(c).fill(-Infinity),
  };
  const x = ds.images;
  // Float64 accumulation: float32 sums of ~10⁷ values lose the low digits the variance depends on.
  for (let i = 0; i < x.length; i++) {
    const k = i % c;
    const v = x[i]!;
    s.sum[k]! += v;
    s.sumSquares[k]! += v * v;
    if (v < s.min[k]!) s.min[k] = v;
    if (v > s.max[k]!) s.max[k] = v;
  }
  s.count = x.length / c;
  return s;
}

/**
 * Checks one site's statistics against what the run expects: `values` per report (channels, or value
 * positions with per-feature normalisation), consistent with each other ({@link statsInconsistency}),
 * and, when the data's range is declared, minima and maxima inside it.
 *
 * @throws FtlError(DATASET), one line, when they do not fit; the coordinator leaves such a site out of
 *   the normalisation.
 * @example
 * checkChannelStats(ready.stats, { values: 3, range: [0, 1] }); // RGB images scaled to [0, 1]
 */
export function checkChannelStats(stats: ChannelStats, expect: { values: number; range?: readonly [number, number] }): void {
  const bad = (why: string): never => {
    throw new FtlError(
      ErrorCode.Dataset,
      `channel statistics ${why}; send the statistics of this run's training inputs as channelStats computes them`,
    );
  };
  if (stats.sum.length !== expect.values) bad(`have ${stats.sum.length} values but this run expects ${expect.values}`);
  const why = statsInconsistency(stats);
  if (why) bad(`are inconsistent: ${why}`);
  if (expect.range) {
    const [lo, hi] = expect.range;
    const k = stats.sum.findIndex((_, i) => stats.min[i]! < lo || stats.max[i]! > hi);
    if (k >= 0) bad(`of channel ${k} span [${stats.min[k]}, ${stats.max[k]}], outside the data's range [${lo}, ${hi}]`);
  }
}

/** Options of {@link combineStats}. */
export interface CombineOptions {
  /**
   * Per channel, leave out the `trim` sites whose mean is farthest from the median of the sites' means
   * before pooling, so that a few sites cannot move the normalisation; 0 (default) pools every site
   * exactly. Must leave at least one site.
   */
  trim?: number;
}

/**
 * Combines the clients' statistics into one normalisation, exactly as if computed on the pooled data:
 * mean/std (`standard`) or min/max (`min-max`) per channel. A channel with no spread gets scale 1.
 * With `{ trim: k }` each channel pools all but the k sites with the most extreme means.
 *
 * @throws FtlError(INVALID_MESSAGE) when the statistics disagree on the channel count or are not finite;
 *   FtlError(INVALID_CONFIG) when `trim` is not an integer that leaves at least one site.
 */
export function combineStats(parts: readonly ChannelStats[], kind: Normalization['kind'] = 'standard', options: CombineOptions = {}): Normalization {
  if (parts.length === 0) throw new FtlError(ErrorCode.InvalidMessage, 'no client statistics to combine');
  const trim = options.trim ?? 0;
  if (!Number.isSafeInteger(trim) || trim < 0 || trim >= parts.length) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `trim must be an integer in [0, ${parts.length - 1}] with ${parts.length} sites (got ${trim}); trim fewer sites`,
    );
  }
  const c = parts[0]!.sum.length;
  for (const p of parts) {
    const lengths = [p.sum, p.sumSquares, p.min, p.max].map((a) => a.length);
    if (lengths.some((l) => l !== c))
      throw new FtlError(ErrorCode.InvalidMessage, `channel statistics disagree: ${c} channels vs ${lengths.join('/')}`);
    if (!Number.isFinite(p.count) || p.count < 0 || [...p.sum, ...p.sumSquares].some((v) => !Number.isFinite(v))) {
      throw new FtlError(ErrorCode.InvalidMessage, 'channel statistics must be finite with a count ≥ 0');
    }
  }
  if (parts.reduce((a, p) => a + p.count, 0) === 0) throw new FtlError(ErrorCode.InvalidMessage, 'the clients reported no values to normalise');
  const shift: number[] = [];
  const scale: number[] = [];
  for (let k = 0; k < c; k++) {
    const kept = trim === 0 ? parts : keepCentral(parts, k, trim);
    if (kind === 'standard') {
      const n = kept.reduce((a, p) => a + p.count, 0);
      const mean = n > 0 ? kept.reduce((a, p) => a + p.sum[k]!, 0) / n : 0;
      const meanSquares = n > 0 ? kept.reduce((a, p) => a + p.sumSquares[k]!, 0) / n : 1;
      const std = Math.sqrt(Math.max(0, meanSquares - mean * mean));
      shift.push(mean);
      scale.push(std > 1e-12 ? std : 1);
    } else {
      const lo = Math.min(...kept.map((p) => p.min[k]!));
      const hi = Math.max(...kept.map((p) => p.max[k]!));
      shift.push(lo);
      scale.push(hi - lo > 1e-12 ? hi - lo : 1);
    }
  }
  return { kind, shift, scale };
}

// The sites of channel `k` without the `trim` whose means lie farthest from the median mean (ties: the
// later site goes). Sites with no values have no mean and are left out first.
function keepCentral(parts: readonly ChannelStats[], k: number, trim: number): readonly ChannelStats[] {
  const means = parts.map((p) => (p.count > 0 ? p.sum[k]! / p.count : NaN));
  const sorted = means.filter((m) => !Number.isNaN(m)).sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length === 0 ? 0 : sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  const distance = means.map((m) => (Number.isNaN(m) ? Infinity : Math.abs(m - median)));
  const order = parts.map((_, i) => i).sort((a, b) => distance[a]! - distance[b]! || a - b);
  const keep = new Set(order.slice(0, parts.length - trim));
  return parts.filter((_, i) => keep.has(i));
}

/** Applies a normalisation to NHWC images (a new array). */
export function normalizeImages(images: Float32Array, channels: number, norm: Normalization): Float32Array {
  if (norm.shift.length !== channels) {
    throw new FtlError(ErrorCode.InvalidMessage, `normalisation has ${norm.shift.length} channels but the images have ${channels}`);
  }
  const out = new Float32Array(images.length);
  for (let i = 0; i < images.length; i++) {
    const k = i % channels;
    out[i] = (images[i]! - norm.shift[k]!) / norm.scale[k]!;
  }
  return out;
}
