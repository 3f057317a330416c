import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { DEFAULT_BACKBONE, resolveBackboneSource } from '@ftl/coordinator';
import {
  alignShardToRun,
  compareLabels,
  concatRawTables,
  concatDatasets,
  createLogger,
  describePartition,
  initBackend,
  loadLocalShard,
  type ClientShard,
  type DataSource,
  type ImageDataset,
  type LocalShard,
  type Logger,
} from '@ftl/shared';
import { heldOutSet } from '../holdout.js';
import type { Environment, MethodRun, RoundPoint, StudyReport } from '../report/types.js';
import type { LocalSourceConfig, SimConfig, StudySetting } from './config.js';
import { runFederation, signFlip, type FederationResult } from './federation.js';
import { planMethod, type Method } from './methods.js';
import type { TableSite } from './site-host.js';
import type { SiteSpec } from './site-spec.js';
import { tableTask } from './table-task.js';

/** What a study tells its watcher as it goes. */
export interface StudyEvents {
  /** A run starts: its place among all the study's runs, and what it is. */
  runStart?: (e: {
    index: number;
    total: number;
    method: Method;
    seed: number;
    setting?: { name: string; value: number | string };
    rounds: number;
    /** Sites in each of the run's federations (1 for the pooled site and for each site alone). */
    sites: number;
  }) => void;
  round?: (p: RoundPoint) => void;
  runEnd?: (run: MethodRun) => void;
}

const VERSION = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Where and with what the study runs. */
export function environment(): Environment {
  return {
    date: new Date().toISOString(),
    node: process.version,
    ftlVersion: VERSION,
    tfjsVersion: tf.version.tfjs,
    backend: tf.getBackend(),
    cpus: availableParallelism(),
    platform: `${process.platform}-${process.arch}`,
  };
}

/** Sums a run's traffic, in and out, over its rounds. */
function bytesOf(rounds: readonly RoundPoint[]): number {
  return rounds.reduce((a, r) => a + r.bytesIn + r.bytesOut, 0);
}

/** Each site alone: one run per site; the rounds are the sites' means (traffic summed), the held-out their mean and worst. */
function localRun(results: readonly FederationResult[]): Omit<MethodRun, 'method' | 'seed'> {
  const rounds: RoundPoint[] = [];
  const longest = Math.max(...results.map((r) => r.rounds.length));
  for (let i = 0; i < longest; i++) {
    const at = results.map((r) => r.rounds[i]).filter((p): p is RoundPoint => p !== undefined);
    const mean = (f: (p: RoundPoint) => number) => at.reduce((a, p) => a + f(p), 0) / at.length;
    const scored = at.filter((p) => p.heldOut !== undefined);
    rounds.push({
      round: i + 1,
      valLoss: mean((p) => p.valLoss),
      valAccuracy: mean((p) => p.valAccuracy),
      ...(scored.length === at.length ? { heldOut: mean((p) => p.heldOut!) } : {}),
      trainLoss: mean((p) => p.trainLoss),
      accepted: at.reduce((a, p) => a + p.accepted, 0),
      selected: at.reduce((a, p) => a + p.selected, 0),
      bytesIn: at.reduce((a, p) => a + p.bytesIn, 0),
      bytesOut: at.reduce((a, p) => a + p.bytesOut, 0),
      seconds: at.reduce((a, p) => a + p.seconds, 0),
    });
  }
  const heldOuts = results.map((r) => r.heldOut);
  return {
    rounds,
    heldOut: heldOuts.reduce((a, b) => a + b, 0) / heldOuts.length,
    worstHeldOut: Math.min(...heldOuts),
    perClientAccuracy: heldOuts,
    updateValues: results[0]!.summary.weights.values.length,
    bytesTotal: bytesOf(rounds),
    seconds: results.reduce((a, r) => a + r.seconds, 0),
  };
}

/** One site holding every shard given, concatenated in order (its labels already the run's). */
function pool(shards: readonly ClientShard[]): LocalShard {
  if (shards.length === 1) return shards[0]!;
  return { train: concatDatasets(shards.map((s) => s.train)), val: concatDatasets(shards.map((s) => s.val)) };
}

function sourceOf(entry: LocalSourceConfig, seed: number, limit?: number): DataSource {
  const split = { seed, ...(limit !== undefined ? { limit } : {}) };
  if ('table' in entry) return { kind: 'table', file: entry.table, ...split };
  return 'images' in entry
    ? { kind: 'image-folder', dir: entry.images, ...split }
    : { kind: 'csv', file: entry.csv, ...(entry.labelColumn ? { labelColumn: entry.labelColumn } : {}), ...split };
}

/**
 * A natural split: one site per folder or CSV file. The run's labels are every label any site names,
 * in the order people expect (`2` before `10`); each site's shard is renumbered to them, as a client
 * aligns its data to the run's labels, so the pooled site and the held-out set agree.
 */
function naturalSplit(entries: readonly LocalSourceConfig[], heldOut: LocalSourceConfig | undefined, log: Logger) {
  const first = entries.map((e) => loadLocalShard(sourceOf(e, 1), { log }));
  const classes = [...new Set(first.flatMap((s) => [...s.train.classes, ...s.val.classes]))].sort(compareLabels);
  let test: ImageDataset | undefined;
  if (heldOut) {
    // Every image of the held-out source is for scoring: its two splits together.
    const whole = alignShardToRun(loadLocalShard(sourceOf(heldOut, 1), { log }), classes);
    test = concatDatasets([whole.train, whole.val]);
  }
  return {
    classes,
    test,
    shards: (seed: number, perSite?: number) => entries.map((e) => alignShardToRun(loadLocalShard(sourceOf(e, seed, perSite), { log }), classes)),
  };
}

/** What the study's held-out set is, for the report: a built-in task's test split, a given source, or none. */
function heldOutInfo(config: SimConfig, log: Logger): StudyReport['heldOut'] {
  const { data } = config;
  const tables = tableTask(config);
  if (tables) return { dataset: tables.heldOutName, images: tables.test?.rows.length ?? 0 };
  if (data.sites) {
    if (!data.heldOut) return { dataset: "none (the sites' own validation splits only)", images: 0 };
    const where = 'images' in data.heldOut ? data.heldOut.images : 'csv' in data.heldOut ? data.heldOut.csv : data.heldOut.table;
    // Counting the held-out images needs only that source, not the sites' files.
    const held = loadLocalShard(sourceOf(data.heldOut, 1), { log });
    return { dataset: where, images: held.train.n + held.val.n };
  }
  const name = data.classes ? `${data.dataset} classes ${data.classes.join(',')}` : data.dataset;
  return { dataset: name, images: heldOutSet(data.dataset, data.classes).n };
}

/**
 * Runs a study: for each swept setting, each method (the configured transfer run, then each baseline)
 * and each seed, one federation of the real coordinator and clients, scored on held-out images no site
 * holds. A run that fails is kept as a row saying why; the study goes on.
 */
export async function runStudy(
  study: { base: SimConfig; settings: readonly StudySetting[] },
  events: StudyEvents = {},
  log: Logger = createLogger('sim', { level: 'warn' }),
): Promise<StudyReport> {
  await initBackend();
  const { base } = study;
  const total = study.settings.reduce((a, s) => a + (1 + s.config.baselines.length) * s.config.seeds.length, 0);
  const scratch = await mkdtemp(join(tmpdir(), 'ftl-study-'));
  const runs: MethodRun[] = [];
  let index = 0;
  // The label set the runs used (the task's, not the run config's default), for the report's config.
  let runClasses: string[] | undefined;
  try {
    for (const { setting, config } of study.settings) {
      const { data } = config;
      const tables = tableTask(config);
      const natural = !tables && data.sites ? naturalSplit(data.sites, data.heldOut, log) : undefined;
      const classes = tables?.classes ?? natural?.classes ?? [...heldOutSet(data.dataset, data.classes).classes];
      runClasses ??= classes;
      const test = tables ? tables.test : natural ? natural.test : heldOutSet(data.dataset, data.classes);
      const backboneDir = await resolveBackboneSource(config.backbone ?? DEFAULT_BACKBONE);
      const perSite = data.perSite;
      const methods: Method[] = ['transfer', ...config.baselines];
      for (const method of methods) {
        for (const seed of config.seeds) {
          index++;
          const sites = method === 'centralized' || method === 'local' ? 1 : config.clients;
          events.runStart?.({ index, total, method, seed, rounds: config.run.rounds, sites, ...(setting ? { setting } : {}) });
          const base = { method, seed, ...(setting ? { setting } : {}) };
          let row: MethodRun;
          try {
            // The run's label set is the task's: the study holds the data, so the run config need not repeat it.
            const run = { ...config.run, seed, runId: `${method}-${seed}`, classes };
            const plan = await planMethod(method, run, backboneDir, (name) => join(scratch, name), seed);
            // Sites as specs: each is built where it trains (a worker thread, or this one with workers 0).
            const site = (indices: number[]): SiteSpec => ({
              dataset: data.dataset,
              ...(data.classes ? { classes: data.classes } : {}),
              partition: data.partition,
              clients: config.clients,
              seed,
              ...(data.limit ? { limit: data.limit } : {}),
              ...(perSite !== 'all' ? { perClient: perSite } : {}),
              indices,
            });
            const indices = Array.from({ length: config.clients }, (_, i) => i);
            // A natural split's sites are loaded here, each cut to `perSite` and split with the run's seed.
            const own = natural?.shards(seed, perSite === 'all' ? undefined : perSite);
            // A table task's sites: each its rows (the pooled site all of them), split with the run's seed.
            const ownTables = tables?.sites(seed, perSite === 'all' ? undefined : perSite);
            const sitesOf = (parts: number[]): SiteSpec | LocalShard | TableSite =>
              ownTables ? { table: concatRawTables(parts.map((i) => ownTables[i]!)), seed } : own ? pool(parts.map((i) => own[i]!)) : site(parts);
            const federation = (sites: Array<SiteSpec | LocalShard | TableSite>) =>
              runFederation({
                run: plan.run,
                backboneDir: plan.backboneDir,
                sites: sites as SiteSpec[] | LocalShard[] | TableSite[],
                workers: config.workers,
                transport: config.transport,
                ...(test ? { heldOut: { test, every: config.heldOutEvery } } : {}),
                cacheDir: join(scratch, 'cache'),
                log,
                ...(config.attack && config.attack.sites > 0 ? { attackers: config.attack.sites, attack: signFlip(config.attack.scale) } : {}),
                ...(events.round ? { onRound: events.round } : {}),
              });
            if (plan.sites === 'each') {
              const results: FederationResult[] = [];
              for (const i of indices) results.push(await federation([sitesOf([i])]));
              row = { ...base, ...localRun(results) };
            } else {
              // Centralized: one site holding every part, concatenated in order.
              const sites = plan.sites === 'pooled' ? [sitesOf(indices)] : indices.map((i) => sitesOf([i]));
              const r = await federation(sites);
              row = {
                ...base,
                rounds: r.rounds,
                heldOut: r.heldOut,
                // The spread over sites: each site's validation accuracy of the final round's model.
                ...(r.rounds.at(-1)?.perClient ? { perClientAccuracy: r.rounds.at(-1)!.perClient!.map((c) => c.valAccuracy) } : {}),
                updateValues: r.summary.weights.values.length,
                bytesTotal: bytesOf(r.rounds),
                seconds: r.seconds,
              };
            }
          } catch (err) {
            // One failed run is a result to report, not the end of the study.
            row = {
              ...base,
              rounds: [],
              heldOut: NaN,
              updateValues: NaN,
              bytesTotal: NaN,
              seconds: NaN,
              failed: (err as Error).message ?? String(err),
            };
          }
          runs.push(row);
          events.runEnd?.(row);
        }
      }
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  return {
    title: base.title,
    config: {
      ...base,
      run: { ...base.run, ...(runClasses ? { classes: runClasses } : {}) },
      data: { ...base.data, partition: describePartition(base.data.partition) },
    },
    seeds: base.seeds,
    environment: environment(),
    heldOut: heldOutInfo(base, log),
    ...(base.target !== undefined ? { target: base.target } : {}),
    runs,
  };
}
