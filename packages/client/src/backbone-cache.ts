import { randomBytes } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import { get as plainGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { join } from 'node:path';
import {
  ErrorCode, FtlError, modelDigest, MODEL_JSON, parseModelJson, readModelFolder, weightPaths, writeModelFiles,
  type BackboneInfo, type Logger, type ModelFile,
} from '@ftl/shared';

/** GET a URL's body over http or https (trusting `ca` when given), failing clearly on errors and non-200s. */
function httpGet(url: string, ca?: Buffer): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const fail = (why: string, cause?: unknown) => reject(new FtlError(ErrorCode.BackboneLoad, `downloading ${url} failed: ${why}`, { cause }));
    const req = (url.startsWith('https:') ? httpsGet : plainGet)(url, ca ? { ca } : {}, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return fail(`HTTP ${res.statusCode}`);
      }
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(new Uint8Array(Buffer.concat(chunks))));
      res.on('error', (err) => fail(err.message, err));
    });
    req.on('error', (err) => fail(err.message, err));
  });
}

/**
 * Gets the backbone's files: from the on-disk cache (`<cacheDir>/<sha256>/`) when its digest still
 * verifies, else over HTTP from the coordinator, verified before it is cached or used.
 *
 * `pinnedSha256` is the digest the client's operator expects; when set, the coordinator's announced
 * digest must equal it too.
 *
 * @throws FtlError(BACKBONE_DIGEST_MISMATCH) naming the expected and the actual digest.
 */
export async function obtainBackbone(options: {
  serverUrl: string;
  info: BackboneInfo;
  cacheDir: string;
  pinnedSha256?: string;
  /** CA certificate(s) (PEM) to trust for an https coordinator. */
  ca?: Buffer;
  log: Logger;
}): Promise<{ files: ModelFile[]; cacheHit: boolean }> {
  const { serverUrl, info, cacheDir, pinnedSha256, log } = options;
  const expected = pinnedSha256 ?? info.sha256;
  if (pinnedSha256 !== undefined && pinnedSha256 !== info.sha256) {
    throw new FtlError(
      ErrorCode.BackboneDigestMismatch,
      `backbone digest mismatch: this client expects sha256 ${pinnedSha256} but the coordinator offers ${info.sha256}; ` +
        'check that client and coordinator use the same backbone, or update --backbone-sha256',
    );
  }
  const dir = join(cacheDir, expected);
  try {
    const cached = await readModelFolder(dir);
    if (modelDigest(cached) === expected) {
      log.info('backbone-cache-hit', { sha256: expected });
      return { files: cached, cacheHit: true };
    }
    log.warn('backbone-cache-corrupt', { dir, detail: 'digest differs; downloading again' });
    await rm(dir, { recursive: true, force: true });
  } catch {
    // Not cached yet.
  }
  const base = `${serverUrl.replace(/\/$/, '')}${info.path}`;
  const fetchFile = async (name: string): Promise<ModelFile> => {
    const url = `${base}/${encodeURIComponent(name)}`;
    return { name, bytes: await httpGet(url, options.ca) };
  };
  const t0 = performance.now();
  const modelJson = await fetchFile(MODEL_JSON);
  // Fetch exactly what model.json names, so a missing shard fails here rather than at load time.
  const files = [modelJson];
  for (const name of weightPaths(parseModelJson(modelJson.bytes, base))) files.push(await fetchFile(name));
  const actual = modelDigest(files);
  if (actual !== expected) {
    throw new FtlError(
      ErrorCode.BackboneDigestMismatch,
      `backbone digest mismatch: expected sha256 ${expected} but the files downloaded from ${base} hash to ${actual}; ` +
        'the backbone was changed or corrupted in transit. Refusing to use it.',
    );
  }
  // Write aside, then rename into place: readers never see a half-written cache. Several clients sharing
  // one cache may race here; whoever renames second finds the folder there and keeps its verified copy in memory.
  const tmp = `${dir}.tmp-${randomBytes(4).toString('hex')}`;
  await writeModelFiles(tmp, files);
  try {
    await rename(tmp, dir);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
  }
  const bytes = files.reduce((s, f) => s + f.bytes.byteLength, 0);
  log.info('backbone-downloaded', { sha256: expected, bytes, ms: Math.round(performance.now() - t0) });
  return { files, cacheHit: false };
}
