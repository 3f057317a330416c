import { ErrorCode, FtlError } from '../errors.js';
import type { ImageDataset } from './dataset.js';

/**
 * What one client shares for federated normalisation: per-channel sums, sums of squares, minima, maxima
 * and the value count behind them. Never the values themselves.
 */
export interface ChannelStats {
  count: number;
  sum: number[];
  sumSquares: number[];
  min: number[];
  max: number[];
}

/** Per-channel normalisation the coordinator sends back: `(x − shift) / scale`. */
export interface Normalization {
  kind: 'standard' | 'min-max';
  shift: number[];
  scale: number[];
}

/** A client's channel statistics over its images (NHWC, `channels` last). */
export function channelStats(ds: Pick<ImageDataset, 'images' | 'channels'>): ChannelStats {
  const c = ds.channels;
  const s: ChannelStats = {
    count: 0, sum: new Array<number>(c).fill(0), sumSquares: new Array<number>(c).fill(0),
    min: new Array<number>(c).fill(Infinity), max: new Array<number>(c).fill(-Infinity),
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
 * Combines the clients' statistics into one normalisation, exactly as if computed on the pooled data:
 * mean/std (`standard`) or min/max (`min-max`) per channel. A channel with no spread gets scale 1.
 *
 * @throws FtlError(INVALID_MESSAGE) when the statistics disagree on the channel count or are not finite.
 */
export function combineStats(parts: readonly ChannelStats[], kind: Normalization['kind'] = 'standard'): Normalization {
  if (parts.length === 0) throw new FtlError(ErrorCode.InvalidMessage, 'no client statistics to combine');
  const c = parts[0]!.sum.length;
  for (const p of parts) {
    const lengths = [p.sum, p.sumSquares, p.min, p.max].map((a) => a.length);
    if (lengths.some((l) => l !== c)) throw new FtlError(ErrorCode.InvalidMessage, `channel statistics disagree: ${c} channels vs ${lengths.join('/')}`);
    if (!Number.isFinite(p.count) || p.count < 0 || [...p.sum, ...p.sumSquares].some((v) => !Number.isFinite(v))) {
      throw new FtlError(ErrorCode.InvalidMessage, 'channel statistics must be finite with a count ≥ 0');
    }
  }
  const n = parts.reduce((a, p) => a + p.count, 0);
  if (n === 0) throw new FtlError(ErrorCode.InvalidMessage, 'the clients reported no values to normalise');
  const shift: number[] = [];
  const scale: number[] = [];
  for (let k = 0; k < c; k++) {
    if (kind === 'standard') {
      const mean = parts.reduce((a, p) => a + p.sum[k]!, 0) / n;
      const meanSquares = parts.reduce((a, p) => a + p.sumSquares[k]!, 0) / n;
      const std = Math.sqrt(Math.max(0, meanSquares - mean * mean));
      shift.push(mean);
      scale.push(std > 1e-12 ? std : 1);
    } else {
      const lo = Math.min(...parts.map((p) => p.min[k]!));
      const hi = Math.max(...parts.map((p) => p.max[k]!));
      shift.push(lo);
      scale.push(hi - lo > 1e-12 ? hi - lo : 1);
    }
  }
  return { kind, shift, scale };
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
