import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, FtlError } from '../errors.js';
import { MODEL_JSON, parseModelJson, readModelFolder, weightPaths, type ModelFile } from './model-folder.js';

/** How long one file of a model may take to download before the fetch is abandoned. */
const FETCH_TIMEOUT_MS = 300_000;

/** True when a model source is an http(s) address rather than a folder. */
export function isHttpSource(source: string): boolean {
  return /^https?:\/\//i.test(source);
}

/**
 * The address of `model.json` for a model address: the address itself when its path ends in `.json`,
 * else `model.json` inside it (`https://host/models/mnet` → `https://host/models/mnet/model.json`).
 */
export function modelJsonUrl(source: string): URL {
  const url = new URL(source);
  if (url.pathname.endsWith('.json')) return url;
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return new URL(MODEL_JSON, url);
}

/** GET one file; undefined on 404 when `optional`, else an FtlError naming the address and what to fix. */
async function fetchBytes(url: URL, what: string, optional = false): Promise<Uint8Array | undefined> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  } catch (err) {
    const cause = (err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message;
    throw new FtlError(
      ErrorCode.BackboneLoad,
      `cannot fetch ${what} from ${url.href}: ${cause}; check the address and that its server is reachable`,
      { cause: err },
    );
  }
  if (optional && res.status === 404) {
    await res.body?.cancel();
    return undefined;
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new FtlError(
      ErrorCode.BackboneLoad,
      `cannot fetch ${what} from ${url.href}: HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}; ` +
        (what === MODEL_JSON
          ? 'the backbone address must be a folder holding model.json, or model.json itself'
          : `${MODEL_JSON} names it in its weightsManifest, so the server must hold every file of the model folder`),
    );
  }
  return new Uint8Array(await res.arrayBuffer());
}

/**
 * Downloads a model over http(s): `model.json`, then exactly the weight files its `weightsManifest`
 * names, resolved against model.json's address. Uses Node's global `fetch`; no tfjs-node needed.
 *
 * @throws FtlError(BACKBONE_LOAD) naming the address that failed (unreachable, HTTP status) or the part
 *   of model.json that is malformed.
 * @example
 * const files = await fetchModelFiles('https://example.org/models/mobilenet/model.json');
 */
export async function fetchModelFiles(source: string): Promise<ModelFile[]> {
  const jsonUrl = modelJsonUrl(source);
  const json = (await fetchBytes(jsonUrl, MODEL_JSON))!;
  const files: ModelFile[] = [{ name: MODEL_JSON, bytes: json }];
  for (const p of weightPaths(parseModelJson(json, source.replace(/\/model\.json$|\/$/, '')))) {
    files.push({ name: p, bytes: (await fetchBytes(new URL(p, jsonUrl), `weight file "${p}"`))! });
  }
  return files;
}

/**
 * Reads a model from where it is: an http(s) address ({@link fetchModelFiles}), a `file://` URL or a
 * folder ({@link readModelFolder}). Either way the result is `model.json` plus the weight files it names.
 */
export async function readModelSource(source: string): Promise<ModelFile[]> {
  if (isHttpSource(source)) return fetchModelFiles(source);
  return readModelFolder(localFolder(source));
}

/** The folder of a local source: a path or `file://` URL of the folder or of its model.json. */
function localFolder(source: string): string {
  const path = source.startsWith('file:') ? fileURLToPath(source) : source;
  return basename(path) === MODEL_JSON ? dirname(path) : path;
}

/**
 * Reads a file that sits beside a model's `model.json` (such as a description of it), or undefined when
 * there is none.
 */
export async function readBesideModel(source: string, name: string): Promise<Uint8Array | undefined> {
  if (isHttpSource(source)) return fetchBytes(new URL(name, modelJsonUrl(source)), `"${name}"`, true);
  try {
    return new Uint8Array(await readFile(join(localFolder(source), name)));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FtlError(ErrorCode.BackboneLoad, `cannot read ${join(source, name)}: ${(err as Error).message}`, { cause: err });
  }
}
