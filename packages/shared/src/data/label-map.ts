import { ErrorCode, FtlError } from '../errors.js';
import type { ImageDataset } from './dataset.js';
import type { ClientShard } from './shard.js';

/**
 * A client's data as loaded, before it meets a run: labels index `train.classes`, the site's own label
 * names (folder names, CSV label values, a built-in dataset's class names). `labelOrigins` says where
 * each name was found (a folder, a file and line), for error messages.
 */
export interface LocalShard extends ClientShard {
  readonly labelOrigins?: Readonly<Record<string, string>>;
}

/** A dataset as a loader read it, with where each label name was found (for error messages). */
export interface LoadedDataset {
  dataset: ImageDataset;
  labelOrigins: Record<string, string>;
}

/**
 * Orders label names the way people expect: numbers by value (`2` before `10`), then text.
 */
export function compareLabels(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true }) || (a < b ? -1 : a > b ? 1 : 0);
}

/** The local label names that occur in the shard (train or validation), in {@link compareLabels} order. */
export function localLabels(shard: ClientShard): string[] {
  const seen = new Set<number>();
  for (const ds of [shard.train, shard.val]) for (const l of ds.labels) seen.add(l);
  return [...seen].map((i) => shard.train.classes[i]!).sort(compareLabels);
}

/**
 * For each local class index, its index in the run's label set. Names must match exactly; a local label
 * the run does not declare is an error naming the label and where it came from.
 *
 * @throws FtlError(DATASET) for a label outside `runClasses`.
 * @example
 * labelIndexMap(['cat', 'dog'], ['dog', 'cat', 'bird']); // Int32Array [1, 0]
 */
export function labelIndexMap(
  local: readonly string[],
  runClasses: readonly string[],
  origins: Readonly<Record<string, string>> = {},
  used: ReadonlySet<number> = new Set(local.map((_, i) => i)),
): Int32Array {
  const index = new Map(runClasses.map((c, i) => [c, i]));
  return Int32Array.from(local, (name, i) => {
    const to = index.get(name);
    if (to !== undefined) return to;
    if (!used.has(i)) return -1;
    const near = runClasses.find((c) => c.trim().toLowerCase() === name.trim().toLowerCase());
    const where = origins[name] ? ` (from ${origins[name]})` : '';
    throw new FtlError(
      ErrorCode.Dataset,
      `local label "${name}"${where} is not in the run's label set (${runClasses.join(', ')})` +
        (near !== undefined ? `; did you mean "${near}"? Names must match exactly` : '') +
        `; rename it to one of the run's labels, remove those samples, or ask the operator to add "${name}" to the run's classes`,
    );
  });
}

function remap(ds: ImageDataset, map: Int32Array, runClasses: readonly string[]): ImageDataset {
  return { ...ds, labels: Int32Array.from(ds.labels, (l) => map[l]!), classes: [...runClasses] };
}

/**
 * The shard with its labels renumbered to the run's label set (`welcome.classes`), matched by name, so
 * every client's class k is the run's class k whatever its local order. Only labels that occur in the
 * data must be in the run's set.
 *
 * @throws FtlError(DATASET) naming the first unknown label and its origin.
 * @example
 * const aligned = alignShardToRun(shard, welcome.classes);
 */
export function alignShardToRun(shard: LocalShard, runClasses: readonly string[]): ClientShard {
  const local = shard.train.classes;
  if (shard.val.classes.length !== local.length || shard.val.classes.some((c, i) => c !== local[i])) {
    throw new FtlError(ErrorCode.Dataset, 'the training and validation splits name their classes differently; load both from one dataset');
  }
  const used = new Set<number>();
  for (const ds of [shard.train, shard.val]) for (const l of ds.labels) used.add(l);
  const map = labelIndexMap(local, runClasses, shard.labelOrigins, used);
  return { train: remap(shard.train, map, runClasses), val: remap(shard.val, map, runClasses) };
}
