import * as tf from '@tensorflow/tfjs';

// Two stock wasm kernels are slow on the shapes that training a dense head produces:
//
// - BatchMatMul and _FusedMatMul hand a transposed operand to a plain triple loop instead of XNNPACK.
//   Every dense layer's weight gradient is xᵀ·dy, and its input gradient dy·Wᵀ. A 32 × 1568 × 128
//   product took 7.6 ms with an operand transposed and 0.6 ms without. Transposing the operand first
//   (one copy) and running the plain product took 2.9 ms (xᵀ·dy) and 1.8 ms (dy·Wᵀ), same arithmetic.
// - Slice copies the whole input tensor out of the wasm heap before taking its part, so cutting a
//   32-row batch from a 1400×1568 feature matrix cost 8.9 ms. Reading the heap in place makes a slice
//   cost only the elements it keeps.
//
// `npm run bench -- --only head` measures the effect on head training against the stock kernels; the
// tests in wasm-speed-kernels.test.ts check each kernel against the cpu backend.

type Info = tf.TensorInfo;
type WasmBackend = tf.KernelBackend & {
  disposeData(dataId: object, force?: boolean): boolean;
  makeOutput(shape: number[], dtype: tf.DataType): Info;
  typedArrayFromHeap(info: Info): Float32Array | Int32Array | Uint8Array;
};

/** The permutation that swaps a tensor's last two axes. */
function swapLastTwo(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i);
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  return perm;
}

/** A matrix-product kernel that transposes flagged operands itself, so the product always takes the fast path. */
function withPlainOperands(stock: tf.KernelConfig): tf.KernelConfig {
  const transpose = tf.getKernel('Transpose', 'wasm')!;
  return {
    ...stock,
    kernelFunc: (args) => {
      const attrs = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
      if (!attrs.transposeA && !attrs.transposeB) return stock.kernelFunc(args);
      const backend = args.backend as WasmBackend;
      const flip = (x: Info) => transpose.kernelFunc({ inputs: { x }, backend, attrs: { perm: swapLastTwo(x.shape.length) } }) as Info;
      const { a, b } = args.inputs as { a: Info; b: Info };
      const a2 = attrs.transposeA ? flip(a) : a;
      const b2 = attrs.transposeB ? flip(b) : b;
      const out = stock.kernelFunc({
        ...args,
        inputs: { ...args.inputs, a: a2, b: b2 },
        attrs: { ...args.attrs, transposeA: false, transposeB: false },
      });
      if (a2 !== a) backend.disposeData(a2.dataId);
      if (b2 !== b) backend.disposeData(b2.dataId);
      return out;
    },
  };
}

/**
 * Slice that copies straight from the heap: a contiguous part in one copy, any other part one run of the
 * last axis at a time.
 */
function withInPlaceRead(stock: tf.KernelConfig): tf.KernelConfig {
  return {
    ...stock,
    kernelFunc: (args) => {
      const x = (args.inputs as { x: Info }).x;
      if (x.dtype === 'string') return stock.kernelFunc(args);
      const { begin, size } = args.attrs as unknown as { begin: number | number[]; size: number | number[] };
      const [from, shape] = tf.slice_util.parseSliceParams(x, begin, size) as [number[], number[]];
      const backend = args.backend as WasmBackend;
      const strides = tf.util.computeStrides(x.shape);
      const out = backend.makeOutput(shape, x.dtype);
      // Views taken after makeOutput: allocating may grow the heap, which detaches older views.
      const src = backend.typedArrayFromHeap(x);
      const dst = backend.typedArrayFromHeap(out);
      if (tf.slice_util.isSliceContinous(x.shape, from, shape)) {
        const offset = tf.slice_util.computeFlatOffset(from, strides);
        dst.set(src.subarray(offset, offset + dst.length));
        return out;
      }
      const rank = shape.length;
      const run = shape[rank - 1]!;
      const index = new Array<number>(rank - 1).fill(0);
      for (let written = 0; written < dst.length; written += run) {
        let offset = from[rank - 1]!;
        for (let d = 0; d < rank - 1; d++) offset += (from[d]! + index[d]!) * strides[d]!;
        dst.set(src.subarray(offset, offset + run), written);
        // Next index over the leading axes, last fastest.
        for (let d = rank - 2; d >= 0 && ++index[d]! === shape[d]; d--) index[d] = 0;
      }
      return out;
    },
  };
}

const WRAPPERS: Array<[string, (stock: tf.KernelConfig) => tf.KernelConfig]> = [
  ['BatchMatMul', withPlainOperands],
  ['_FusedMatMul', withPlainOperands],
  ['Slice', withInPlaceRead],
];

/** The stock kernels, kept once replaced so a benchmark can measure against them. */
const stockKernels = new Map<string, tf.KernelConfig>();

/**
 * Switches between the faster wrappers above (`true`) and the stock wasm BatchMatMul, _FusedMatMul and
 * Slice kernels (`false`, the baseline of `npm run bench -- --only head`). {@link initBackend} turns
 * them on when wasm loads; nothing else needs to call this.
 */
export function useWasmSpeedKernels(enabled: boolean): void {
  for (const [name, wrap] of WRAPPERS) {
    const current = tf.getKernel(name, 'wasm');
    if (!current) continue;
    if (!stockKernels.has(name)) stockKernels.set(name, current);
    const stock = stockKernels.get(name)!;
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel(enabled ? wrap(stock) : stock);
  }
}
