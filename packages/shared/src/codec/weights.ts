import { ErrorCode, FtlError } from '../errors.js';

/** The only dtype that travels today; fp16/int8 quantisation would add members here. */
export type WeightDtype = 'float32';

/** Name, shape and dtype of one tensor in a flat weight buffer, after tfjs's weight specs. */
export interface WeightSpec {
  name: string;
  shape: number[];
  dtype: WeightDtype;
}

/** A model's tensors as one flat `Float32Array`, in `specs` order. Math and aggregation use this. */
export interface Weights {
  specs: WeightSpec[];
  values: Float32Array;
}

/** Weights as they travel: the same specs plus the float32 values as raw little-endian bytes. */
export interface EncodedWeights {
  specs: WeightSpec[];
  data: Uint8Array;
}

/** Number of values a shape holds. */
export function shapeSize(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Each tensor's values by name: views into the flat vector (no copy), in `specs` order.
 *
 * @example
 * tensorsByName(global).get('head_output/bias'); // Float32Array of the output layer's biases
 */
export function tensorsByName(weights: Weights): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  let off = 0;
  for (const s of weights.specs) {
    const n = shapeSize(s.shape);
    out.set(s.name, weights.values.subarray(off, off + n));
    off += n;
  }
  return out;
}

/** Total values the specs describe. */
export function specsSize(specs: readonly WeightSpec[]): number {
  return specs.reduce((s, spec) => s + shapeSize(spec.shape), 0);
}

/**
 * Packs weights for the wire: a view on the same bytes, no copy, no base64, no number arrays.
 *
 * @example
 * const wire = encodeWeights({ specs, values }); // wire.data.byteLength === values.length * 4
 */
export function encodeWeights(weights: Weights): EncodedWeights {
  const expected = specsSize(weights.specs);
  if (weights.values.length !== expected) {
    throw new FtlError(ErrorCode.WeightsMismatch, `weights hold ${weights.values.length} values but their specs describe ${expected}`);
  }
  const v = weights.values;
  return { specs: weights.specs, data: new Uint8Array(v.buffer, v.byteOffset, v.byteLength) };
}

/**
 * Unpacks wire weights, checking that the byte length matches the specs. Copies only when the bytes
 * are not 4-byte aligned (msgpackr may hand out views into a larger buffer at any offset).
 */
export function decodeWeights(encoded: EncodedWeights): Weights {
  const expected = specsSize(encoded.specs) * 4;
  const d = encoded.data;
  if (d.byteLength !== expected) {
    throw new FtlError(
      ErrorCode.WeightsMismatch,
      `weight data is ${d.byteLength} bytes but the specs describe ${expected} (${expected / 4} float32 values)`,
    );
  }
  const values = d.byteOffset % 4 === 0 ? new Float32Array(d.buffer, d.byteOffset, d.byteLength / 4) : new Float32Array(new Uint8Array(d).buffer); // a copy: Buffer#slice would return a view
  return { specs: encoded.specs, values };
}

/** Throws a WeightsMismatch error naming the first tensor whose name or shape differs from `expected`. */
export function assertSameSpecs(actual: readonly WeightSpec[], expected: readonly WeightSpec[]): void {
  if (actual.length !== expected.length) {
    throw new FtlError(
      ErrorCode.WeightsMismatch,
      `expected ${expected.length} tensors (${expected.map((s) => s.name).join(', ')}) but got ${actual.length}`,
    );
  }
  expected.forEach((e, i) => {
    const a = actual[i]!;
    if (a.name !== e.name || a.dtype !== e.dtype || a.shape.join('x') !== e.shape.join('x')) {
      throw new FtlError(
        ErrorCode.WeightsMismatch,
        `tensor ${i} should be ${e.name} [${e.shape.join(', ')}] ${e.dtype} but is ${a.name} [${a.shape.join(', ')}] ${a.dtype}`,
      );
    }
  });
}

/** Index of the first NaN or ±Infinity, or -1 when every value is finite. */
export function firstNonFinite(values: Float32Array): number {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i]!)) return i;
  return -1;
}
