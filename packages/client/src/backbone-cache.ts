import { randomBytes } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import { get as plainGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { join } from 'node:path';
import {
  ErrorCode,
  FtlError,
  modelDigest,
  MODEL_JSON,
  parseModelJson,
  readModelFolder,
  weightPaths,
  writeModelFiles,
  type BackboneInfo,
  type Logger,
  type ModelFile,
} from '@ftl/shared';
import { cacheWriteError } from './cache-dir.js';

/** How long a backbone download may go without receiving a byte before it is abandoned (default). */
export const DEFAULT_BACKBONE_IDLE_TIMEOUT_MS = 120_000;
/** The most bytes the backbone's files may have together (default 512 MiB). */
export const DEFAULT_BACKBONE_MAX_BYTES = 512 * 1024 * 1024;

const size = (bytes: number) => (bytes < 1024 * 1024 ? `${bytes} bytes` : `${+(bytes / (1024 * 1024)).toFixed(1)} MiB`);

/** Limits of one backbone download: bytes left for all its files, and the longest silence allowed. */
interface DownloadLimits {
  remaining: number;
  maxBytes: number;
  idleTimeoutMs: number;
}

/**
 * GET a URL's body over http or https (trusting `ca` when given), failing clearly on errors, non-200s,
 * a body larger than the bytes left (announced or counted while it streams, so nothing larger is ever
 * held) and a connection silent for longer than the idle timeout (a stalled server never hangs the client).
 */
function httpGet(url: string, limits: DownloadLimits, ca?: Buffer): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (why: string, cause?: unknown) => {
      if (settled) return;
      settled = true;
      req.destroy();
      reject(new FtlError(ErrorCode.BackboneLoad, `downloading ${url} failed: ${why}`, { cause }));
    };
    const tooLarge = (what: string) =>
      fail(
        `the backbone is larger than this client accepts (${size(limits.maxBytes)} for all its files; ${what}); ` +
          'if the coordinator really serves a backbone this large, raise the limit with --backbone-max-mb',
      );
    const req = (url.startsWith('https:') ? httpsGet : plainGet)(url, ca ? { ca } : {}, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return fail(`HTTP ${res.statusCode}`);
      }
      const announced = Number(res.headers['content-length']);
      if (Number.isFinite(announced) && announced > limits.remaining)
        return tooLarge(`${url.slice(url.lastIndexOf('/') + 1)} alone is announced as ${size(announced)}`);
      const chunks: Buffer[] = [];
      let received = 0;
      res.on('data', (c: Buffer) => {
        received += c.byteLength;
        if (received > limits.remaining) return tooLarge(`${size(limits.maxBytes - limits.remaining + received)} received so far`);
        chunks.push(c);
      });
      res.on('end', () => {
        if (settled) return;
        settled = true;
        limits.remaining -= received;
        resolve(new Uint8Array(Buffer.concat(chunks)));
      });
      res.on('error', (err) => fail(err.message, err));
    });
    // The socket's idle timer covers connecting, waiting for the headers and every pause in the body.
    req.setTimeout(limits.idleTimeoutMs, () =>
      fail(
        `no data for ${limits.idleTimeoutMs / 1000} s; check that the coordinator is running and reachable, ` +
          'or allow slower links with --backbone-timeout',
      ),
    );
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
 * @throws FtlError(BACKBONE_LOAD) naming the URL when a download fails, stalls past `idleTimeoutMs` or exceeds `maxBytes`.
 */
export async function obtainBackbone(options: {
  serverUrl: string;
  info: BackboneInfo;
  cacheDir: string;
  pinnedSha256?: string;
  /** CA certificate(s) (PEM) to trust for an https coordinator. */
  ca?: Buffer;
  /** Abandon the download after this long without a byte (default {@link DEFAULT_BACKBONE_IDLE_TIMEOUT_MS}). */
  idleTimeoutMs?: number;
  /** Refuse a backbone whose files have more bytes than this together (default {@link DEFAULT_BACKBONE_MAX_BYTES}). */
  maxBytes?: number;
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
  const maxBytes = options.maxBytes ?? DEFAULT_BACKBONE_MAX_BYTES;
  const limits: DownloadLimits = { remaining: maxBytes, maxBytes, idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_BACKBONE_IDLE_TIMEOUT_MS };
  const fetchFile = async (name: string): Promise<ModelFile> => {
    const url = `${base}/${encodeURIComponent(name)}`;
    return { name, bytes: await httpGet(url, limits, options.ca) };
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
  await writeModelFiles(tmp, files).catch((err: unknown) => {
    throw cacheWriteError(cacheDir, err);
  });
  try {
    await rename(tmp, dir);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw cacheWriteError(cacheDir, err);
  }
  const bytes = files.reduce((s, f) => s + f.bytes.byteLength, 0);
  log.info('backbone-downloaded', { sha256: expected, bytes, ms: Math.round(performance.now() - t0) });
  return { files, cacheHit: false };
}
