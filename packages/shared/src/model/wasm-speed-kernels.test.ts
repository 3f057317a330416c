import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, expect, test } from 'vitest';
import { createRng } from '../random.js';
import { initBackend } from './backend.js';

beforeAll(async () => {
  await initBackend({ force: 'wasm' });
});

function values(n: number, seed: number): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: n }, () => rng.next() - 0.5);
}

/** Runs `f` on `backend` and returns its output's values and shape. */
function on(backend: 'cpu' | 'wasm', f: () => tf.Tensor): { values: number[]; shape: number[] } {
  tf.setBackend(backend);
  try {
    return tf.tidy(() => {
      const t = f();
      return { values: Array.from(t.dataSync()), shape: t.shape };
    });
  } finally {
    tf.setBackend('wasm');
  }
}

function expectClose(actual: { values: number[]; shape: number[] }, expected: { values: number[]; shape: number[] }): void {
  expect(actual.shape).toEqual(expected.shape);
  const scale = Math.max(1e-6, ...expected.values.map(Math.abs));
  const worst = Math.max(0, ...actual.values.map((v, i) => Math.abs(v - expected.values[i]!)));
  expect(worst / scale).toBeLessThan(1e-5);
}

const matMulCase = fc.record({
  batch: fc.constantFrom<number[]>([], [1], [3], [2, 2]),
  m: fc.integer({ min: 1, max: 9 }),
  k: fc.integer({ min: 1, max: 9 }),
  n: fc.integer({ min: 1, max: 9 }),
  ta: fc.boolean(),
  tb: fc.boolean(),
  broadcastB: fc.boolean(),
  seed: fc.nat(),
});

test('matMul with either operand transposed (rank 2 and batched, b broadcast or not) gives the cpu result', () => {
  fc.assert(
    fc.property(matMulCase, (c) => {
      const aShape = [...c.batch, ...(c.ta ? [c.k, c.m] : [c.m, c.k])];
      const bShape = [...(c.broadcastB ? [] : c.batch), ...(c.tb ? [c.n, c.k] : [c.k, c.n])];
      const a = values(
        aShape.reduce((x, y) => x * y, 1),
        c.seed,
      );
      const b = values(
        bShape.reduce((x, y) => x * y, 1),
        c.seed + 1,
      );
      const f = () => tf.matMul(tf.tensor(a, aShape), tf.tensor(b, bShape), c.ta, c.tb);
      expectClose(on('wasm', f), on('cpu', f));
    }),
    { numRuns: 60 },
  );
});

test('fused matMul (bias and relu) with transposed operands gives the cpu result, and so do its gradients', () => {
  fc.assert(
    fc.property(
      matMulCase.filter((c) => c.batch.length === 0),
      (c) => {
        const aShape = c.ta ? [c.k, c.m] : [c.m, c.k];
        const bShape = c.tb ? [c.n, c.k] : [c.k, c.n];
        const a = values(c.m * c.k, c.seed);
        const b = values(c.k * c.n, c.seed + 1);
        const bias = values(c.n, c.seed + 2);
        const f = () =>
          tf.fused.matMul({
            a: tf.tensor(a, aShape),
            b: tf.tensor(b, bShape),
            transposeA: c.ta,
            transposeB: c.tb,
            bias: tf.tensor1d(bias),
            activation: 'relu',
          });
        expectClose(on('wasm', f), on('cpu', f));
        // A dense layer's backward pass: the weight and input gradients are products with one operand transposed.
        const grads = () => {
          const [ga, gb] = tf.grads((x, w) =>
            tf.fused
              .matMul({ a: x, b: w, transposeA: c.ta, transposeB: c.tb, bias: tf.tensor1d(bias), activation: 'relu' })
              .square()
              .sum(),
          )([tf.tensor(a, aShape), tf.tensor(b, bShape)]);
          return tf.concat([ga!.flatten(), gb!.flatten()]);
        };
        expectClose(on('wasm', grads), on('cpu', grads));
      },
    ),
    { numRuns: 40 },
  );
});

test('slice of any part of a rank 1–4 tensor, contiguous or not, float or int, gives the cpu result', () => {
  const sliceCase = fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 4 }).chain((shape) =>
    fc.record({
      shape: fc.constant(shape),
      begin: fc.tuple(...shape.map((d) => fc.integer({ min: 0, max: d - 1 }))),
      fraction: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: shape.length, maxLength: shape.length }),
      int: fc.boolean(),
      seed: fc.nat(),
    }),
  );
  fc.assert(
    fc.property(sliceCase, (c) => {
      const size = c.shape.map((d, i) => Math.round((d - c.begin[i]!) * c.fraction[i]!));
      const n = c.shape.reduce((x, y) => x * y, 1);
      const data = c.int ? Int32Array.from(values(n, c.seed), (v) => Math.round(v * 1000)) : values(n, c.seed);
      const f = () => tf.slice(tf.tensor(data, c.shape, c.int ? 'int32' : 'float32'), c.begin, size);
      expect(on('wasm', f)).toEqual(on('cpu', f));
    }),
    { numRuns: 200 },
  );
});
