import type { IncomingMessage, ServerResponse } from 'node:http';
import { readModelFolder, modelDigest, loadLayersModelFromFiles, type ModelFile } from '@ftl/shared';
import type * as tf from '@tensorflow/tfjs';
import { readBackboneMeta } from './backbone-meta.js';

/** URL path under which the backbone's files are served. */
export const BACKBONE_PATH = '/backbone';

/** A backbone as the coordinator holds it: its files, digest, loaded model and where to cut it. */
export interface ServedBackbone {
  dir: string;
  files: ModelFile[];
  sha256: string;
  featureLayer: string;
  model: tf.LayersModel;
}

/** Reads a backbone folder once: files, digest, description and the loaded model (to size the head). */
export async function loadServedBackbone(dir: string, featureLayer?: string): Promise<ServedBackbone> {
  const files = await readModelFolder(dir);
  const meta = await readBackboneMeta(dir);
  const model = await loadLayersModelFromFiles(files, dir);
  return { dir, files, sha256: modelDigest(files), featureLayer: featureLayer ?? meta.featureLayer!, model };
}

/**
 * Serves `GET /backbone/<file>` for the backbone's own files (nothing else from disk), with the digest in
 * an `X-Ftl-Sha256` header. Returns false for requests it does not own.
 */
export function serveBackbone(backbone: ServedBackbone, req: IncomingMessage, res: ServerResponse): boolean {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (!url.pathname.startsWith(BACKBONE_PATH + '/')) return false;
  const name = decodeURIComponent(url.pathname.slice(BACKBONE_PATH.length + 1));
  const file = backbone.files.find((f) => f.name === name);
  if (req.method !== 'GET' || file === undefined) {
    res.writeHead(req.method !== 'GET' ? 405 : 404, { 'content-type': 'text/plain' });
    res.end(req.method !== 'GET' ? 'method not allowed\n' : `no backbone file "${name}"\n`);
    return true;
  }
  res.writeHead(200, {
    'content-type': name.endsWith('.json') ? 'application/json' : 'application/octet-stream',
    'content-length': file.bytes.byteLength,
    'x-ftl-sha256': backbone.sha256,
    'cache-control': 'no-cache',
  });
  res.end(file.bytes);
  return true;
}
