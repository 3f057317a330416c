import { ErrorCode, FtlError } from '../errors.js';
import { imageSize, type ImageDataset } from './dataset.js';
import { sameImageShape, type ImageShape } from './image-shape.js';

/** One image: `height × width × channels` floats, row-major (HWC), values in [0, 1]. */
export interface Pixels extends ImageShape {
  readonly data: Float32Array;
}

/** Rec. 601 luma, the weights of PIL's `L` mode and `tf.image.rgbToGrayscale`. */
const LUMA = [0.299, 0.587, 0.114] as const;

/** Per output position: the first source index, how many follow, and their (normalised) weights. */
interface Taps {
  start: Int32Array;
  count: Int32Array;
  weights: Float64Array;
  stride: number;
}

// A triangle (bilinear) filter whose radius grows with the shrink factor, so that when an image gets
// smaller every source pixel still counts (no aliasing when a 512×512 scan becomes 28×28). When growing,
// it is exactly bilinear interpolation with half-pixel centres, edges clamped (tf.image.resizeBilinear
// with halfPixelCenters); PIL's BILINEAR and tf.image.resize(antialias) do the same when shrinking.
function taps(inSize: number, outSize: number): Taps {
  const scale = inSize / outSize;
  const support = Math.max(1, scale);
  const stride = Math.ceil(2 * support) + 2;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float64Array(outSize * stride);
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    const lo = Math.max(0, Math.floor(center - support));
    const hi = Math.min(inSize, Math.ceil(center + support));
    let sum = 0;
    for (let j = lo; j < hi; j++) {
      const w = Math.max(0, 1 - Math.abs((j + 0.5 - center) / support));
      weights[i * stride + j - lo] = w;
      sum += w;
    }
    for (let k = 0; k < hi - lo; k++) weights[i * stride + k]! /= sum;
    start[i] = lo;
    count[i] = hi - lo;
  }
  return { start, count, weights, stride };
}

// Resamples one axis of a row-major array viewed as [outer, n, inner] into [outer, outN, inner].
function resampleAxis(src: Float32Array, outer: number, n: number, inner: number, outN: number): Float32Array {
  const t = taps(n, outN);
  const out = new Float32Array(outer * outN * inner);
  for (let o = 0; o < outer; o++) {
    const srcBase = o * n * inner;
    const outBase = o * outN * inner;
    for (let i = 0; i < outN; i++) {
      const s = t.start[i]!;
      const c = t.count[i]!;
      const w = i * t.stride;
      for (let k = 0; k < inner; k++) {
        let acc = 0;
        for (let j = 0; j < c; j++) acc += t.weights[w + j]! * src[srcBase + (s + j) * inner + k]!;
        out[outBase + i * inner + k] = acc;
      }
    }
  }
  return out;
}

/**
 * Resizes an image with a bilinear (triangle) filter, widened when shrinking so the result is
 * anti-aliased. Channels are kept.
 *
 * @example
 * resizeBilinear({ data, height: 512, width: 512, channels: 1 }, 28, 28).data.length; // 784
 */
export function resizeBilinear(img: Pixels, height: number, width: number): Pixels {
  let data = img.data;
  if (width !== img.width) data = resampleAxis(data, img.height, img.width, img.channels, width);
  if (height !== img.height) data = resampleAxis(data, 1, img.height, width * img.channels, height);
  return { data, height, width, channels: img.channels };
}

/**
 * Converts grayscale ↔ RGB: 1 → 3 repeats the value, 3 → 1 takes the Rec. 601 luma
 * (0.299 R + 0.587 G + 0.114 B).
 */
export function convertChannels(img: Pixels, channels: number): Pixels {
  if (channels === img.channels) return img;
  const pixels = img.height * img.width;
  const out = new Float32Array(pixels * channels);
  const src = img.data;
  if (img.channels === 1 && channels === 3) {
    for (let p = 0; p < pixels; p++) out[3 * p] = out[3 * p + 1] = out[3 * p + 2] = src[p]!;
  } else if (img.channels === 3 && channels === 1) {
    for (let p = 0; p < pixels; p++) out[p] = LUMA[0] * src[3 * p]! + LUMA[1] * src[3 * p + 1]! + LUMA[2] * src[3 * p + 2]!;
  } else {
    throw new FtlError(
      ErrorCode.Dataset,
      `cannot convert ${img.channels}-channel images to ${channels} channels; images must be grayscale (1) or RGB (3)`,
    );
  }
  return { data: out, height: img.height, width: img.width, channels };
}

/**
 * Brings an image to `target`: resized (bilinear) and converted grayscale ↔ RGB. Fewer channels are
 * made before resizing and more after, which gives the same result with less work.
 */
export function fitImage(img: Pixels, target: ImageShape): Float32Array {
  if (sameImageShape(img, target)) return img.data;
  let out = img;
  if (target.channels < out.channels) out = convertChannels(out, target.channels);
  out = resizeBilinear(out, target.height, target.width);
  return convertChannels(out, target.channels).data;
}

/** A dataset with every image brought to `target` ({@link fitImage}); the same object when it already fits. */
export function fitDataset(ds: ImageDataset, target: ImageShape): ImageDataset {
  if (sameImageShape(ds, target)) return ds;
  const from = imageSize(ds);
  const to = imageSize(target);
  const images = new Float32Array(ds.n * to);
  for (let i = 0; i < ds.n; i++) {
    const data = ds.images.subarray(i * from, (i + 1) * from);
    images.set(fitImage({ data, height: ds.height, width: ds.width, channels: ds.channels }, target), i * to);
  }
  return { ...ds, images, height: target.height, width: target.width, channels: target.channels };
}
