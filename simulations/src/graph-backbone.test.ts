import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { BACKBONE_META_FILE, EXPORT_META_FILE, loadExportedModel } from '@ftl/coordinator';
import { federationSplit, initBackend, loadBuiltinDataset, type ModelFile } from '@ftl/shared';
import { TINY_GRAPH_NODES, tinyGraphModelFiles } from '@ftl/shared/testing';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readFile } from 'node:fs/promises';
import { makeClient, runToEnd, scratch, startCoordinator } from './test-federation.js';

let modelHost: Server;
let modelUrl: string;

/** A plain static host for a model: `/tiny/<file>` from memory, 404 otherwise. */
function hostModel(files: readonly ModelFile[]): Promise<Server> {
  const byPath = new Map(files.map((f) => [`/tiny/${f.name}`, f.bytes]));
  const server = createServer((req, res) => {
    const body = byPath.get(req.url ?? '');
    res.writeHead(body ? 200 : 404).end(body ?? 'not found');
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

beforeAll(async () => {
  await initBackend();
  // The description beside model.json picks the feature node, as ftl-backbone.json does for a folder.
  const meta = { name: 'tiny-graph', featureLayer: TINY_GRAPH_NODES.features, inputShape: [28, 28, 1] };
  modelHost = await hostModel([
    ...tinyGraphModelFiles({ seed: 11, features: 128 }),
    { name: BACKBONE_META_FILE, bytes: new Uint8Array(Buffer.from(JSON.stringify(meta))) },
  ]);
  modelUrl = `http://127.0.0.1:${(modelHost.address() as AddressInfo).port}/tiny`;
});

afterAll(async () => {
  await new Promise((resolve) => modelHost.close(resolve));
});

describe('a graph-model backbone from an http address', () => {
  test('2 clients, 2 rounds on 600 MNIST samples with federated normalisation: every update accepted, the chained export beats chance on held-out digits', async () => {
    const dir = await scratch('graph');
    const { coordinator, url } = await startCoordinator({
      backboneDir: modelUrl,
      minClients: 2,
      rounds: 2,
      exportDir: join(dir, 'model'),
      fit: { epochs: 5, batchSize: 16, learningRate: 0.003 },
      normalization: 'standard',
    });
    expect(coordinator.head.featureDim).toBe(128);
    const clients = await Promise.all(
      [0, 1].map((index) => makeClient({ url, index, clients: 2, limit: 600, cacheDir: join(dir, `cache-${index}`) })),
    );
    const { summary, rows } = await runToEnd(coordinator, clients);

    expect(summary.reason).toBe('completed');
    expect(rows.map((r) => [r.status, r.accepted, r.selected])).toEqual([
      ['aggregated', 2, 2],
      ['aggregated', 2, 2],
    ]);
    expect(rows[1]!.valAccuracy).toBeGreaterThan(0.6); // chance is 0.1

    // The export: the backbone's files and the head side by side, chained by loadExportedModel.
    const meta = JSON.parse(await readFile(join(dir, 'model', EXPORT_META_FILE), 'utf8'));
    expect(meta).toMatchObject({
      kind: 'graph',
      runId: 'test-run',
      backbone: { path: 'backbone', featureNode: TINY_GRAPH_NODES.features, featureDim: 128 },
    });
    // A graph model cannot take a normalisation layer: the values are recorded, the README says to apply them.
    expect(meta.inputNormalization).toMatchObject({ kind: 'standard', shift: [expect.any(Number)], scale: [expect.any(Number)] });
    expect(meta.inputNormalizationInModel).toBeUndefined();
    expect(await readFile(join(dir, 'model', 'README.md'), 'utf8')).toContain('first compute (x − shift) / scale with `inputNormalization`');
    const model = await loadExportedModel(join(dir, 'model'));
    const { test: heldOut } = federationSplit(loadBuiltinDataset('mnist'));
    const accuracy = tf.tidy(() => {
      const x = tf.tensor4d(heldOut.images, [heldOut.n, heldOut.height, heldOut.width, heldOut.channels]);
      return model.predict(x).argMax(1).equal(tf.tensor1d(heldOut.labels, 'int32')).mean().dataSync()[0]!;
    });
    model.dispose();
    expect(accuracy).toBeGreaterThan(0.6);
  });
});
