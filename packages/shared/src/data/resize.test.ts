import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { beforeAll, describe, expect, test } from 'vitest';
import { ErrorCode } from '../errors.js';
import { expectFtlError } from '../../test-support/expect-ftl-error.js';
import { loadBuiltinDataset } from './builtin.js';
import { subset } from './dataset.js';
import { parseImageShape } from './image-shape.js';
import { convertChannels, fitDataset, fitImage, resizeBilinear, type Pixels } from './resize.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const img = (data: number[], height: number, width: number, channels: number): Pixels => ({ data: Float32Array.from(data), height, width, channels });

describe('bilinear resize', () => {
  test('growing matches tf.image.resizeBilinear with half-pixel centres', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 6 }),
        fc.constantFrom(1, 3),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 4 }),
        fc.nat(),
        (h, w, c, fy, fx, seed) => {
          const data = Array.from({ length: h * w * c }, (_, i) => ((i * 7919 + seed) % 101) / 100);
          const ours = resizeBilinear(img(data, h, w, c), h * fy, w * fx).data;
          const theirs = tf.tidy(() => tf.image.resizeBilinear(tf.tensor3d(data, [h, w, c]), [h * fy, w * fx], false, true).dataSync());
          expect(ours.length).toBe(theirs.length);
          ours.forEach((v, i) => expect(v).toBeCloseTo(theirs[i]!, 5));
        },
      ),
      { numRuns: 40 },
    );
  });

  test('a constant image stays constant at any size', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 40 }),
        (h, w, oh, ow) => {
          const out = resizeBilinear(img(new Array(h * w).fill(0.37), h, w, 1), oh, ow).data;
          expect(out.length).toBe(oh * ow);
          out.forEach((v) => expect(v).toBeCloseTo(0.37, 5));
        },
      ),
      { numRuns: 60 },
    );
  });

  test('shrinking is anti-aliased: a one-pixel checkerboard halves to an even grey, not to stripes', () => {
    const side = 56;
    const board = Array.from({ length: side * side }, (_, i) => (Math.floor(i / side) + (i % side)) % 2);
    const out = resizeBilinear(img(board, side, side, 1), 28, 28).data;
    for (let y = 1; y < 27; y++) for (let x = 1; x < 27; x++) expect(out[y * 28 + x]).toBeCloseTo(0.5, 5);
  });

  test('the same size is the identity', () => {
    const data = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
    expect(Array.from(resizeBilinear(img(data, 2, 3, 1), 2, 3).data)).toEqual(Array.from(Float32Array.from(data)));
  });
});

describe('channel conversion', () => {
  test('grey → RGB repeats the value; RGB → grey is the Rec. 601 luma', () => {
    expect(Array.from(convertChannels(img([0.25, 1], 1, 2, 1), 3).data)).toEqual([0.25, 0.25, 0.25, 1, 1, 1]);
    const grey = convertChannels(img([1, 0, 0, 0, 1, 0, 0, 0, 1, 0.5, 0.5, 0.5], 2, 2, 3), 1).data;
    [0.299, 0.587, 0.114, 0.5].forEach((v, i) => expect(grey[i]).toBeCloseTo(v, 6));
  });

  test('other channel counts are refused', () => {
    expectFtlError(
      () => convertChannels(img([0, 0, 0, 0], 1, 1, 4), 1),
      ErrorCode.Dataset,
      /cannot convert 4-channel images to 1 channels; images must be grayscale \(1\) or RGB \(3\)/,
    );
  });
});

describe('fitting images and datasets to a target shape', () => {
  test('a 4×4 RGB image becomes 2×2 grey: the luma of the 2×2 block averages', () => {
    const data: number[] = [];
    for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) data.push(x < 2 ? 1 : 0, 0, y < 2 ? 1 : 0);
    const out = fitImage(img(data, 4, 4, 3), parseImageShape('2x2x1'));
    expect(out.length).toBe(4);
    // Top-left is mostly red+blue, bottom-right mostly black; the filter blends neighbouring blocks a little.
    expect(out[0]!).toBeGreaterThan(out[3]!);
    expect(out[0]!).toBeLessThanOrEqual(0.299 + 0.114 + 1e-6);
    expect(out[3]!).toBeGreaterThanOrEqual(0);
  });

  test('MNIST digits brought to 32×32×3 keep their labels, their values in [0, 1] and their mean brightness', () => {
    const ds = subset(loadBuiltinDataset('mnist'), [0, 1000, 5000]);
    const big = fitDataset(ds, parseImageShape('32x32x3'));
    expect([big.n, big.height, big.width, big.channels, big.images.length]).toEqual([3, 32, 32, 3, 3 * 32 * 32 * 3]);
    expect(Array.from(big.labels)).toEqual(Array.from(ds.labels));
    expect(big.images.every((v) => v >= 0 && v <= 1 + 1e-6)).toBe(true);
    const mean = (a: Float32Array) => a.reduce((s, v) => s + v, 0) / a.length;
    expect(mean(big.images)).toBeCloseTo(mean(ds.images), 2);
    expect(fitDataset(ds, parseImageShape('28x28x1'))).toBe(ds);
  });

  test.each(['28x28', '28x28x2', '0x28x1', 'axbxc', '5000x5x1'])('rejects image shape %j', (text) => {
    expectFtlError(
      () => parseImageShape(text),
      ErrorCode.InvalidConfig,
      /^image shape must be HEIGHTxWIDTHxCHANNELS with sides 1–4096 and 1 \(grayscale\) or 3 \(RGB\) channels, e\.g\. 28x28x1/,
    );
  });
});
