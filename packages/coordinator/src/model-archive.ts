import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { create as createTar } from 'tar';
import { ErrorCode, FtlError, type HeadConfig } from '@ftl/shared';
import type { ServedBackbone } from './backbone-server.js';
import type { CoordinatorConfig } from './config.js';
import { EXPORT_META_FILE } from './export-model.js';
import { exportRunModel } from './run-export.js';
import { storedNormalization } from './run-normalization.js';
import { storedTableEncoding } from './run-table-encoding.js';
import { FINAL_STATUSES } from './run-states.js';
import type { Store, StoredRun } from './store/store.js';

/** A model as a download: a gzipped tar stream and the file name to offer. */
export interface ModelArchive {
  stream: Readable;
  fileName: string;
}

/**
 * A run's global model (backbone + head, a TensorFlow.js folder) as a gzipped tar stream: the final
 * export of a finished run, otherwise built from its newest valid checkpoint in a temporary folder that
 * goes when the stream ends. FtlError(Conflict) when no round has trained it yet.
 */
export async function modelArchive(o: {
  store: Store;
  stored: StoredRun;
  config: CoordinatorConfig;
  backbone: ServedBackbone;
  head: HeadConfig;
}): Promise<ModelArchive> {
  const { store, stored, config } = o;
  const id = stored.id;
  let dir = config.exportDir!;
  let cleanup: (() => Promise<void>) | undefined;
  const exported = FINAL_STATUSES.includes(stored.status) && (await stat(join(dir, EXPORT_META_FILE)).catch(() => undefined));
  if (!exported) {
    const checkpoint = store.latestCheckpoint(id);
    if (!checkpoint) throw new FtlError(ErrorCode.Conflict, `run ${id} has no completed round yet; there is no model to download`);
    dir = await mkdtemp(join(tmpdir(), 'ftl-export-'));
    cleanup = () => rm(dir, { recursive: true, force: true });
    const normalization = storedNormalization(store, id);
    const tableEncoding = storedTableEncoding(store, id);
    await exportRunModel({
      backbone: o.backbone,
      config,
      head: o.head,
      weights: { specs: checkpoint.specs, values: checkpoint.values },
      dir,
      modelVersion: checkpoint.modelVersion,
      rounds: store.listRounds(id).map((r) => r.record),
      ...(normalization ? { normalization } : {}),
      ...(tableEncoding ? { tableEncoding } : {}),
    });
  }
  const stream = createTar({ gzip: true, cwd: dir, portable: true }, ['.']) as unknown as Readable;
  if (cleanup) {
    const done = cleanup;
    stream.once('close', () => void done());
    stream.once('end', () => void done());
  }
  return { stream, fileName: `${id}-model.tar.gz` };
}
