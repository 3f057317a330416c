import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { parseRunConfig, RUN_LIMITS, runConfigFlags, runConfigFromFlags, runConfigHelp, type RunConfig } from '@ftl/coordinator';
import { BUILTIN_DATASETS, ErrorCode, FtlError, parsePartition, type PartitionSpec, type RawFlags } from '@ftl/shared';

/** The baselines a study can run beside the federated transfer run, on the same sites and seeds. */
export const BASELINES = ['centralized', 'local', 'scratch', 'linear', 'random-backbone'] as const;
export type Baseline = (typeof BASELINES)[number];

/** How the coordinator and its simulated sites talk: loopback socket.io, or an in-memory channel. */
export const TRANSPORTS = ['socket', 'inproc'] as const;

/** Images per site in a sweep: a number, or `all` (each site keeps its whole part). */
const PerSite = z.union([z.number().int().positive().max(1_000_000), z.literal('all')]);

/** A partition in its text form; checked here, read by parsePartition once the study is valid. */
const Partition = z.string().superRefine((text, ctx) => {
  try {
    parsePartition(text);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message, params: { ownMessage: true } });
  }
});

/**
 * A site's own data: a folder of images with one sub-folder per class, a CSV file of images with a label
 * column, or a CSV table read against the run's `table` columns.
 */
const LocalSource = z.union([
  z.strictObject({ images: z.string().min(1) }),
  z.strictObject({ csv: z.string().min(1), labelColumn: z.string().min(1).optional() }),
  z.strictObject({ table: z.string().min(1) }),
]);
export type LocalSourceConfig = z.output<typeof LocalSource>;

/**
 * A simulation study: which sites hold what, the run config every run shares (the coordinator's own
 * schema, under `run`), the seeds, the baselines and where the report goes. A file given with
 * `--config`, with flags of the same names over it.
 */
export const SimConfigSchema = z.strictObject({
  title: z.string().min(1).max(200).default('ftl simulation'),
  clients: z.number().int().positive().max(RUN_LIMITS.clients).default(10),
  data: z
    .strictObject({
      dataset: z.enum(BUILTIN_DATASETS).default('mnist'),
      /** Keep only these classes, relabelled in this order (a target task such as Fashion-MNIST 5–9). */
      classes: z.array(z.number().int().min(0).max(9)).min(2).max(10).optional(),
      partition: Partition.default('iid'),
      /** Labelled images each site keeps (train + validation), its label mix unchanged. */
      perSite: PerSite.default('all'),
      /** Cut the federation pool to this many images first. */
      limit: z.number().int().positive().optional(),
      /**
       * The natural split: one site per entry, each its own image folder (a sub-folder per class) or CSV
       * file, instead of a built-in pool cut by `partition`; `clients` is then the number of entries.
       */
      sites: z.array(LocalSource).min(1).max(RUN_LIMITS.clients).optional(),
      /** Images no site holds, for the held-out score of a natural split (without it: validation only). */
      heldOut: LocalSource.optional(),
      /**
       * One CSV table shared out among `clients` sites (the run config's `table` says its columns): its rows
       * by `partition` over the label (after `sourceSplit`'s rows are set aside, e.g. for pretraining an
       * encoder on them), `heldOut` of them kept for the held-out score.
       */
      table: z
        .strictObject({
          file: z.string().min(1),
          /** Share of the rows held out for scoring, the same rows for every seed. */
          heldOut: z.number().gt(0).lt(1).default(0.3),
          /** Rows set aside and never used (a pretraining source split): `fraction` of them, drawn with `seed`. */
          sourceSplit: z.strictObject({ fraction: z.number().gt(0).lt(1), seed: z.number().int().min(0) }).optional(),
        })
        .optional(),
    })
    .prefault({}),
  /** A committed backbone's name (packages/coordinator/backbones/NAME) or a folder. */
  backbone: z.string().min(1).optional(),
  run: z.unknown().optional(),
  seeds: z.array(z.number().int().min(0).max(RUN_LIMITS.seed)).min(1).max(100).default([1]),
  transport: z.enum(TRANSPORTS).default('socket'),
  /** Worker threads that host the sites' training (0: the sites share the main thread, taking turns). */
  workers: z.number().int().min(0).max(256).default(availableParallelism()),
  baselines: z
    .array(z.enum(BASELINES))
    .max(BASELINES.length)
    .refine((b) => new Set(b).size === b.length, 'each baseline at most once')
    .default([]),
  /** The first `sites` sites attack: a sign flip sends global − scale·(trained − global) (in-thread sites only). */
  attack: z
    .strictObject({
      sites: z.number().int().min(0).max(RUN_LIMITS.clients),
      kind: z.enum(['sign-flip']).default('sign-flip'),
      scale: z.number().positive().max(1e6).default(10),
    })
    .optional(),
  /**
   * Runs the whole study once per setting: `{"data.perSite": [10, 25, 50]}` sets one field to each value
   * in turn; `{"name": "…", "settings": [{"label": "…", "set": {"run.strategy": {…}, "attack.sites": 0}}]}`
   * sets several fields per setting. Fields are named by their path in this document.
   */
  sweep: z
    .union([
      z.strictObject({
        name: z.string().min(1).max(100),
        settings: z
          .array(z.strictObject({ label: z.string().min(1).max(100), set: z.record(z.string(), z.unknown()) }))
          .min(1)
          .max(50),
      }),
      z
        .record(z.string(), z.array(z.unknown()).min(1).max(50))
        .refine((r) => Object.keys(r).length === 1, 'one field and its values, e.g. {"data.perSite": [10, 25, 50]}'),
    ])
    .optional(),
  /** Score the global model on the held-out set every N rounds (0: only the final model). */
  heldOutEvery: z.number().int().min(0).max(RUN_LIMITS.rounds).default(1),
  /** Accuracy whose first crossing the report gives as rounds and seconds to target. */
  target: z.number().gt(0).max(1).optional(),
  /** Where the report goes (default .ftl/sim/<title as a file name>). */
  out: z.string().min(1).optional(),
});

/** A validated study: its own fields, and the run config as the coordinator would validate it. */
type SimFields = z.output<typeof SimConfigSchema>;
export type SimConfig = Omit<SimFields, 'run' | 'data'> & {
  run: RunConfig;
  data: Omit<SimFields['data'], 'partition'> & { partition: PartitionSpec };
};

/** The study fields a flag can set, in the order --help lists them. */
const SIM_FLAGS: ReadonlyArray<{ name: string; arg: string; path: string; help: string; read: (text: string) => unknown }> = [
  { name: 'title', arg: 'TEXT', path: 'title', help: "the report's title", read: (t) => t },
  { name: 'clients', arg: 'N', path: 'clients', help: 'simulated sites', read: num },
  { name: 'dataset', arg: 'NAME', path: 'data.dataset', help: BUILTIN_DATASETS.join(' | '), read: (t) => t },
  { name: 'classes', arg: 'A,B,…', path: 'data.classes', help: 'keep only these classes, relabelled in this order', read: nums },
  {
    name: 'partition',
    arg: 'P',
    path: 'data.partition',
    help: 'iid | dirichlet:α | shards:k | quantity:β | samples:n | size:linear|square|exponential',
    read: (t) => t,
  },
  { name: 'per-site', arg: 'N', path: 'data.perSite', help: 'labelled images each site keeps, or all', read: perSite },
  { name: 'limit', arg: 'N', path: 'data.limit', help: 'cut the federation pool to N images first', read: num },
  { name: 'backbone', arg: 'NAME|DIR', path: 'backbone', help: 'a committed backbone by name, or a folder', read: (t) => t },
  { name: 'seeds', arg: 'S,S,…', path: 'seeds', help: 'one run of every method per seed', read: nums },
  { name: 'transport', arg: 'T', path: 'transport', help: TRANSPORTS.join(' | '), read: (t) => t },
  { name: 'workers', arg: 'N', path: 'workers', help: 'worker threads training the sites (0: the main thread)', read: num },
  { name: 'baselines', arg: 'B,B,…', path: 'baselines', help: BASELINES.join(','), read: (t) => (t === '' ? [] : t.split(',')) },
  {
    name: 'sweep-per-site',
    arg: 'N,N,…',
    path: 'sweep',
    help: 'run the study at each number of images per site',
    read: (t) => ({ 'data.perSite': perSites(t) }),
  },
  { name: 'held-out-every', arg: 'N', path: 'heldOutEvery', help: 'score the global model on held-out images every N rounds', read: num },
  { name: 'target', arg: 'X', path: 'target', help: 'accuracy for rounds and seconds to target', read: num },
  { name: 'out', arg: 'DIR', path: 'out', help: 'report folder', read: (t) => t },
];

function num(text: string): unknown {
  return text.trim() !== '' && Number.isFinite(Number(text)) ? Number(text) : text;
}
function nums(text: string): unknown {
  return text === '' ? [] : text.split(',').map((x) => num(x.trim()));
}
function perSite(text: string): unknown {
  return text === 'all' ? 'all' : num(text);
}
function perSites(text: string): unknown {
  return text.split(',').map((x) => perSite(x.trim()));
}

/** Every flag `npm run sim` takes: the study's, `--config`, `--help`, and the run config's own. */
export function simFlagOptions(): Record<string, { type: 'string' | 'boolean' }> {
  const options: Record<string, { type: 'string' | 'boolean' }> = { config: { type: 'string' }, help: { type: 'boolean' } };
  for (const f of [...SIM_FLAGS, ...runConfigFlags()]) options[f.name] = { type: 'string' };
  return options;
}

export const SIM_HELP = `npm run sim -- [--config FILE.json] [flags]
Runs a simulation study: the real coordinator and real clients, one federated transfer run per seed (and
per swept setting), beside the baselines asked for, and writes a report (HTML with plots, CSV, JSON).
A config file holds the same fields as the flags (flags win); its "run" object is a run config, the
coordinator's own schema (docs/run-config.md). Scenario files: simulations/scenarios/*.json.

Study:
${SIM_FLAGS.map((f) => `  --${`${f.name} ${f.arg}`.padEnd(22)} ${f.help}`).join('\n')}
  --config FILE            a study file (JSON)

Run config (as the coordinator's):
${runConfigHelp()}
`;

function setPath(doc: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let o = doc;
  for (const k of keys.slice(0, -1)) o = (o[k] ??= {}) as Record<string, unknown>;
  o[keys.at(-1)!] = value;
}

/** The value at `path` of `input`, for messages. */
function at(input: unknown, path: readonly PropertyKey[]): unknown {
  return path.reduce<unknown>((v, k) => (v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined), input);
}

/**
 * Validates a study document (a parsed config file with flags written over it). `where` names the
 * source in messages: `simulations/scenarios/iid.json: clients must be …`.
 *
 * @throws FtlError(INVALID_CONFIG) naming every field that is wrong, what it must be and what it was.
 */
export function parseSimConfig(input: unknown, where = 'sim config', runFlags: RawFlags = {}): SimConfig {
  const result = SimConfigSchema.safeParse(input);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const path = issue.path.map(String).join('.');
      if (issue.code === 'unrecognized_keys') return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}`;
      if (issue.code === 'custom' && issue.params?.['ownMessage'] === true) return `${path}: ${issue.message}`;
      return `${path || 'the config'}: ${issue.message} (got ${JSON.stringify(at(input, issue.path)) ?? 'nothing'})`;
    });
    throw new FtlError(ErrorCode.InvalidConfig, `${where}: ${problems.join('; ')}`);
  }
  const study = result.data;
  // The run config: the coordinator's schema, its messages, and the run config flags over it.
  const run = runConfigFromFlags(runFlags, parseRunConfig(study.run ?? {}, `${where}: run`));
  if (study.attack && study.attack.sites > 0 && study.workers > 0) {
    throw new FtlError(ErrorCode.InvalidConfig, `${where}: attacking sites run in this thread only; set workers to 0`);
  }
  if (study.transport === 'inproc' && study.workers > 0) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `${where}: transport inproc runs every site in this thread; set workers to 0, or use transport socket for worker threads`,
    );
  }
  if ((study.data.table || study.data.sites?.some((s) => 'table' in s)) && !run.table) {
    throw new FtlError(ErrorCode.InvalidConfig, `${where}: table sites need the run's columns: set run.table (docs/run-config.md#tables)`);
  }
  if (study.data.table && study.data.sites) throw new FtlError(ErrorCode.InvalidConfig, `${where}: give data.table or data.sites, not both`);
  // Table sites load in this thread from their file.
  if (study.data.table) return { ...study, workers: 0, data: { ...study.data, partition: parsePartition(study.data.partition) }, run };
  // A natural split has as many sites as entries, and they load in this thread (their files are here).
  const sites = study.data.sites;
  return {
    ...study,
    ...(sites ? { clients: sites.length, workers: 0 } : {}),
    data: { ...study.data, partition: parsePartition(study.data.partition) },
    run,
  };
}

/** One setting of a study: what it sets (absent without a sweep), and the study as run there. */
export interface StudySetting {
  setting?: { name: string; value: number | string };
  config: SimConfig;
}

/**
 * A study document and its settings: without a sweep, the study itself; with one, the document with
 * each setting's fields written over it, each validated in full (so a bad value in the sweep gets the
 * same message as in the file). A sweep may not set a field a run config flag also sets.
 */
export function expandStudy(doc: Record<string, unknown>, where: string, runFlags: RawFlags = {}): { base: SimConfig; settings: StudySetting[] } {
  const base = parseSimConfig(doc, where, runFlags);
  const sweep = doc['sweep'] as Record<string, unknown> | undefined;
  if (!sweep) return { base, settings: [{ config: base }] };
  const named = typeof sweep['name'] === 'string' && Array.isArray(sweep['settings']);
  const entries: Array<{ value: number | string; set: Record<string, unknown> }> = named
    ? (sweep['settings'] as Array<{ label: string; set: Record<string, unknown> }>).map((s) => ({ value: s.label, set: s.set }))
    : (Object.values(sweep)[0] as unknown[]).map((v) => ({
        value: typeof v === 'number' || typeof v === 'string' ? v : JSON.stringify(v),
        set: { [Object.keys(sweep)[0]!]: v },
      }));
  const name = named ? String(sweep['name']) : Object.keys(sweep)[0]!;
  const flagged = new Set(
    runConfigFlags()
      .filter((f) => runFlags[f.name] !== undefined)
      .map((f) => `run.${f.path}`),
  );
  const settings = entries.map(({ value, set }) => {
    const copy = structuredClone(doc);
    delete copy['sweep'];
    for (const [path, v] of Object.entries(set)) {
      if (path === 'sweep' || path.startsWith('sweep.')) throw new FtlError(ErrorCode.InvalidConfig, `${where}: a sweep cannot set the sweep`);
      const clash = [...flagged].find((f) => f === path || f.startsWith(`${path}.`) || path.startsWith(`${f}.`));
      if (clash) throw new FtlError(ErrorCode.InvalidConfig, `${where}: the sweep sets ${path}, which a command-line flag also sets; drop one`);
      setPath(copy, path, v);
    }
    return { setting: { name, value }, config: parseSimConfig(copy, `${where}: sweep setting ${JSON.stringify(value)}`, runFlags) };
  });
  return { base, settings };
}

/**
 * The study a command line asks for: `--config FILE` (if any), the study flags over it, then the run
 * config flags over its `run`, all validated as one file would be.
 */
export function simConfigFromArgs(values: RawFlags): { base: SimConfig; settings: StudySetting[] } {
  let doc: Record<string, unknown> = {};
  let where = 'command line';
  if (typeof values['config'] === 'string') {
    where = values['config'];
    try {
      doc = JSON.parse(readFileSync(where, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new FtlError(ErrorCode.InvalidConfig, `cannot read sim config ${where}: ${(err as Error).message}`, { cause: err });
    }
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
      throw new FtlError(ErrorCode.InvalidConfig, `${where} must hold a JSON object (the study's fields; see npm run sim -- --help)`);
    }
  }
  for (const f of SIM_FLAGS) {
    const text = values[f.name];
    if (typeof text === 'string') setPath(doc, f.path, f.read(text));
  }
  const runFlags = Object.fromEntries(runConfigFlags().flatMap((f) => (values[f.name] !== undefined ? [[f.name, values[f.name]]] : [])));
  return expandStudy(doc, where, runFlags as RawFlags);
}
