import { z } from 'zod';
import {
  BUILTIN_DATASETS,
  concatDatasets,
  describePartition,
  ErrorCode,
  FtlError,
  loadClientShard,
  parsePartition,
  type BuiltinDatasetName,
  type ImageDataset,
  type LocalShard,
  type Logger,
  type PartitionSpec,
} from '@ftl/shared';

/**
 * A simulated site described by how to build it rather than by its images: the parts (client indices)
 * of a built-in task's partition that it holds. Any thread can build it from these few fields with the
 * same result, so the sites of a run can be built where they train, and no thread holds them all.
 *
 * @example
 * const spec = { dataset: 'mnist', partition: { kind: 'iid' }, clients: 10, seed: 1, indices: [3] }; // site 3 of 10
 * const pooled = { ...spec, indices: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] }; // the centralized baseline's one site
 */
export interface SiteSpec {
  dataset: BuiltinDatasetName;
  /** Keep only these classes of the dataset, relabelled in this order, before partitioning. */
  classes?: readonly number[];
  partition: PartitionSpec;
  /** Parts the federation pool is split into. */
  clients: number;
  seed: number;
  /** Cut the federation pool to this many images first. */
  limit?: number;
  /** Images each part keeps (train + validation), its label mix unchanged. */
  perClient?: number;
  /** The parts this site holds, concatenated in this order: one for a federated or local site, all for the pooled one. */
  indices: readonly number[];
}

/** True when `site` is a {@link SiteSpec}, not a built shard. */
export function isSiteSpec(site: SiteSpec | LocalShard | object): site is SiteSpec {
  return 'indices' in site;
}

/**
 * The site's shard: each of its parts loaded as `loadClientShard` loads a client's (from `task`, the
 * built-in dataset already cut to `classes`), then their training and validation images concatenated.
 *
 * @throws FtlError(INVALID_CONFIG) for a site with no parts, or a part outside the partition.
 */
export function buildSite(spec: SiteSpec, task: ImageDataset, log?: Logger): LocalShard {
  if (spec.indices.length === 0) throw new FtlError(ErrorCode.InvalidConfig, 'a site must hold at least one part of the partition');
  const shards = spec.indices.map((index) =>
    loadClientShard(
      {
        dataset: spec.dataset,
        partition: spec.partition,
        clients: spec.clients,
        index,
        seed: spec.seed,
        ...(spec.limit !== undefined ? { limit: spec.limit } : {}),
        ...(spec.perClient !== undefined ? { perClient: spec.perClient } : {}),
      },
      log,
      task,
    ),
  );
  if (shards.length === 1) return shards[0]!;
  return { train: concatDatasets(shards.map((s) => s.train)), val: concatDatasets(shards.map((s) => s.val)) };
}

/** A site spec as it crosses to a worker thread: the partition in its text form, parsed again on arrival. */
export type SiteSpecMessage = Omit<SiteSpec, 'partition'> & { partition: string };

/** The message form of a site spec. */
export function siteSpecMessage(spec: SiteSpec): SiteSpecMessage {
  return { ...spec, partition: describePartition(spec.partition) };
}

const SiteSpecMessageSchema = z.strictObject({
  dataset: z.enum(BUILTIN_DATASETS),
  classes: z.array(z.number().int().min(0)).min(2).optional(),
  partition: z.string(),
  clients: z.number().int().positive(),
  seed: z.number().int().min(0),
  limit: z.number().int().positive().optional(),
  perClient: z.number().int().positive().optional(),
  // Whether each index is within the partition is for loadClientShard to say, in its own words.
  indices: z.array(z.number().int()),
});

/**
 * Validates a site spec that crossed from another thread.
 *
 * @throws FtlError(INVALID_MESSAGE) naming the fields that are wrong.
 */
export function parseSiteSpecMessage(raw: unknown): SiteSpec {
  const r = SiteSpecMessageSchema.safeParse(raw);
  if (!r.success) {
    const problems = r.error.issues.map((i) => `${i.path.map(String).join('.') || 'the spec'}: ${i.message}`);
    throw new FtlError(ErrorCode.InvalidMessage, `invalid site spec: ${problems.join('; ')}`);
  }
  return { ...r.data, partition: parsePartition(r.data.partition) };
}
