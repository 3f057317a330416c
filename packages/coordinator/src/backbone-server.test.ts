import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDefaultBackbone, ErrorCode, initBackend, isFtlError, modelDigest, saveLayersModelToFolder, writeModelFiles } from '@ftl/shared';
import { TINY_GRAPH_NODES as N, tinyGraphModelFiles } from '@ftl/shared/testing';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { BACKBONE_META_FILE } from './backbone-meta.js';
import { BACKBONE_PATH, loadServedBackbone, serveBackbone, type ServedBackbone } from './backbone-server.js';
import { rawRequest } from './raw-http.js';

let root: string;
let host: Server;
let served: ServedBackbone | undefined;
let base: string;

beforeAll(async () => {
  await initBackend();
  root = await mkdtemp(join(tmpdir(), 'ftl-served-'));
  await writeModelFiles(join(root, 'graph'), tinyGraphModelFiles({ seed: 2 }));
  await writeModelFiles(join(root, 'described'), tinyGraphModelFiles({ seed: 2 }));
  await writeFile(join(root, 'described', BACKBONE_META_FILE), JSON.stringify({ name: 'tiny', featureLayer: N.features }));
  await saveLayersModelToFolder(createDefaultBackbone({ seed: 1, classes: 10, filters: [4, 8] }), join(root, 'layers'));
  // One host for both: `/src/<folder>/<file>` from disk for sources, `/backbone/<file>` re-served from `served`.
  host = createServer(async (req, res) => {
    if (served && serveBackbone(served, req, res)) return;
    try {
      const body = await readFile(join(root, (req.url ?? '').replace(/^\/src\//, '')));
      res.writeHead(200).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(host.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => host.close(resolve));
});

describe('loadServedBackbone', () => {
  test('a graph model folder: read at its output by default, at the named node when asked', async () => {
    const byDefault = await loadServedBackbone(join(root, 'graph'));
    expect([byDefault.kind, byDefault.featureLayer, byDefault.featureDim, byDefault.inputShape]).toEqual(['graph', N.output, 10, [28, 28, 1]]);
    expect(byDefault.files.map((f) => f.name)).toEqual(['model.json', 'group1-shard1of2.bin', 'group1-shard2of2.bin']);
    expect(byDefault.sha256).toBe(modelDigest(byDefault.files));
    const conv = await loadServedBackbone(join(root, 'graph'), N.conv);
    expect([conv.featureLayer, conv.featureDim]).toEqual([N.conv, 12 * 12 * 8]);
    expect(conv.extractor.at(N.features).featureDim).toBe(64);
  });

  test('ftl-backbone.json names the feature node, from a folder and over http alike; the digest does not depend on the source', async () => {
    const fromFolder = await loadServedBackbone(join(root, 'described'));
    const fromUrl = await loadServedBackbone(`${base}/src/described`);
    for (const b of [fromFolder, fromUrl]) expect([b.kind, b.featureLayer, b.featureDim]).toEqual(['graph', N.features, 64]);
    expect(fromUrl.sha256).toBe(fromFolder.sha256);
    expect(fromUrl.dir).toBe(`${base}/src/described`);
  });

  test('a layers model over http is cut at its features layer, as from a folder', async () => {
    const b = await loadServedBackbone(`${base}/src/layers/model.json`);
    expect([b.kind, b.featureLayer, b.featureDim]).toEqual(['layers', 'features', 5 * 5 * 8]);
  });

  test('the files fetched from an address are re-served under /backbone with their digest', async () => {
    served = await loadServedBackbone(`${base}/src/graph`);
    for (const f of served.files) {
      const res = await fetch(`${base}${BACKBONE_PATH}/${f.name}`);
      expect(res.headers.get('x-ftl-sha256')).toBe(served.sha256);
      expect(new Uint8Array(await res.arrayBuffer())).toEqual(f.bytes);
    }
    expect((await fetch(`${base}${BACKBONE_PATH}/${BACKBONE_META_FILE}`)).status).toBe(404);
  });

  test('serving never throws: a bad percent-encoding answers 400, a target that is no URL is left to the caller, HEAD answers like GET without the body', async () => {
    served ??= await loadServedBackbone(join(root, 'graph'));
    const port = (host.address() as AddressInfo).port;
    for (const name of ['%', '%E0%A4%A', 'model.json%']) {
      const answer = await rawRequest(port, `GET ${BACKBONE_PATH}/${name} HTTP/1.1`);
      expect([answer.status, answer.body]).toEqual([
        400,
        `bad request: malformed percent-encoding in "${name}"; encode each reserved or non-ASCII byte as %XX of its UTF-8\n`,
      ]);
    }
    const res = { writeHead: () => expect.unreachable('no answer for a target that is no URL') } as unknown as ServerResponse;
    expect(serveBackbone(served, { url: 'http://[/', method: 'GET' } as IncomingMessage, res)).toBe(false);
    const head = await rawRequest(port, `HEAD ${BACKBONE_PATH}/${served.files[1]!.name} HTTP/1.1`);
    expect([head.status, head.body, head.headers['content-length'], head.headers['x-ftl-sha256']]).toEqual([
      200,
      '',
      String(served.files[1]!.bytes.byteLength),
      served.sha256,
    ]);
  });

  test('a malformed ftl-backbone.json is refused with its path', async () => {
    await writeModelFiles(join(root, 'bad-meta'), tinyGraphModelFiles());
    await writeFile(join(root, 'bad-meta', BACKBONE_META_FILE), '{"featureLayer": 3}');
    const err = await loadServedBackbone(join(root, 'bad-meta')).catch((e: unknown) => e);
    expect(isFtlError(err, ErrorCode.BackboneLoad)).toBe(true);
    expect((err as Error).message).toMatch(/bad-meta: ftl-backbone.json is malformed: featureLayer must be a string/);
  });
});
