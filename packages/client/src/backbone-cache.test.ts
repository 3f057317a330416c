import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
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

  test("a pinned digest that differs from the coordinator's is refused before any download", async () => {
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

/** A local server answering every request with `respond`; closed after `use`. */
async function withServer(respond: (res: ServerResponse, closed: Promise<void>) => void, use: (url: string) => Promise<void>): Promise<void> {
  const sockets = new Set<Socket>();
  const server = createServer((_req, res) => respond(res, new Promise((resolve) => res.on('close', resolve))));
  server.on('connection', (s) => sockets.add(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    await use(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
}

describe('backbone download limits', () => {
  test.each<[string, (res: ServerResponse) => void]>([
    ['sends no response at all', () => {}],
    [
      'sends headers and part of the body, then stalls',
      (res) => {
        res.writeHead(200, { 'content-length': '1000' });
        res.write(new Uint8Array(100));
      },
    ],
  ])('a server that %s fails the download naming the URL and the timeout, instead of hanging', async (_, respond) => {
    await withServer(respond, async (server) => {
      const err = await obtainBackbone({
        serverUrl: server,
        info: info(),
        cacheDir: await mkdtemp(join(tmpdir(), 'ftl-cache-')),
        log,
        idleTimeoutMs: 200,
      }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'BACKBONE_LOAD' });
      expect((err as Error).message).toMatch(
        /^downloading http:\/\/127\.0\.0\.1:\d+\/backbone\/model\.json failed: no data for 0\.2 s; check that the coordinator is running and reachable, or allow slower links with --backbone-timeout$/,
      );
    });
  });

  test('a file announced larger than the cap is refused before its body is read', async () => {
    await withServer(
      (res) => res.writeHead(200, { 'content-length': '5000' }).end(new Uint8Array(5000)),
      async (server) => {
        await expect(
          obtainBackbone({ serverUrl: server, info: info(), cacheDir: await mkdtemp(join(tmpdir(), 'ftl-cache-')), log, maxBytes: 4096 }),
        ).rejects.toThrow(
          /^downloading http:\/\/127\.0\.0\.1:\d+\/backbone\/model\.json failed: the backbone is larger than this client accepts \(4096 bytes for all its files; model\.json alone is announced as 5000 bytes\); if the coordinator really serves a backbone this large, raise the limit with --backbone-max-mb$/,
        );
      },
    );
  });

  test('a body with no length that streams past the cap is cut off as it arrives, and the connection closed', async () => {
    let sent = 0;
    let stop = false;
    await withServer(
      (res, closed) => {
        // Endless chunks until the client hangs up: only the client's count can end this download.
        void closed.then(() => (stop = true));
        res.writeHead(200);
        const more = () => {
          if (stop) return;
          sent += 1024;
          res.write(new Uint8Array(1024), () => setImmediate(more));
        };
        more();
      },
      async (server) => {
        await expect(
          obtainBackbone({ serverUrl: server, info: info(), cacheDir: await mkdtemp(join(tmpdir(), 'ftl-cache-')), log, maxBytes: 64 * 1024 }),
        ).rejects.toThrow(/failed: the backbone is larger than this client accepts \(65536 bytes for all its files; \d+ bytes received so far\)/);
        await new Promise((r) => setTimeout(r, 50));
        expect(stop).toBe(true);
      },
    );
    expect(sent).toBeGreaterThan(64 * 1024);
  });

  test("the cap counts all the backbone's files together", async () => {
    const cacheDir = await mkdtemp(join(tmpdir(), 'ftl-cache-'));
    const total = files.reduce((s, f) => s + f.bytes.byteLength, 0);
    await expect(obtainBackbone({ serverUrl: url, info: info(), cacheDir, log, maxBytes: total - 1 })).rejects.toThrow(
      /weights\.bin failed: the backbone is larger than this client accepts \(\d+ bytes for all its files;/,
    );
    expect((await obtainBackbone({ serverUrl: url, info: info(), cacheDir, log, maxBytes: total })).cacheHit).toBe(false);
  });
});
