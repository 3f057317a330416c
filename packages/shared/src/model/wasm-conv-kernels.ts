import * as tf from '@tensorflow/tfjs';
import { ErrorCode, FtlError } from '../errors.js';

// The stock WASM backend has no kernels for the convolution filter gradients (nor the depthwise input
// gradient), so training any convolution there throws; and its forward convolutions get 'same' padding
// wrong for some shapes (see SAME_PADDING_KERNELS). These kernels build them from kernels the WASM
// backend does have — Conv2D and BatchMatMul (XNNPACK), Reshape, Transpose, Pad, Slice — so the
// arithmetic runs in WASM and JavaScript only moves tensor handles: the filter gradient is one matrix
// product of the input patches (im2col) with the output gradient.

type Info = tf.TensorInfo;
type Backend = tf.KernelBackend & {
  disposeData(dataId: object, force?: boolean): boolean;
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: Float32Array): Info;
};
type Shape4 = [number, number, number, number];
type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };
/** The attributes tfjs passes to the convolution gradient kernels (explicit padding arrives as 'same'/'valid' or a number here). */
type ConvAttrs = {
  strides: number | [number, number];
  pad: 'same' | 'valid' | number;
  dilations?: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dataFormat?: string;
};

/** Runs another kernel of the same backend and returns its output. */
function call(backend: Backend, name: string, inputs: tf.NamedTensorInfoMap | Info[], attrs: object = {}): Info {
  const kernel = tf.getKernel(name, 'wasm');
  if (!kernel) throw new FtlError(ErrorCode.BackendUnavailable, `the wasm backend has no ${name} kernel`);
  return kernel.kernelFunc({ inputs: inputs as tf.NamedTensorInfoMap, backend, attrs: attrs as tf.NamedAttrMap }) as Info;
}

/** Frees intermediate results (each holds one reference to its data). */
function free(backend: Backend, ...infos: Info[]): void {
  for (const i of infos) backend.disposeData(i.dataId);
}

function refuse(kernel: string, what: string): never {
  throw new FtlError(ErrorCode.BackendUnavailable, `${kernel} on wasm supports ${what}; use FTL_BACKEND=cpu for this model`);
}

function checkFormat(kernel: string, dataFormat: unknown, dilations: unknown): void {
  if (dataFormat !== undefined && dataFormat !== 'NHWC') refuse(kernel, `only NHWC data (got ${String(dataFormat)})`);
  const d = dilations === undefined ? [1, 1] : typeof dilations === 'number' ? [dilations, dilations] : (dilations as number[]);
  if (d.some((v) => v !== 1)) refuse(kernel, `only dilation 1 (got ${d.join('×')})`);
}

/** One-hot filter banks for patch extraction, per backend and [KH, KW, C]; small and reused every step. */
const identityFilters = new WeakMap<object, Map<string, Info>>();

function identityFilter(backend: Backend, kh: number, kw: number, c: number): Info {
  let byShape = identityFilters.get(backend);
  if (!byShape) identityFilters.set(backend, (byShape = new Map()));
  const key = `${kh}x${kw}x${c}`;
  let info = byShape.get(key);
  if (!info) {
    // Output channel (i, j, ch) copies input channel ch at filter tap (i, j).
    const k = kh * kw * c;
    const eye = new Float32Array(k * k);
    for (let o = 0; o < k; o++) eye[o * k + o] = 1;
    info = backend.makeOutput([kh, kw, c, k], 'float32', undefined, eye);
    byShape.set(key, info);
  }
  return info;
}

/**
 * The input patches as a matrix: row (b, oh, ow), column (kh, kw, c), i.e. im2col in the filter's own
 * [KH, KW, C] order. Extracted by a forward convolution with a one-hot filter bank, which runs in
 * XNNPACK and handles stride and padding exactly as the convolution being differentiated
 * (StridedSlice + Concat did the same 25× slower).
 */
function patches(backend: Backend, x: Info, conv: tf.backend_util.Conv2DInfo): Info {
  const { batchSize: B, outHeight: OH, outWidth: OW, strideHeight: sh, strideWidth: sw, filterHeight: KH, filterWidth: KW, inChannels: C } = conv;
  const { top, bottom, left, right } = conv.padInfo;
  const cols = call(
    backend,
    'Conv2D',
    { x, filter: identityFilter(backend, KH, KW, C) },
    {
      strides: [sh, sw],
      pad: [
        [0, 0],
        [top, bottom],
        [left, right],
        [0, 0],
      ],
      dilations: 1,
      dataFormat: 'NHWC',
    },
  );
  const matrix = call(backend, 'Reshape', { x: cols }, { shape: [B * OH * OW, KH * KW * C] });
  free(backend, cols);
  return matrix;
}

function conv2dBackpropFilter({ inputs, backend, attrs }: KernelArgs): Info {
  const be = backend as Backend;
  const { x, dy } = inputs as { x: Info; dy: Info };
  const a = attrs as unknown as ConvAttrs & { filterShape: Shape4 };
  checkFormat('Conv2DBackpropFilter', a.dataFormat, 1);
  const conv = tf.backend_util.computeConv2DInfo(x.shape as Shape4, a.filterShape, a.strides, 1, a.pad, a.dimRoundingMode);
  const cols = patches(be, x, conv);
  const grads = call(be, 'Reshape', { x: dy }, { shape: [conv.batchSize * conv.outHeight * conv.outWidth, conv.outChannels] });
  // dyᵀ·patches ([CO, K]) then a transpose of that small result: faster than patchesᵀ·dy here.
  const product = call(be, 'BatchMatMul', { a: grads, b: cols }, { transposeA: true, transposeB: false });
  const productT = call(be, 'Transpose', { x: product }, { perm: [1, 0] });
  const out = call(be, 'Reshape', { x: productT }, { shape: a.filterShape });
  free(be, cols, grads, product, productT);
  return out;
}

function depthwiseBackpropFilter({ inputs, backend, attrs }: KernelArgs): Info {
  const be = backend as Backend;
  const { x, dy } = inputs as { x: Info; dy: Info };
  const a = attrs as unknown as ConvAttrs & { filterShape: Shape4 };
  checkFormat('DepthwiseConv2dNativeBackpropFilter', 'NHWC', a.dilations);
  const conv = tf.backend_util.computeConv2DInfo(x.shape as Shape4, a.filterShape, a.strides, 1, a.pad, a.dimRoundingMode, true);
  const [KH, KW, C, M] = a.filterShape;
  const N = conv.batchSize * conv.outHeight * conv.outWidth;
  // Per channel c: patches[c] (KH·KW × N) times dy[c] (N × M), as one batched product over channels.
  const cols = patches(be, x, conv);
  const cols3 = call(be, 'Reshape', { x: cols }, { shape: [N, KH * KW, C] });
  const colsT = call(be, 'Transpose', { x: cols3 }, { perm: [2, 1, 0] });
  const dy3 = call(be, 'Reshape', { x: dy }, { shape: [N, C, M] });
  const dyT = call(be, 'Transpose', { x: dy3 }, { perm: [1, 0, 2] });
  const product = call(be, 'BatchMatMul', { a: colsT, b: dyT }, { transposeA: false, transposeB: false });
  const productT = call(be, 'Transpose', { x: product }, { perm: [1, 0, 2] });
  const out = call(be, 'Reshape', { x: productT }, { shape: [KH, KW, C, M] });
  free(be, cols, cols3, colsT, dy3, dyT, product, productT);
  return out;
}

function depthwiseBackpropInput({ inputs, backend, attrs }: KernelArgs): Info {
  const be = backend as Backend;
  const { dy, filter } = inputs as { dy: Info; filter: Info };
  const a = attrs as unknown as ConvAttrs & { inputShape: Shape4 };
  checkFormat('DepthwiseConv2dNativeBackpropInput', 'NHWC', a.dilations);
  const filterShape = filter.shape as Shape4;
  const conv = tf.backend_util.computeConv2DInfo(a.inputShape, filterShape, a.strides, 1, a.pad, a.dimRoundingMode, true);
  const { batchSize: B, inHeight: H, inWidth: W, outHeight: OH, outWidth: OW, strideHeight: sh, strideWidth: sw } = conv;
  const { top, bottom, left, right } = conv.padInfo;
  const [KH, KW, C, M] = filterShape;
  const Hp = H + top + bottom;
  const Wp = W + left + right;
  const spanH = (OH - 1) * sh + 1;
  const spanW = (OW - 1) * sw + 1;
  // contribution of tap (kh, kw): Σ_m dy[.., c·M+m] · w[kh, kw, c, m], placed at rows kh + oh·sh, columns kw + ow·sw.
  const dy5 = call(be, 'Reshape', { x: dy }, { shape: [B, OH, OW, C, M] });
  let sum: Info | undefined;
  for (let kh = 0; kh < KH; kh++) {
    for (let kw = 0; kw < KW; kw++) {
      const tap = call(be, 'Slice', { x: filter }, { begin: [kh, kw, 0, 0], size: [1, 1, C, M] });
      const tap2 = call(be, 'Reshape', { x: tap }, { shape: [C, M] });
      const prod = call(be, 'Multiply', { a: dy5, b: tap2 });
      const contrib = call(be, 'Sum', { x: prod }, { axis: [4], keepDims: false });
      // Spread the [OH, OW] grid out to stride spacing by padding a unit axis, then shift it to (kh, kw).
      const six = call(be, 'Reshape', { x: contrib }, { shape: [B, OH, 1, OW, 1, C] });
      const spread = call(
        be,
        'PadV2',
        { x: six },
        {
          paddings: [
            [0, 0],
            [0, 0],
            [0, sh - 1],
            [0, 0],
            [0, sw - 1],
            [0, 0],
          ],
          constantValue: 0,
        },
      );
      const grid = call(be, 'Reshape', { x: spread }, { shape: [B, OH * sh, OW * sw, C] });
      const cropped = call(be, 'Slice', { x: grid }, { begin: [0, 0, 0, 0], size: [B, spanH, spanW, C] });
      const placed = call(
        be,
        'PadV2',
        { x: cropped },
        {
          paddings: [
            [0, 0],
            [kh, Hp - kh - spanH],
            [kw, Wp - kw - spanW],
            [0, 0],
          ],
          constantValue: 0,
        },
      );
      free(be, tap, tap2, prod, contrib, six, spread, grid, cropped);
      if (sum === undefined) sum = placed;
      else {
        const next = call(be, 'Add', { a: sum, b: placed });
        free(be, sum, placed);
        sum = next;
      }
    }
  }
  const dx = call(be, 'Slice', { x: sum! }, { begin: [0, top, left, 0], size: [B, H, W, C] });
  free(be, dy5, sum!);
  return dx;
}

/**
 * The stock wasm forward convolutions hand 'same' padding to XNNPACK as a flag, and for some shapes
 * (stride larger than the filter, or input rows the stride skips) XNNPACK pads differently from
 * TensorFlow and the output is wrong. Passing the same padding as explicit numbers gives the right result.
 */
const SAME_PADDING_KERNELS = ['Conv2D', 'FusedConv2D', 'DepthwiseConv2dNative', 'FusedDepthwiseConv2D'];

function withExplicitSamePadding(name: string, stock: tf.KernelConfig): tf.KernelConfig {
  const depthwise = name.includes('Depthwise');
  return {
    ...stock,
    kernelFunc: (args) => {
      const attrs = args.attrs as unknown as { pad: unknown; strides: number | [number, number]; dilations?: number | [number, number] };
      if (attrs.pad !== 'same') return stock.kernelFunc(args);
      const { x, filter } = args.inputs as { x: Info; filter: Info };
      const { padInfo } = tf.backend_util.computeConv2DInfo(
        x.shape as Shape4,
        filter.shape as Shape4,
        attrs.strides,
        attrs.dilations ?? 1,
        'same',
        undefined,
        depthwise,
      );
      const pad = [
        [0, 0],
        [padInfo.top, padInfo.bottom],
        [padInfo.left, padInfo.right],
        [0, 0],
      ];
      return stock.kernelFunc({ ...args, attrs: { ...args.attrs, pad } as unknown as tf.NamedAttrMap });
    },
  };
}

let registered = false;

/**
 * Registers ftl's convolution kernels for the `wasm` backend, once per process: the missing gradient
 * kernels, and the forward convolutions with 'same' padding made explicit. Called by
 * {@link initBackend} when wasm loads.
 */
export function registerWasmConvKernels(): void {
  if (registered) return;
  registered = true;
  const kernels: Array<[string, tf.KernelFunc]> = [
    ['Conv2DBackpropFilter', conv2dBackpropFilter as tf.KernelFunc],
    ['DepthwiseConv2dNativeBackpropFilter', depthwiseBackpropFilter as tf.KernelFunc],
    ['DepthwiseConv2dNativeBackpropInput', depthwiseBackpropInput as tf.KernelFunc],
  ];
  for (const [kernelName, kernelFunc] of kernels) {
    if (!tf.getKernel(kernelName, 'wasm')) tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc });
  }
  for (const name of SAME_PADDING_KERNELS) {
    const stock = tf.getKernel(name, 'wasm');
    if (!stock) continue;
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel(withExplicitSamePadding(name, stock));
  }
}
