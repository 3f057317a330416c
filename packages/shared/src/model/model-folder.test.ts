import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { initBackend } from './backend.js';
import { loadLayersModelFromFolder, modelDigest, readModelFolder, saveLayersModelToFolder } from './model-folder.js';

let dir: string;
beforeAll(async () => {
  await initBackend();
});

async function savedModel(): Promise<{ dir: string; model: tf.Sequential }> {
  const model = tf.sequential({
    layers: [tf.layers.dense({ inputShape: [4], units: 3, name: 'only', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) })],
  });
  dir = await mkdtemp(join(tmpdir(), 'ftl-mf-'));
  await saveLayersModelToFolder(model, dir);
  return { dir, model };
}

describe('model folders', () => {
  test('a saved model loads back with the same predictions and the same digest', async () => {
    const { dir, model } = await savedModel();
    const loaded = await loadLayersModelFromFolder(dir);
    const x = tf.tensor2d([[1, 2, 3, 4]]);
    expect(Array.from((loaded.predict(x) as tf.Tensor).dataSync())).toEqual(Array.from((model.predict(x) as tf.Tensor).dataSync()));
    expect(modelDigest(await readModelFolder(dir))).toBe(modelDigest([...(await readModelFolder(dir))].reverse()));
  });

  test.each<[string, (dir: string) => Promise<void>, RegExp]>([
    ['a missing model.json', (d) => rm(join(d, 'model.json')), /cannot read .*model.json: ENOENT/],
    ['a model.json that is not JSON', (d) => writeFile(join(d, 'model.json'), '{"modelTopology": '), /model.json is not valid JSON/],
    [
      'a model.json without a topology',
      (d) => writeFile(join(d, 'model.json'), '{"weightsManifest": []}'),
      /is not a TensorFlow.js model: it needs "modelTopology" and "weightsManifest"/,
    ],
    ['a missing weight shard', (d) => rm(join(d, 'weights.bin')), /cannot read .*weights.bin: ENOENT/],
    [
      'a truncated weight shard',
      async (d) => writeFile(join(d, 'weights.bin'), (await readFile(join(d, 'weights.bin'))).subarray(0, 20)),
      /weight files hold 20 bytes but model.json describes 60/,
    ],
    [
      'a weight path outside the folder',
      async (d) => {
        const j = JSON.parse(await readFile(join(d, 'model.json'), 'utf8'));
        j.weightsManifest[0].paths = ['../../etc/passwd'];
        await writeFile(join(d, 'model.json'), JSON.stringify(j));
      },
      /weight path "..\/..\/etc\/passwd" must be a plain file name inside the model folder/,
    ],
  ])('refuses %s with a message naming the problem', async (_, breakIt, message) => {
    const { dir } = await savedModel();
    await breakIt(dir);
    await expect(loadLayersModelFromFolder(dir)).rejects.toThrow(message);
  });
});
