import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, test } from 'vitest';
import { ErrorCode } from '../errors.js';
import { expectFtlError } from '../../test-support/expect-ftl-error.js';
import { assertSameSpecs, decodeWeights, encodeWeights, firstNonFinite, specsSize, tensorsByName, type WeightSpec } from './weights.js';

const specsArb = fc.array(
  fc.record({
    name: fc.string({ minLength: 1, maxLength: 12 }),
    shape: fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 0, maxLength: 3 }),
    dtype: fc.constant('float32' as const),
  }),
  { minLength: 1, maxLength: 5 },
);

const weightsArb = specsArb.chain((specs) =>
  fc.float32Array({ minLength: specsSize(specs), maxLength: specsSize(specs) }).map((values) => ({ specs, values })),
);

describe('weight codec', () => {
  test('decode(encode(w)) returns the same specs and bit-identical values, through real msgpack bytes', () => {
    const packr = new Packr({ useRecords: false });
    fc.assert(
      fc.property(weightsArb, fc.integer({ min: 0, max: 7 }), (w, pad) => {
        // A prefix of `pad` bytes moves the binary field to any alignment inside the frame.
        const frame = packr.pack({ pad: 'x'.repeat(pad), weights: encodeWeights(w) });
        const back = decodeWeights((packr.unpack(frame) as { weights: { specs: WeightSpec[]; data: Uint8Array } }).weights);
        expect(back.specs).toEqual(w.specs);
        expect(new Uint8Array(back.values.buffer, back.values.byteOffset, back.values.byteLength)).toEqual(
          new Uint8Array(w.values.buffer, w.values.byteOffset, w.values.byteLength),
        );
      }),
    );
  });

  test('weights travel as one binary field of 4 bytes per value, not as numbers', () => {
    const values = Float32Array.from({ length: 1000 }, (_, i) => i / 7);
    const frame = new Packr({ useRecords: false }).pack(encodeWeights({ specs: [{ name: 'k', shape: [1000], dtype: 'float32' }], values }));
    expect(frame.byteLength).toBeLessThan(4000 + 64);
    expect(Buffer.from(frame).includes(Buffer.from(values.buffer))).toBe(true);
  });

  test.each([
    ['too few bytes', 7, /weight data is 7 bytes but the specs describe 8/],
    ['too many bytes', 12, /weight data is 12 bytes but the specs describe 8/],
  ])('decode refuses %s', (_, bytes, message) => {
    const bad = { specs: [{ name: 'b', shape: [2], dtype: 'float32' as const }], data: new Uint8Array(bytes) };
    expect(() => decodeWeights(bad)).toThrow(message);
  });

  test('encode refuses values that do not match their specs', () => {
    expect(() => encodeWeights({ specs: [{ name: 'b', shape: [3], dtype: 'float32' }], values: new Float32Array(2) })).toThrow(
      /hold 2 values but their specs describe 3/,
    );
  });

  test('tensorsByName gives each tensor its own slice of the flat values, by name, without copying', () => {
    const w = {
      specs: [
        { name: 'a/kernel', shape: [2, 2], dtype: 'float32' as const },
        { name: 'a/bias', shape: [2], dtype: 'float32' as const },
      ],
      values: Float32Array.of(1, 2, 3, 4, 5, 6),
    };
    const t = tensorsByName(w);
    expect([...t.keys()]).toEqual(['a/kernel', 'a/bias']);
    expect(Array.from(t.get('a/bias')!)).toEqual([5, 6]);
    t.get('a/kernel')![0] = 9;
    expect(w.values[0]).toBe(9);
  });

  test('assertSameSpecs names the first differing tensor', () => {
    const expected: WeightSpec[] = [
      { name: 'a/kernel', shape: [4, 2], dtype: 'float32' },
      { name: 'a/bias', shape: [2], dtype: 'float32' },
    ];
    expectFtlError(
      () => assertSameSpecs([expected[0]!, { name: 'a/bias', shape: [3], dtype: 'float32' }], expected),
      ErrorCode.WeightsMismatch,
      /^tensor 1 should be a\/bias \[2\] float32 but is a\/bias \[3\] float32$/,
    );
    expectFtlError(
      () => assertSameSpecs([expected[0]!], expected),
      ErrorCode.WeightsMismatch,
      /^expected 2 tensors \(a\/kernel, a\/bias\) but got 1$/,
    );
    expect(() => assertSameSpecs(expected, expected)).not.toThrow();
  });

  test('firstNonFinite finds NaN and Infinity', () => {
    expect(firstNonFinite(Float32Array.of(1, 2, 3))).toBe(-1);
    expect(firstNonFinite(Float32Array.of(1, NaN, 3))).toBe(1);
    expect(firstNonFinite(Float32Array.of(1, 2, -Infinity))).toBe(2);
  });
});
