import { ErrorCode, FtlError } from '../errors.js';
import type { Logger } from '../log.js';
import { loadCsvFile } from './csv.js';
import { subset, type ImageDataset } from './dataset.js';
import { loadImageFolder } from './image-folder.js';
import { DEFAULT_IMAGE_SHAPE, type ImageShape } from './image-shape.js';
import type { LoadedDataset, LocalShard } from './label-map.js';
import { splitIndices } from './partition.js';
import { fitDataset } from './resize.js';
import { loadClientShard, type ClientShardOptions } from './shard.js';

/** How a site's own data is cut down and split into training and validation. */
export interface LocalSplitOptions {
  /** Seed of the train/validation split (and of the `limit` sample). */
  seed: number;
  /** Share kept for local validation (default 0.15; at least one sample). */
  valFraction?: number;
  /** Use at most this many samples, drawn with `seed`, for quick trials. */
  limit?: number;
}

/**
 * Where a client's data comes from: a built-in dataset shared out among simulated clients, a folder of
 * images with one sub-folder per class, a CSV file of images with a label column, or a CSV table (records
 * read against a tabular run's columns: `loadCsvTable`, not {@link loadLocalShard}).
 */
export type DataSource =
  | ({ kind: 'builtin' } & ClientShardOptions)
  | ({ kind: 'image-folder'; dir: string } & LocalSplitOptions)
  | ({ kind: 'csv'; file: string; labelColumn?: string } & LocalSplitOptions)
  | ({ kind: 'table'; file: string } & LocalSplitOptions);

/** One line for logs: `mnist`, `folder /data/xray`, `csv /data/train.csv`. */
export function describeDataSource(source: DataSource): string {
  if (source.kind === 'builtin') return source.dataset;
  return source.kind === 'image-folder' ? `folder ${source.dir}` : `${source.kind} ${source.file}`;
}

/**
 * A loaded dataset cut to `limit` samples and split, seeded, into training and validation.
 *
 * @throws FtlError(DATASET) when fewer than two samples remain (one for each split).
 */
export function splitLocalData(loaded: LoadedDataset, o: LocalSplitOptions, source: string): LocalShard {
  let ds = loaded.dataset;
  if (o.limit !== undefined && o.limit < ds.n) ds = subset(ds, splitIndices(ds.n, o.limit / ds.n, o.seed)[1]);
  if (ds.n < 2) {
    throw new FtlError(
      ErrorCode.Dataset,
      `${source} has ${ds.n} sample${ds.n === 1 ? '' : 's'}; a client needs at least 2 (one to train on, one to validate); add data`,
    );
  }
  const valCount = Math.min(ds.n - 1, Math.max(1, Math.round(ds.n * (o.valFraction ?? 0.15))));
  const [train, val] = splitIndices(ds.n, valCount / ds.n, o.seed + 1);
  return { train: subset(ds, train), val: subset(ds, val), labelOrigins: loaded.labelOrigins };
}

/**
 * Loads a client's local data from any {@link DataSource}, every image brought to `shape` (bilinear
 * resize, grayscale ↔ RGB). Labels keep the site's own names; {@link alignShardToRun} maps them to a
 * run's label set once the run is known.
 *
 * @param o.loaded an already loaded built-in dataset, to share one copy among simulated clients.
 * @example
 * const shard = loadLocalShard({ kind: 'image-folder', dir: '/data/xray', seed: 1 }, { shape: { height: 28, width: 28, channels: 1 } });
 */
export function loadLocalShard(source: DataSource, o: { shape?: ImageShape; log?: Logger; loaded?: ImageDataset } = {}): LocalShard {
  const shape = o.shape ?? DEFAULT_IMAGE_SHAPE;
  if (source.kind === 'builtin') {
    const { kind: _, ...options } = source;
    const shard = loadClientShard(options, o.log, o.loaded);
    const origin = `built-in dataset "${source.dataset}"`;
    return {
      train: fitDataset(shard.train, shape),
      val: fitDataset(shard.val, shape),
      labelOrigins: Object.fromEntries(shard.train.classes.map((c) => [c, origin])),
    };
  }
  if (source.kind === 'table') {
    throw new FtlError(ErrorCode.InvalidConfig, `${source.file} is a table: it is read against a run's columns (loadCsvTable), not as images`);
  }
  const loaded =
    source.kind === 'image-folder'
      ? loadImageFolder(source.dir, { shape, ...(o.log ? { log: o.log } : {}) })
      : loadCsvFile(source.file, { shape, ...(source.labelColumn !== undefined ? { labelColumn: source.labelColumn } : {}) });
  return splitLocalData(loaded, source, describeDataSource(source));
}
