import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { createRng } from '../random.js';
import { initBackend } from './backend.js';

beforeAll(async () => {
  await initBackend({ force: 'wasm' });
});

type Case = { b: number; h: number; w: number; c: number; kh: number; kw: number; out: number; stride: number; pad: 'same' | 'valid'; seed: number };

const caseArb = fc
  .record({
    b: fc.integer({ min: 1, max: 3 }),
    h: fc.integer({ min: 1, max: 11 }),
    w: fc.integer({ min: 1, max: 11 }),
    c: fc.integer({ min: 1, max: 4 }),
    kh: fc.integer({ min: 1, max: 5 }),
    kw: fc.integer({ min: 1, max: 5 }),
    out: fc.integer({ min: 1, max: 4 }),
    stride: fc.integer({ min: 1, max: 3 }),
    pad: fc.constantFrom<'same' | 'valid'>('same', 'valid'),
    seed: fc.nat(),
  })
  .filter((k) => k.pad === 'same' || (k.kh <= k.h && k.kw <= k.w));

function values(shape: number[], seed: number): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.next() - 0.5);
}

/** Gradients of sum(f(x, w)²) with respect to x and w, computed on `backend`. */
function gradients(backend: 'cpu' | 'wasm', k: Case, filterShape: number[], f: (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor): Float32Array[] {
  tf.setBackend(backend);
  return tf.tidy(() => {
    const x = tf.tensor4d(values([k.b, k.h, k.w, k.c], k.seed), [k.b, k.h, k.w, k.c]);
    const w = tf.tensor4d(values(filterShape, k.seed + 1), filterShape as [number, number, number, number]);
    return tf
      .grads((a, b) =>
        f(a as tf.Tensor4D, b as tf.Tensor4D)
          .square()
          .sum(),
      )([x, w])
      .map((g) => g.dataSync() as Float32Array);
  });
}

function relativeError(actual: Float32Array, expected: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return diff / Math.max(scale, 1e-12);
}

function compare(k: Case, filterShape: number[], f: (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor): void {
  const expected = gradients('cpu', k, filterShape, f);
  const actual = gradients('wasm', k, filterShape, f);
  tf.setBackend('wasm');
  expect(actual[0]!.length).toBe(expected[0]!.length);
  expect(relativeError(actual[0]!, expected[0]!), 'input gradient').toBeLessThanOrEqual(1e-4);
  expect(relativeError(actual[1]!, expected[1]!), 'filter gradient').toBeLessThanOrEqual(1e-4);
}

/** Runs one kernel on `backend` with the given inputs (values and shape) and attributes. */
function kernel(backend: 'cpu' | 'wasm', name: string, inputs: Record<string, [Float32Array, number[]]>, attrs: object): Float32Array {
  tf.setBackend(backend);
  return tf.tidy(() => {
    const tensors = Object.fromEntries(Object.entries(inputs).map(([n, [v, shape]]) => [n, tf.tensor(v, shape)]));
    const out = tf.engine().runKernel(name, tensors, attrs as tf.NamedAttrMap) as tf.Tensor;
    return out.dataSync() as Float32Array;
  });
}

function outShape(k: Case, filterShape: number[], depthwise: boolean): number[] {
  return tf.backend_util.computeConv2DInfo(
    [k.b, k.h, k.w, k.c],
    filterShape as [number, number, number, number],
    k.stride,
    1,
    k.pad,
    undefined,
    depthwise,
  ).outShape;
}

describe('ftl kernels on wasm, one by one, against the cpu backend', () => {
  test.each([
    ['Conv2DBackpropFilter', false],
    ['DepthwiseConv2dNativeBackpropFilter', true],
  ])('%s over random shapes, strides and paddings', (name, depthwise) => {
    fc.assert(
      fc.property(caseArb, (k) => {
        const filterShape = [k.kh, k.kw, k.c, k.out];
        const dyShape = outShape(k, filterShape, depthwise);
        const inputs: Record<string, [Float32Array, number[]]> = {
          x: [values([k.b, k.h, k.w, k.c], k.seed), [k.b, k.h, k.w, k.c]],
          dy: [values(dyShape, k.seed + 2), dyShape],
        };
        const attrs = { strides: k.stride, pad: k.pad, dilations: 1, filterShape, dataFormat: 'NHWC' };
        expect(relativeError(kernel('wasm', name, inputs, attrs), kernel('cpu', name, inputs, attrs))).toBeLessThanOrEqual(1e-4);
      }),
      { numRuns: 80 },
    );
  });

  test('DepthwiseConv2dNativeBackpropInput over random shapes, strides and paddings', () => {
    fc.assert(
      fc.property(caseArb, (k) => {
        const filterShape = [k.kh, k.kw, k.c, k.out];
        const dyShape = outShape(k, filterShape, true);
        const inputs: Record<string, [Float32Array, number[]]> = {
          dy: [values(dyShape, k.seed + 2), dyShape],
          filter: [values(filterShape, k.seed + 3), filterShape],
        };
        const attrs = { strides: k.stride, pad: k.pad, dilations: 1, inputShape: [k.b, k.h, k.w, k.c] };
        const name = 'DepthwiseConv2dNativeBackpropInput';
        expect(relativeError(kernel('wasm', name, inputs, attrs), kernel('cpu', name, inputs, attrs))).toBeLessThanOrEqual(1e-4);
      }),
      { numRuns: 80 },
    );
  });

  test.each([['Conv2D'], ['DepthwiseConv2dNative']])(
    '%s with "same" padding matches cpu on a shape stock wasm got wrong (stride 3, 1×2 filter)',
    (name) => {
      const filterShape = [1, 2, 2, 3];
      const inputs: Record<string, [Float32Array, number[]]> = {
        x: [values([1, 4, 3, 2], 1), [1, 4, 3, 2]],
        filter: [values(filterShape, 2), filterShape],
      };
      const attrs = { strides: 3, pad: 'same', dilations: 1, dataFormat: 'NHWC' };
      expect(relativeError(kernel('wasm', name, inputs, attrs), kernel('cpu', name, inputs, attrs))).toBeLessThanOrEqual(1e-5);
    },
  );

  test.each([
    ['Conv2DBackpropFilter', { dataFormat: 'NCHW', strides: 1, pad: 'valid', filterShape: [2, 2, 1, 1] }, /supports only NHWC data \(got NCHW\)/],
    [
      'DepthwiseConv2dNativeBackpropFilter',
      { dilations: 2, strides: 1, pad: 'valid', filterShape: [2, 2, 1, 1] },
      /supports only dilation 1 \(got 2×2\)/,
    ],
  ])('%s refuses an unsupported case with a clear error', (name, attrs, message) => {
    tf.setBackend('wasm');
    const x = tf.zeros([1, 5, 5, 1]);
    const dy = tf.zeros([1, 4, 4, 1]);
    expect(() => tf.engine().runKernel(name, { x, dy }, attrs as unknown as tf.NamedAttrMap)).toThrow(message);
  });
});

describe('training gradients through convolutions on wasm match the cpu backend', () => {
  test('conv2d: input and filter gradients over random shapes, strides and paddings', () => {
    fc.assert(
      fc.property(caseArb, (k) => compare(k, [k.kh, k.kw, k.c, k.out], (x, w) => tf.conv2d(x, w, k.stride, k.pad))),
      { numRuns: 40 },
    );
  });

  test('depthwise conv2d: input and filter gradients with channel multipliers', () => {
    fc.assert(
      fc.property(caseArb, (k) => compare(k, [k.kh, k.kw, k.c, k.out], (x, w) => tf.depthwiseConv2d(x, w, k.stride, k.pad))),
      { numRuns: 40 },
    );
  });
});
