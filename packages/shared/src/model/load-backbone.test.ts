import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ErrorCode, isFtlError } from '../errors.js';
import { expectFtlError } from '../../test-support/expect-ftl-error.js';
import { initBackend } from './backend.js';
import { assertInputCompatible, extractFeatures, loadBackbone, type FeatureExtractor } from './backbone.js';
import { MODEL_JSON, saveLayersModelToFolder, writeModelFiles } from './model-folder.js';
import { readBesideModel, readModelSource } from './model-source.js';
import { TINY_GRAPH_NODES as N, tinyGraphModelFiles } from '../../test-support/tiny-graph-model.js';

let root: string;
let server: Server;
let base: string;

/** Serves `root` read-only over http, like any static file host. */
function serveFolder(dir: string): Promise<Server> {
  const s = createServer(async (req, res) => {
    try {
      const body = await readFile(join(dir, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)));
      res.writeHead(200).end(body);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve(s)));
}

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, message: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isFtlError(err, code), `expected FtlError ${code}, got ${String(err)}`).toBe(true);
  expect((err as Error).message).toMatch(message);
}

/** A fresh copy of a model folder under `root`, to break. */
async function folder(kind: 'graph' | 'layers', name: string): Promise<string> {
  const dir = join(root, name);
  if (kind === 'graph') await writeModelFiles(dir, tinyGraphModelFiles({ seed: 3 }));
  else await saveLayersModelToFolder(smallLayersModel(), dir);
  return dir;
}

function smallLayersModel(): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.conv2d({
        name: 'conv',
        inputShape: [28, 28, 1],
        filters: 4,
        kernelSize: 3,
        strides: 2,
        kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
      }),
      tf.layers.flatten({ name: 'flat' }),
      tf.layers.dense({ name: 'fc', units: 12, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
      tf.layers.dense({ name: 'out', units: 10, activation: 'softmax' }),
    ],
  });
}

async function load(source: string, feature?: string): Promise<FeatureExtractor> {
  return loadBackbone(await readModelSource(source), { ...(feature !== undefined ? { feature } : {}), where: source });
}

/** Edits a folder's model.json in place. */
async function editModelJson(dir: string, edit: (j: any) => void): Promise<void> {
  const j = JSON.parse(await readFile(join(dir, MODEL_JSON), 'utf8'));
  edit(j);
  await writeFile(join(dir, MODEL_JSON), JSON.stringify(j));
}

beforeAll(async () => {
  await initBackend();
  root = await mkdtemp(join(tmpdir(), 'ftl-backbone-'));
  await folder('graph', 'graph');
  await folder('layers', 'layers');
  server = await serveFolder(root);
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await rm(root, { recursive: true, force: true });
});

describe('loadBackbone: graph models', () => {
  test.each([
    ['a folder', () => join(root, 'graph')],
    ['an http folder address', () => `${base}/graph`],
    ['an http address of model.json', () => `${base}/graph/model.json`],
  ])('from %s, read at a named node, gives the same features as the graph computed by hand', async (_, source) => {
    const fx = await load(source(), N.features);
    expect([fx.kind, fx.feature, fx.featureDim, fx.inputShape]).toEqual(['graph', N.features, 64, [28, 28, 1]]);
    const x = tf.randomUniform([3, 28, 28, 1], 0, 1, 'float32', 7) as tf.Tensor4D;
    const got = fx.extract(x);
    if (fx.kind !== 'graph') throw new Error('expected a graph backbone');
    const w = fx.model.weights;
    const want = tf.tidy(() => {
      const conv = tf.relu(tf.conv2d(x, w['conv/filter']![0] as tf.Tensor4D, 2, 'valid'));
      const flat = conv.reshape([3, -1]) as tf.Tensor2D;
      return tf.relu(flat.matMul(w['features/kernel']![0] as tf.Tensor2D).add(w['features/bias']![0]!));
    });
    expect(got.shape).toEqual([3, 64]);
    expect(Math.max(...(got.sub(want).abs().dataSync() as Float32Array))).toBeLessThan(1e-4);
    tf.dispose([x, got, want]);
    fx.dispose();
  });

  test('a spatial node is flattened, the default feature is the graph output, and extraction leaks no tensors', async () => {
    const byDefault = await load(join(root, 'graph'));
    expect([byDefault.feature, byDefault.featureDim]).toEqual([N.output, 10]);
    // Other cut points share the one loaded model.
    const conv = byDefault.at(N.conv);
    expect(conv.featureDim).toBe(12 * 12 * 8);
    expect(conv.model).toBe(byDefault.model);
    expect(byDefault.at(N.conv)).toBe(conv);
    expect(byDefault.at(`${N.input}:0`).featureDim).toBe(784);
    const before = tf.memory().numTensors;
    const ds = { n: 5, height: 28, width: 28, channels: 1, images: new Float32Array(5 * 784).fill(0.5), labels: new Int32Array(5), classes: [] };
    const feats = await extractFeatures(byDefault, ds as never, { batchSize: 2 });
    expect(feats.length).toBe(50);
    expect(tf.memory().numTensors).toBe(before);
    conv.dispose();
    byDefault.dispose();
    expect(tf.memory().numTensors).toBeLessThan(before - 4);
  });
});

describe('loadBackbone: layers models', () => {
  test.each([
    ['a folder', () => join(root, 'layers')],
    ['an http address', () => `${base}/layers/`],
  ])('from %s, cut at a layer, matches the cut model', async (_, source) => {
    const fx = await load(source(), 'fc');
    expect([fx.kind, fx.feature, fx.featureDim, fx.inputShape]).toEqual(['layers', 'fc', 12, [28, 28, 1]]);
    const x = tf.ones([2, 28, 28, 1]) as tf.Tensor4D;
    const got = fx.extract(x);
    expect(got.shape).toEqual([2, 12]);
    tf.dispose([x, got]);
    const conv = fx.at('conv');
    expect(conv.featureDim).toBe(13 * 13 * 4);
    fx.dispose();
    conv.dispose(); // the second dispose of the shared backbone is a no-op
  });
});

describe('backbone errors say what is wrong and how to fix it', () => {
  // Each case breaks a fresh copy of a folder; the message is checked from the folder and over http.
  test.each<[string, 'graph' | 'layers', (dir: string) => Promise<unknown>, RegExp, RegExp]>([
    [
      'a missing model.json',
      'graph',
      (d) => rm(join(d, MODEL_JSON)),
      /cannot read .*model.json: ENOENT.*a backbone is a folder \(or http\(s\) address\) holding a TensorFlow.js model.json/,
      /cannot fetch model.json from http:.*model.json: HTTP 404.*must be a folder holding model.json/,
    ],
    [
      'a model.json that is not JSON',
      'graph',
      (d) => writeFile(join(d, MODEL_JSON), '{"modelTopology": {'),
      /model.json is not valid JSON/,
      /model.json is not valid JSON/,
    ],
    [
      'a model.json without weightsManifest',
      'graph',
      (d) => editModelJson(d, (j) => delete j.weightsManifest),
      /is not a TensorFlow.js model: it needs "modelTopology" and "weightsManifest"/,
      /it needs "modelTopology" and "weightsManifest"/,
    ],
    [
      'a manifest group without paths',
      'layers',
      (d) => editModelJson(d, (j) => delete j.weightsManifest[0].paths),
      /weightsManifest\[0\] must have "paths" \(weight file names\) and "weights"/,
      /weightsManifest\[0\] must have "paths"/,
    ],
    [
      'a model of neither format',
      'graph',
      (d) =>
        editModelJson(d, (j) => {
          j.format = 'saved-model';
        }),
      /is neither a layers model nor a graph model \(format "saved-model"\).*"layers-model" or "graph-model"/,
      /neither a layers model nor a graph model/,
    ],
    [
      'a graph node whose input is no node',
      'graph',
      (d) =>
        editModelJson(d, (j) => {
          j.modelTopology.node[7].input = ['nowhere:0'];
        }),
      /model.json: node "conv\/Relu" takes input "nowhere:0", which is not a node of the graph; the GraphDef is damaged/,
      /node "conv\/Relu" takes input "nowhere:0"/,
    ],
    [
      'a graph without versions',
      'graph',
      (d) =>
        editModelJson(d, (j) => {
          delete j.modelTopology.versions;
        }),
      /broken-\w+ is not a loadable TensorFlow.js graph model: /,
      /broken-\w+ is not a loadable TensorFlow.js graph model: /,
    ],
    [
      'a missing weight shard',
      'graph',
      (d) => rm(join(d, 'group1-shard2of2.bin')),
      /cannot read .*group1-shard2of2.bin: ENOENT.*names it in its weightsManifest: copy the complete model folder/,
      /cannot fetch weight file "group1-shard2of2.bin" from http:.*HTTP 404.*names it in its weightsManifest/,
    ],
    [
      'a truncated weight shard',
      'graph',
      async (d) => writeFile(join(d, 'group1-shard1of2.bin'), (await readFile(join(d, 'group1-shard1of2.bin'))).subarray(0, 100)),
      /weight files hold \d+ bytes but model.json describes \d+; the folder is corrupt or from another model \(group1-shard1of2.bin, group1-shard2of2.bin\)/,
      /weight files hold \d+ bytes but model.json describes \d+/,
    ],
    [
      'a manifest that describes more weights than the shards hold',
      'layers',
      (d) =>
        editModelJson(d, (j) => {
          j.weightsManifest[0].weights[0].shape = [3, 3, 1, 8];
        }),
      /weight files hold \d+ bytes but model.json describes \d+/,
      /weight files hold \d+ bytes but model.json describes \d+/,
    ],
  ])('%s', async (_, kind, breakIt, folderMessage, httpMessage) => {
    const name = `broken-${Math.random().toString(36).slice(2)}`;
    const dir = await folder(kind, name);
    await breakIt(dir);
    await rejectsWith(load(dir), ErrorCode.BackboneLoad, folderMessage);
    await rejectsWith(load(`${base}/${name}`), ErrorCode.BackboneLoad, httpMessage);
  });

  test('a weight file missing from downloaded files is named', async () => {
    const files = tinyGraphModelFiles().filter((f) => f.name !== 'group1-shard1of2.bin');
    await rejectsWith(
      loadBackbone(files, { where: 'the download' }),
      ErrorCode.BackboneLoad,
      /the download: weight file "group1-shard1of2.bin" is missing; model.json names it in its weightsManifest/,
    );
  });

  test('an unreachable address says so', async () => {
    const closed = await serveFolder(root);
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    await rejectsWith(
      load(`http://127.0.0.1:${port}/graph`),
      ErrorCode.BackboneLoad,
      /cannot fetch model.json from http:\/\/127.0.0.1:\d+\/graph\/model.json: .*check the address and that its server is reachable/,
    );
  });

  test.each<[string, string, RegExp]>([
    ['an unknown node', 'features/Nope', /has no node "features\/Nope"; its computed nodes are: conv\/Conv2D, conv\/Relu, .*probs/],
    ['a weight constant', N.constant, /node "features\/kernel" is a constant \(a weight\), not computed from the images; pick a node downstream/],
    ['a scalar node', 'images/Size', /node "images\/Size" gives \[\] for a batch of 2 images, not a feature vector \[batch, d\]/],
    ['a node without a batch dimension', 'images/Shape', /node "images\/Shape" gives \[4\] for a batch of 2 images, not a feature vector/],
  ])('a graph read at %s', async (_, feature, message) => {
    const dir = await folder('graph', `nodes-${Math.random().toString(36).slice(2)}`);
    await editModelJson(dir, (j) =>
      j.modelTopology.node.push(
        { name: 'images/Size', op: 'Size', input: ['images'], attr: { T: { type: 'DT_FLOAT' }, out_type: { type: 'DT_INT32' } } },
        { name: 'images/Shape', op: 'Shape', input: ['images'], attr: { T: { type: 'DT_FLOAT' }, out_type: { type: 'DT_INT32' } } },
      ),
    );
    await rejectsWith(load(dir, feature), ErrorCode.BackboneLoad, message);
    // With three outputs now, no default feature can be chosen.
    if (feature === N.constant) await rejectsWith(load(dir), ErrorCode.BackboneLoad, /has 3 outputs \(.*\); name the feature node/);
  });

  test('a graph whose input size is not fixed', async () => {
    const dir = await folder('graph', 'dynamic');
    await editModelJson(dir, (j) => {
      j.modelTopology.node[0].attr.shape.shape.dim[1].size = '-1';
    });
    await rejectsWith(load(dir), ErrorCode.BackboneLoad, /input "images" has shape \[batch, \?, 28, 1\]; .*fixed height, width and channels/);
  });

  test('a layers model cut at an unknown layer lists its layers', async () => {
    await rejectsWith(
      load(join(root, 'layers'), 'features'),
      ErrorCode.BackboneLoad,
      /backbone has no layer "features"; its layers are: conv, flat, fc, out/,
    );
  });

  test('a backbone that cannot take the data names both shapes', async () => {
    expectFtlError(
      () => assertInputCompatible([32, 32, 3], [28, 28, 1]),
      ErrorCode.Dataset,
      /the backbone takes 32x32x3 images \(height x width x channels\) but the data are 28x28x1; resize the images or convert grayscale\/RGB to 32x32x3, or choose a backbone whose input is 28x28x1/,
    );
    expectFtlError(() => assertInputCompatible([28, 28], [28, 28, 1]), ErrorCode.Dataset, /takes 28x28 images .* but the data are 28x28x1/);
    expect(() => assertInputCompatible([null, -1, 1], [28, 28, 1])).not.toThrow();
    const fx = await loadBackbone(tinyGraphModelFiles({ inputShape: [32, 32, 3] }), { feature: N.features, where: 'rgb' });
    expect(fx.inputShape).toEqual([32, 32, 3]);
    const ds = { n: 1, height: 28, width: 28, channels: 1, images: new Float32Array(784), labels: new Int32Array(1), classes: [] };
    await expect(extractFeatures(fx, ds as never)).rejects.toMatchObject({
      code: ErrorCode.Dataset,
      message: expect.stringMatching(/the backbone takes 32x32x3 images .* but the data are 28x28x1/),
    });
    fx.dispose();
  });
});

describe('readBesideModel', () => {
  test('reads a file next to model.json from a folder or over http, undefined when absent', async () => {
    await writeFile(join(root, 'graph', 'notes.txt'), 'hi');
    for (const source of [join(root, 'graph'), `${base}/graph`, `${base}/graph/model.json`]) {
      expect(Buffer.from((await readBesideModel(source, 'notes.txt'))!).toString()).toBe('hi');
      expect(await readBesideModel(source, 'absent.json')).toBeUndefined();
    }
  });
});
