import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { createLogger, initBackend, modelDigest, readModelFolder, saveLayersModelToFolder, type BackboneInfo, type ModelFile } from '@ftl/shared';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { obtainBackbone } from './backbone-cache.js';

let server: Server;
let url: string;
let files: ModelFile[];
let digest: string;
let requests = 0;
let tamper = false;

beforeAll(async () => {
  await initBackend();
  const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [3], units: 2, name: 'd' })] });
  const dir = await mkdtemp(join(tmpdir(), 'ftl-bb-'));
  ({ files, digest } = await saveLayersModelToFolder(model, dir));
  server = createServer((req, res) => {
    requests++;
    const name = decodeURIComponent((req.url ?? '').replace('/backbone/', ''));
    const file = files.find((f) => f.name === name);
    if (!file) return void res.writeHead(404).end();
    const bytes = tamper && name === 'weights.bin' ? file.bytes.map((b, i) => (i === 0 ? b ^ 1 : b)) : file.bytes;
    res.writeHead(200).end(bytes);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));

const info = (sha256 = digest): BackboneInfo => ({ path: '/backbone', files: files.map((f) => f.name), sha256, featureLayer: 'd' });
const log = createLogger('test', { level: 'silent' });

describe('backbone download and cache', () => {
  test('downloads and verifies once, then serves later runs from the cache without any request', async () => {
    tamper = false;
    const cacheDir = await mkdtemp(join(tmpdir(), 'ftl-cache-'));
    requests = 0;
    const first = await obtainBackbone({ serverUrl: url, info: info(), cacheDir, log });
    expect(first.cacheHit).toBe(false);
    expect(modelDigest(first.files)).toBe(digest);
    expect(requests).toBe(2);
    const second = await obtainBackbone({ serverUrl: url, info: info(), cacheDir, log });
    expect(second.cacheHit).toBe(true);
    expect(requests).toBe(2);
    expect(await readdir(cacheDir)).toEqual([digest]);
  });

  test('a corrupted cache is detected by its digest and downloaded again', async () => {
    tamper = false;
    const cacheDir = await mkdtemp(join(tmpdir(), 'ftl-cache-'));
    await obtainBackbone({ serverUrl: url, info: info(), cacheDir, log });
    await writeFile(join(cacheDir, digest, 'weights.bin'), new Uint8Array(files[1]!.bytes.byteLength));
    const again = await obtainBackbone({ serverUrl: url, info: info(), cacheDir, log });
    expect(again.cacheHit).toBe(false);
    expect(modelDigest(again.files)).toBe(digest);
  });

  test('files that do not hash to the announced digest are refused, naming both digests, and not cached', async () => {
    tamper = true;
    const cacheDir = await mkdtemp(join(tmpdir(), 'ftl-cache-'));
    const err = await obtainBackbone({ serverUrl: url, info: info(), cacheDir, log }).catch((e: unknown) => e);
    tamper = false;
    expect(err).toMatchObject({ code: 'BACKBONE_DIGEST_MISMATCH' });
    expect((err as Error).message).toMatch(new RegExp(`expected sha256 ${digest} but the files downloaded from .* hash to [0-9a-f]{64}`));
    expect(await readdir(cacheDir)).toEqual([]);
  });

  test('a pinned digest that differs from the coordinator\'s is refused before any download', async () => {
    requests = 0;
    const pinned = 'f'.repeat(64);
    await expect(obtainBackbone({ serverUrl: url, info: info(), cacheDir: tmpdir(), pinnedSha256: pinned, log })).rejects.toThrow(
      `backbone digest mismatch: this client expects sha256 ${pinned} but the coordinator offers ${digest}`,
    );
    expect(requests).toBe(0);
  });

  test('a file missing on the server is a clear download error naming the URL', async () => {
    const broken = { ...info(), path: '/nothing-here' };
    await expect(obtainBackbone({ serverUrl: url, info: broken, cacheDir: await mkdtemp(join(tmpdir(), 'ftl-cache-')), log })).rejects.toThrow(
      /downloading http:\/\/127.0.0.1:\d+\/nothing-here\/model.json failed: HTTP 404/,
    );
  });
});

describe('a cache shared by several clients', () => {
  test('concurrent first downloads into one cache all succeed and leave one verified copy', async () => {
    tamper = false;
    const cacheDir = await mkdtemp(join(tmpdir(), 'ftl-cache-'));
    const results = await Promise.all(Array.from({ length: 6 }, () => obtainBackbone({ serverUrl: url, info: info(), cacheDir, log })));
    for (const r of results) expect(modelDigest(r.files)).toBe(digest);
    expect(await readdir(cacheDir)).toEqual([digest]);
    expect(modelDigest(await readModelFolder(join(cacheDir, digest)))).toBe(digest);
  });
});
