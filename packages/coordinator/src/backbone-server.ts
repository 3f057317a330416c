import type { IncomingMessage, ServerResponse } from 'node:http';
import { loadBackbone, modelDigest, readModelSource, type FeatureExtractor, type ModelFile, type ModelKind } from '@ftl/shared';
import { readBackboneMeta } from './backbone-meta.js';
import { resolveBackboneSource } from './backbone-catalog.js';
import { decodePathSegment, quoteTarget, requestUrl } from './request-target.js';

/** URL path under which the backbone's files are served. */
export const BACKBONE_PATH = '/backbone';

/** A backbone as the coordinator holds it: its files and digest (to serve), and the loaded extractor (to size heads). */
export interface ServedBackbone {
  /** Where it was read from: a folder (a committed backbone's, when it was given by name) or an http(s) address. */
  dir: string;
  /** `model.json` and the weight files it names, re-served to clients as they are. */
  files: ModelFile[];
  sha256: string;
  /** The layer (layers model) or node (graph model) whose output is the feature vector, unless a run picks another. */
  featureLayer: string;
  kind: ModelKind;
  /** Length of the feature vector at `featureLayer`. */
  featureDim: number;
  /** [height, width, channels] the backbone takes. */
  inputShape: [number, number, number];
  /** The backbone read at `featureLayer`; `extractor.at(name)` reads it at another layer or node. */
  extractor: FeatureExtractor;
}

/**
 * Reads a backbone once, from a committed backbone's name (see {@link resolveBackboneSource}), a folder or
 * an http(s) address (`model.json`, the weight files it names, and
 * `ftl-backbone.json` beside them when there is one): files, digest and the loaded layers or graph model.
 * `featureLayer` overrides the description's; without either a layers model is cut at its `features`
 * layer and a graph model read at its output.
 *
 * @throws FtlError(BACKBONE_LOAD) for anything that makes the source unusable, saying what to fix, and for
 *   an unknown name (listing the known ones).
 */
export async function loadServedBackbone(nameOrSource: string, featureLayer?: string): Promise<ServedBackbone> {
  const source = await resolveBackboneSource(nameOrSource);
  const files = await readModelSource(source);
  const meta = await readBackboneMeta(source);
  const extractor = await loadBackbone(files, { feature: featureLayer ?? meta.featureLayer, where: source });
  const { kind, feature, featureDim, inputShape } = extractor;
  return { dir: source, files, sha256: modelDigest(files), featureLayer: feature, kind, featureDim, inputShape, extractor };
}

/**
 * Serves `GET /backbone/<file>` (and `HEAD`, the same headers without the body) for the backbone's own
 * files (nothing else from disk), with the digest in an `X-Ftl-Sha256` header. Returns false for requests
 * it does not own, including a target that is no URL; a file name with a bad percent-encoding answers 400.
 * It never throws.
 */
export function serveBackbone(backbone: ServedBackbone, req: IncomingMessage, res: ServerResponse): boolean {
  let pathname: string;
  try {
    pathname = requestUrl(req).pathname;
  } catch {
    return false; // no URL at all, so not a backbone file: the caller's router answers it (400)
  }
  if (!pathname.startsWith(`${BACKBONE_PATH}/`)) return false;
  let name: string;
  try {
    name = decodePathSegment(pathname.slice(BACKBONE_PATH.length + 1));
  } catch (err) {
    plain(req, res, 400, `bad request: ${(err as Error).message}`);
    return true;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    plain(req, res, 405, `${quoteTarget(req.method ?? '')} is not allowed on backbone files; use GET or HEAD`, { allow: 'GET, HEAD' });
    return true;
  }
  const file = backbone.files.find((f) => f.name === name);
  if (file === undefined) {
    plain(req, res, 404, `no backbone file ${quoteTarget(name)}; model.json lists the files`);
    return true;
  }
  res.writeHead(200, {
    'content-type': name.endsWith('.json') ? 'application/json' : 'application/octet-stream',
    'content-length': file.bytes.byteLength,
    'x-ftl-sha256': backbone.sha256,
    'cache-control': 'no-cache',
  });
  res.end(req.method === 'HEAD' ? undefined : file.bytes);
  return true;
}

/** A one-line text answer; HEAD gets its headers only. */
function plain(req: IncomingMessage, res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  const text = `${message}\n`;
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(req.method === 'HEAD' ? undefined : text);
}
