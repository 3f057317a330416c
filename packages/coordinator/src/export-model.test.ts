import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  createDefaultBackbone,
  createHead,
  ErrorCode,
  getTrainableWeights,
  initBackend,
  isFtlError,
  saveLayersModelToFolder,
  writeModelFiles,
  type HeadConfig,
} from '@ftl/shared';
import { TINY_GRAPH_NODES as N, tinyGraphModelFiles } from '@ftl/shared/testing';
import { beforeAll, describe, expect, test } from 'vitest';
import { loadServedBackbone, type ServedBackbone } from './backbone-server.js';
import { EXPORT_META_FILE, exportGlobalModel, loadExportedModel } from './export-model.js';

let root: string;
beforeAll(async () => {
  await initBackend();
  root = await mkdtemp(join(tmpdir(), 'ftl-export-'));
});

/** Exports `backbone` with a seeded head and checks that the loaded export predicts what backbone + head do. */
async function exportAndCompare(backbone: ServedBackbone, dir: string, featureLayer?: string): Promise<void> {
  const fx = backbone.extractor.at(featureLayer ?? backbone.featureLayer);
  const headConfig: HeadConfig = { featureDim: fx.featureDim, hidden: [16], classes: 10 };
  const head = createHead(headConfig, 5);
  await exportGlobalModel({
    backbone,
    ...(featureLayer ? { featureLayer } : {}),
    head: headConfig,
    weights: getTrainableWeights(head),
    dir,
    meta: { runId: 'r1', classes: ['a'] },
  });
  const exported = await loadExportedModel(dir);
  const x = tf.randomUniform([4, 28, 28, 1], 0, 1, 'float32', 3) as tf.Tensor4D;
  const got = exported.predict(x);
  const want = tf.tidy(() => head.predict(fx.extract(x)) as tf.Tensor);
  expect(got.shape).toEqual([4, 10]);
  expect(Math.max(...(got.sub(want).abs().dataSync() as Float32Array))).toBeLessThan(1e-5);
  tf.dispose([x, got, want]);
  exported.dispose();
  head.dispose();
}

describe('exportGlobalModel', () => {
  test('a graph backbone: its files and the head in two folders, a README on chaining them, and the meta as before plus the chain', async () => {
    await writeModelFiles(join(root, 'graph-src'), tinyGraphModelFiles({ seed: 4 }));
    const backbone = await loadServedBackbone(join(root, 'graph-src'), N.features);
    const dir = join(root, 'graph-export');
    await exportAndCompare(backbone, dir);
    expect((await readdir(dir)).sort()).toEqual(['README.md', 'backbone', 'ftl-model.json', 'head']);
    expect((await readdir(join(dir, 'backbone'))).sort()).toEqual(backbone.files.map((f) => f.name).sort());
    expect((await readdir(join(dir, 'head'))).sort()).toEqual(['model.json', 'weights.bin']);
    const meta = JSON.parse(await readFile(join(dir, EXPORT_META_FILE), 'utf8'));
    expect(meta).toMatchObject({
      runId: 'r1',
      classes: ['a'],
      kind: 'graph',
      sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
      backbone: {
        path: 'backbone',
        format: 'graph-model',
        featureNode: N.features,
        inputShape: [28, 28, 1],
        featureDim: 64,
        sha256: backbone.sha256,
      },
      head: { path: 'head', format: 'layers-model', inputShape: [64] },
    });
    expect(await readFile(join(dir, 'README.md'), 'utf8')).toContain(`backbone.execute(images, '${N.features}')`);
  });

  test("a graph backbone at a run's own cut point exports that node", async () => {
    await writeModelFiles(join(root, 'graph-src2'), tinyGraphModelFiles({ seed: 4 }));
    const backbone = await loadServedBackbone(join(root, 'graph-src2'));
    await exportAndCompare(backbone, join(root, 'graph-conv'), N.conv);
    expect(JSON.parse(await readFile(join(root, 'graph-conv', EXPORT_META_FILE), 'utf8')).backbone).toMatchObject({
      featureNode: N.conv,
      featureDim: 1152,
    });
  });

  test('a layers backbone stays one layers model folder with the meta as before', async () => {
    await saveLayersModelToFolder(createDefaultBackbone({ seed: 1, classes: 10, filters: [4, 8] }), join(root, 'layers-src'));
    const backbone = await loadServedBackbone(join(root, 'layers-src'));
    const dir = join(root, 'layers-export');
    await exportAndCompare(backbone, dir);
    expect((await readdir(dir)).sort()).toEqual(['ftl-model.json', 'model.json', 'weights.bin']);
    expect(Object.keys(JSON.parse(await readFile(join(dir, EXPORT_META_FILE), 'utf8'))).sort()).toEqual(['classes', 'runId', 'sha256']);
  });

  test('loadExportedModel refuses a folder that is no export', async () => {
    const err = await loadExportedModel(join(root, 'graph-src')).catch((e: unknown) => e);
    expect(isFtlError(err, ErrorCode.BackboneLoad)).toBe(true);
    expect((err as Error).message).toMatch(/graph-src is not an ftl export: cannot read ftl-model.json/);
  });
});
