import { createRng } from '../src/random.js';
import { MODEL_JSON, type ModelFile } from '../src/model/model-folder.js';

/** Node names of {@link tinyGraphModelFiles}' graph worth picking as feature outputs. */
export const TINY_GRAPH_NODES = {
  /** The Placeholder: images [batch, h, w, c]. */
  input: 'images',
  /** ReLU of a 5×5 stride-2 convolution with 8 filters: [batch, h', w', 8], flattened when picked. */
  conv: 'conv/Relu',
  /** ReLU of a dense layer on the flattened convolution: [batch, features]. */
  features: 'features/Relu',
  /** Softmax over 10 classes: the graph's own output. */
  output: 'probs',
  /** A weight constant: not computed from the input, so not a usable feature output. */
  constant: 'features/kernel',
  /** The reshape target, a rank-1 constant. */
  shape: 'flatten/shape',
} as const;

type Attr = Record<string, unknown>;
const float = { type: 'DT_FLOAT' };
const b64 = (s: string) => Buffer.from(s).toString('base64');
const dims = (shape: readonly number[]) => ({ dim: shape.map((size) => ({ size: String(size) })) });

/**
 * A tiny TensorFlow.js graph model written by hand, the way tfjs-converter lays one out: a GraphDef
 * topology (`Placeholder → Conv2D → Relu → Reshape → MatMul → BiasAdd → Relu → MatMul → Softmax`, every
 * weight a `Const` node) and seeded random weights in two shards. For tests of graph-model
 * backbones; its random convolution and projection give features a head can learn from.
 *
 * @example
 * await writeModelFiles(dir, tinyGraphModelFiles({ seed: 1 }));
 */
export function tinyGraphModelFiles(options: { seed?: number; features?: number; inputShape?: [number, number, number] } = {}): ModelFile[] {
  const [h, w, c] = options.inputShape ?? [28, 28, 1];
  const units = options.features ?? 64;
  const filters = 8;
  const [oh, ow] = [Math.floor((h - 5) / 2) + 1, Math.floor((w - 5) / 2) + 1];
  const flat = oh * ow * filters;
  const rng = createRng(options.seed ?? 1);
  const heUniform = (fanIn: number, n: number) => {
    const limit = Math.sqrt(6 / fanIn);
    return Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * limit);
  };
  const weights: Array<{ name: string; shape: number[]; dtype: 'float32' | 'int32'; values: Float32Array | Int32Array }> = [
    { name: 'conv/filter', shape: [5, 5, c, filters], dtype: 'float32', values: heUniform(25 * c, 25 * c * filters) },
    { name: 'flatten/shape', shape: [2], dtype: 'int32', values: Int32Array.from([-1, flat]) },
    { name: 'features/kernel', shape: [flat, units], dtype: 'float32', values: heUniform(flat, flat * units) },
    { name: 'features/bias', shape: [units], dtype: 'float32', values: new Float32Array(units).fill(0.01) },
    { name: 'logits/kernel', shape: [units, 10], dtype: 'float32', values: heUniform(units, units * 10) },
  ];
  const node = (name: string, op: string, input: string[], attr: Attr) => ({ name, op, ...(input.length ? { input } : {}), attr });
  const constant = (wt: (typeof weights)[number]) => {
    const dtype = wt.dtype === 'int32' ? 'DT_INT32' : 'DT_FLOAT';
    return node(wt.name, 'Const', [], { dtype: { type: dtype }, value: { tensor: { dtype, tensorShape: dims(wt.shape) } } });
  };
  const topology = {
    node: [
      node('images', 'Placeholder', [], { dtype: float, shape: { shape: dims([-1, h, w, c]) } }),
      ...weights.map(constant),
      node('conv/Conv2D', 'Conv2D', ['images', 'conv/filter'], {
        T: float,
        strides: { list: { i: ['1', '2', '2', '1'] } },
        padding: { s: b64('VALID') },
        data_format: { s: b64('NHWC') },
        dilations: { list: { i: ['1', '1', '1', '1'] } },
        use_cudnn_on_gpu: { b: true },
      }),
      node('conv/Relu', 'Relu', ['conv/Conv2D'], { T: float }),
      node('flatten/Reshape', 'Reshape', ['conv/Relu', 'flatten/shape'], { T: float, Tshape: { type: 'DT_INT32' } }),
      node('features/MatMul', 'MatMul', ['flatten/Reshape', 'features/kernel'], { T: float, transpose_a: { b: false }, transpose_b: { b: false } }),
      node('features/BiasAdd', 'BiasAdd', ['features/MatMul', 'features/bias'], { T: float, data_format: { s: b64('NHWC') } }),
      node('features/Relu', 'Relu', ['features/BiasAdd'], { T: float }),
      node('logits/MatMul', 'MatMul', ['features/Relu', 'logits/kernel'], { T: float, transpose_a: { b: false }, transpose_b: { b: false } }),
      node('probs', 'Softmax', ['logits/MatMul'], { T: float }),
    ],
    library: {},
    versions: { producer: 1395 },
  };
  const bytes = Buffer.concat(weights.map((wt) => Buffer.from(wt.values.buffer, wt.values.byteOffset, wt.values.byteLength)));
  // Two shards cut mid-tensor, as tfjs-converter does at its shard size.
  const cut = Math.floor(bytes.byteLength / 2);
  const shards = ['group1-shard1of2.bin', 'group1-shard2of2.bin'];
  const modelJson = {
    format: 'graph-model',
    generatedBy: 'ftl tinyGraphModelFiles',
    convertedBy: null,
    modelTopology: topology,
    weightsManifest: [{ paths: shards, weights: weights.map(({ name, shape, dtype }) => ({ name, shape, dtype })) }],
  };
  return [
    { name: MODEL_JSON, bytes: new Uint8Array(Buffer.from(JSON.stringify(modelJson))) },
    { name: shards[0]!, bytes: new Uint8Array(bytes.subarray(0, cut)) },
    { name: shards[1]!, bytes: new Uint8Array(bytes.subarray(cut)) },
  ];
}
