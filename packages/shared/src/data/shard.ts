import { ErrorCode, FtlError } from '../errors.js';
import type { Logger } from '../log.js';
import { loadBuiltinDataset, type BuiltinDatasetName } from './builtin.js';
import { subset, type ImageDataset } from './dataset.js';
import { partitionIndices, splitIndices, type PartitionSpec } from './partition.js';

/**
 * The share of a built-in dataset that never reaches a client: the held-out test set on which a run's
 * exported model is judged. Fixed, so every run and every client agrees on it.
 */
export const HOLDOUT = { fraction: 0.15, seed: 20_240_601 } as const;

/** What a client node loads: its part of the federation pool, split into train and validation. */
export interface ClientShardOptions {
  dataset: BuiltinDatasetName;
  partition: PartitionSpec;
  clients: number;
  index: number;
  seed: number;
  /** Share of the client's samples kept for local validation (default 0.15). */
  valFraction?: number;
  /** Use at most this many samples of the pool (before partitioning), for quick runs and tests. */
  limit?: number;
  /**
   * Keep at most this many of the client's samples (train and validation together), drawn at random from
   * its part of the partition, so its label mix stays the partition's: sites with little labelled data.
   */
  perClient?: number;
}

/** A client's local data. */
export interface ClientShard {
  train: ImageDataset;
  val: ImageDataset;
}

/**
 * Splits a built-in dataset into the federation pool and the held-out test set ({@link HOLDOUT}).
 */
export function federationSplit(ds: ImageDataset): { pool: ImageDataset; test: ImageDataset } {
  const [pool, test] = splitIndices(ds.n, HOLDOUT.fraction, HOLDOUT.seed);
  return { pool: subset(ds, pool), test: subset(ds, test) };
}

/**
 * Loads client `index` of `clients`: the federation pool (optionally cut to `limit`), partitioned
 * with the shared seed so all clients agree, then this client's part split into train/validation.
 *
 * @example
 * loadClientShard({ dataset: 'mnist', partition: { kind: 'dirichlet', alpha: 0.5 }, clients: 5, index: 0, seed: 1 });
 */
export function loadClientShard(options: ClientShardOptions, log?: Logger, loaded?: ImageDataset): ClientShard {
  const { clients, index, seed } = options;
  if (!Number.isInteger(index) || index < 0 || index >= clients) {
    throw new FtlError(ErrorCode.InvalidConfig, `index must be an integer in [0, ${clients - 1}] (got ${index})`);
  }
  let { pool } = federationSplit(loaded ?? loadBuiltinDataset(options.dataset, log));
  if (options.limit !== undefined && options.limit < pool.n) {
    pool = subset(pool, splitIndices(pool.n, options.limit / pool.n, seed)[1]);
  }
  const parts = partitionIndices(pool.labels, pool.classes.length, options.partition, clients, seed);
  let mine = subset(pool, parts[index]!);
  if (options.perClient !== undefined && options.perClient < mine.n) {
    mine = subset(mine, splitIndices(mine.n, options.perClient / mine.n, seed + index + 7919)[1]);
  }
  const [train, val] = splitIndices(mine.n, options.valFraction ?? 0.15, seed + index + 1);
  return { train: subset(mine, train), val: subset(mine, val) };
}
