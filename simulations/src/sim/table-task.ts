import {
  compareLabels,
  ErrorCode,
  FtlError,
  loadCsvTable,
  partitionIndices,
  rawLabels,
  splitIndices,
  splitRawTable,
  subsetRawTable,
  type RawTable,
} from '@ftl/shared';
import type { SimConfig } from './config.js';

/** The seed of a shared table's held-out rows: the same rows for every seed of a study, as a built-in task's test split. */
export const TABLE_HELD_OUT_SEED = 20_240_601;

/** A study's tabular task: the run's labels, the held-out rows, and each site's rows for a seed. */
export interface TableTask {
  /** Every label the table holds, in the order people expect. */
  classes: string[];
  /** Rows no site holds, for the held-out score (absent: the sites' validation only). */
  test?: RawTable;
  /** Where the held-out rows come from, for the report. */
  heldOutName: string;
  /** Each site's rows for `seed`, each cut (seeded) to `perSite` rows when given. */
  sites(seed: number, perSite?: number): RawTable[];
}

/** `t` cut to `n` rows drawn with `seed`, or whole when it has no more. */
function cut(t: RawTable, n: number | undefined, seed: number): RawTable {
  return n === undefined || n >= t.rows.length ? t : subsetRawTable(t, splitIndices(t.rows.length, n / t.rows.length, seed)[1]);
}

/**
 * The tabular task of a study, or undefined for an image study: one table shared out among the sites
 * (`data.table`: its source split set aside, its held-out rows kept, the rest partitioned over the label
 * with the study's partition and seed), or one table per site (`data.sites` entries `{ table }`).
 *
 * @throws FtlError(DATASET) for a table that cannot be read; FtlError(INVALID_CONFIG) for sites that mix tables and images.
 */
export function tableTask(config: SimConfig): TableTask | undefined {
  const { data, run } = config;
  const spec = run.table;
  if (!spec) return undefined;
  if (data.table) {
    const raw = loadCsvTable(data.table.file);
    const classes = [...new Set(rawLabels(raw, spec))].sort(compareLabels);
    const target = data.table.sourceSplit ? splitRawTable(raw, data.table.sourceSplit.fraction, data.table.sourceSplit.seed)[0] : raw;
    const [pool, test] = splitRawTable(target, data.table.heldOut, TABLE_HELD_OUT_SEED);
    const labels = Int32Array.from(rawLabels(pool, spec), (l) => classes.indexOf(l));
    return {
      classes,
      test,
      heldOutName: `${data.table.file} (held-out rows)`,
      sites: (seed, perSite) =>
        partitionIndices(labels, classes.length, data.partition, config.clients, seed, 10).map((part, i) =>
          cut(subsetRawTable(pool, part), perSite, seed + i),
        ),
    };
  }
  const entries = data.sites;
  if (!entries?.some((e) => 'table' in e)) return undefined;
  if (!entries.every((e) => 'table' in e)) throw new FtlError(ErrorCode.InvalidConfig, 'data.sites mixes tables and images; give every site a table');
  const tables = entries.map((e) => loadCsvTable((e as { table: string }).table));
  const held = data.heldOut;
  if (held && !('table' in held))
    throw new FtlError(ErrorCode.InvalidConfig, 'data.heldOut must be a table ({"table": FILE}) when the sites hold tables');
  const test = held ? loadCsvTable(held.table) : undefined;
  const classes = [...new Set([...tables, ...(test ? [test] : [])].flatMap((t) => rawLabels(t, spec)))].sort(compareLabels);
  return {
    classes,
    ...(test ? { test } : {}),
    heldOutName: held ? held.table : "none (the sites' own validation splits only)",
    sites: (seed, perSite) => tables.map((t, i) => cut(t, perSite, seed + i)),
  };
}
