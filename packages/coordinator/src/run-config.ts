import { readFileSync } from 'node:fs';
import { z } from 'zod';
import {
  DEFAULT_FINE_TUNING,
  DEFAULT_HIDDEN,
  CLIENT_DP_NOISES,
  DP_SAMPLINGS,
  ErrorCode,
  FINE_TUNING_MODES,
  FtlError,
  MAX_NOISE_MULTIPLIER,
  parseStrategy,
  SECAGG_ROUNDINGS,
  STRATEGY_OPTIONS,
  type StrategyConfig,
} from '@ftl/shared';
import { MAX_TABLE_CATEGORIES, MAX_TABLE_COLUMNS, TABLE_COLUMN_ROLES, TABLE_COLUMN_TYPES, TABLE_MISSING_POLICIES, TABLE_SCALINGS } from '@ftl/shared';
import { secureAggregationProblems, withSecureAggregationDefaults } from './secure-aggregation-settings.js';
import { DEFAULT_TRUST } from './update-screen.js';

/**
 * How a run config field is given on the one-run command line: `--name ARG`, what it sets, and how the
 * flag's text becomes the field's JSON value (the schema then validates it, with the same message as a
 * config file). `read` gets the text and the field's current value (the config file's, or the default).
 */
export interface RunFlag {
  name: string;
  arg: string;
  help: string;
  /** The field's path in the run config, e.g. `fit.learningRate`. */
  path: string;
  read: (text: string, current: unknown) => unknown;
  /** Other fields the same flag sets, by path (e.g. `--normalization standard:feature` sets the scope too). */
  also?: (text: string) => Record<string, unknown>;
  /** The paths `also` may set, so messages about them name this flag. */
  alsoPaths?: string[];
}

/** Readers of flag text: a number (left as text when it is none, so the message shows what was given), lists, words. */
export const flagText = {
  number: (text: string): unknown => (text.trim() !== '' && Number.isFinite(Number(text)) ? Number(text) : text),
  numbers: (text: string): unknown => (text === '' ? [] : text.split(',').map((x) => flagText.number(x.trim()))),
  words: (text: string): unknown => text.split(','),
  word: (text: string): unknown => text,
};

// What each field must be, by path, for messages like `rounds must be a positive integer (got -1)`.
const rules = new Map<string, string>();
// Fields whose upper bound is not in their text: above it they read `rounds must be ≤ 100000 (got …)`.
const capped = new Set<string>();
// Run config fields that have a command-line flag, in the schema's order.
const flags: RunFlag[] = [];
type FlagOption = Omit<RunFlag, 'path' | 'read'> & { read?: RunFlag['read'] };
function rule<T extends z.ZodType>(path: string, text: string, schema: T, options: { capped?: boolean; flag?: FlagOption } = {}): T {
  rules.set(path, text);
  if (options.capped) capped.add(path);
  if (options.flag) flags.push({ read: flagText.number, ...options.flag, path });
  return schema;
}
/** A flag for a field with no rule of its own (an object set as a whole, or a field sharing another's flag). */
function flagFor<T extends z.ZodType>(path: string, flag: FlagOption & { read: RunFlag['read'] }, schema: T): T {
  flags.push({ ...flag, path });
  return schema;
}
const posInt = (path: string, max: number, flag?: FlagOption) =>
  rule(path, 'a positive integer', z.number().int().positive().max(max), { capped: true, ...(flag ? { flag } : {}) });
const nonNegInt = (path: string, max: number, flag?: FlagOption) =>
  rule(path, 'an integer ≥ 0', z.number().int().min(0).max(max), { capped: true, ...(flag ? { flag } : {}) });
const posNum = (path: string, flag?: FlagOption) => rule(path, 'a number > 0', z.number().positive().finite(), flag ? { flag } : {});

/** The `table` block of a run config read from its own JSON file (`--table-schema FILE`); the schema checks it. */
function tableSchemaFile(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `--table-schema ${path}: cannot read it as JSON (${(err as Error).message.split('\n')[0]}); give a file holding the table block, e.g. {"columns": [...]}`,
      {
        cause: err,
      },
    );
  }
}

/** `a=1,b=x,c=true` → {a: 1, b: 'x', c: true}; a bare first item (no "=") comes back as `head`. */
export function keyValues(text: string, flag: string): { head?: string; values: Record<string, string | number | boolean> } {
  const values: Record<string, string | number | boolean> = {};
  let head: string | undefined;
  text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)
    .forEach((pair, i) => {
      const eq = pair.indexOf('=');
      if (eq < 0) {
        if (i > 0) throw new FtlError(ErrorCode.InvalidConfig, `--${flag} takes key=value pairs after its first item (got "${pair}")`);
        head = pair;
        return;
      }
      const [k, v] = [pair.slice(0, eq).trim(), pair.slice(eq + 1).trim()];
      values[k] = v === 'true' ? true : v === 'false' ? false : v !== '' && Number.isFinite(Number(v)) ? Number(v) : v;
    });
  return { ...(head !== undefined ? { head } : {}), values };
}

/** `--name mode,k=v,…` over an object field: the bare first item sets `headKey`, the pairs its other keys. */
const objectFlag =
  (name: string, headKey?: string) =>
  (text: string, current: unknown): unknown => {
    const { head, values } = keyValues(text, name);
    if (head !== undefined && headKey === undefined) throw new FtlError(ErrorCode.InvalidConfig, `--${name} takes key=value pairs (got "${head}")`);
    return { ...(current as object), ...(head !== undefined ? { [headKey!]: head } : {}), ...values };
  };

/** `--epochs-schedule 1:5,4:2` → [{fromRound: 1, epochs: 5}, {fromRound: 4, epochs: 2}]; the schema checks the numbers. */
function epochsSchedule(text: string): unknown {
  return text
    .split(',')
    .filter(Boolean)
    .map((pair) => {
      const m = /^\s*(-?[\d.]+):(-?[\d.]+)\s*$/.exec(pair);
      if (!m) throw new FtlError(ErrorCode.InvalidConfig, `--epochs-schedule takes "round:epochs" pairs like 1:5,4:2 (got "${pair}")`);
      return { fromRound: Number(m[1]), epochs: Number(m[2]) };
    });
}

/**
 * How a run's head starts: `random` (seeded); `class-means` — before round 1 the sites send per-class
 * sums and counts of their training features and the coordinator sets the head to the nearest-class-mean
 * classifier (FedNCM); `discriminant` — the same sums plus each site's within-class scatter, which give the
 * pooled shrinkage linear discriminant (LDA) exactly as if the features were pooled; `auto` (the default) —
 * `discriminant` where the run allows it, `random` where it does not ({@link resolvedHeadInit}).
 */
export const HEAD_INITS = ['auto', 'random', 'class-means', 'discriminant'] as const;
export type HeadInit = (typeof HEAD_INITS)[number];
/** A head initialisation a run does: {@link HeadInit} with `auto` decided. */
export type ResolvedHeadInit = Exclude<HeadInit, 'auto'>;

/** Largest feature vector a discriminant head takes: each site sends featureDim² values once. */
export const MAX_DISCRIMINANT_FEATURES = 2048;

/**
 * The head initialisation a run does: `headInit` itself, unless it is `auto`, which becomes `discriminant`
 * when nothing stands in its way — a linear head on the pretrained backbone's features (not `scratch`), at
 * most {@link MAX_DISCRIMINANT_FEATURES} feature values, and no differential privacy or secure aggregation,
 * which must not see a site's exact feature sums — and `random` otherwise.
 */
export function resolvedHeadInit(
  run: {
    headInit: HeadInit;
    hidden: readonly number[];
    fineTuning: { mode: string };
    privacy: { mode: string };
    secureAggregation: { enabled: boolean };
  },
  featureDim: number,
): ResolvedHeadInit {
  if (run.headInit !== 'auto') return run.headInit;
  const allowed =
    run.hidden.length === 0 &&
    run.fineTuning.mode !== 'scratch' &&
    featureDim <= MAX_DISCRIMINANT_FEATURES &&
    run.privacy.mode === 'none' &&
    !run.secureAggregation.enabled;
  return allowed ? 'discriminant' : 'random';
}

/**
 * Why `headInit` cannot go with the run's head and fine-tuning mode, or undefined: class means and the
 * discriminant set a linear head (hidden []) on the pretrained backbone's features, which `scratch` does
 * not train on.
 */
export function headInitProblem(headInit: HeadInit | undefined, hidden: readonly number[], mode: string): string | undefined {
  if (headInit !== 'class-means' && headInit !== 'discriminant') return undefined;
  if (hidden.length > 0) {
    return `${headInit} sets a linear head, but hidden is [${hidden.join(', ')}]; set hidden to [] (--hidden "") or headInit to random`;
  }
  if (mode === 'scratch') {
    return `${headInit} starts the head from the pretrained backbone's features, but fineTuning.mode scratch re-initialises the backbone; use feature-extraction, partial or gradual, or headInit random`;
  }
  return undefined;
}

const HEAD_INIT_RULE =
  "auto (discriminant where the run allows it, else random), random, class-means (the nearest-class-mean head from the sites' per-class feature sums) or discriminant (the pooled shrinkage LDA head from the sums and each site's within-class scatter); the last two need a linear head, hidden []";

/**
 * Whether a run trains with differential privacy: `none`; `record` (DP-SGD on every site, each site's
 * records protected); `client` (DP-FedAvg: each site's change clipped, the round's mean noised, a whole
 * site's participation protected; the coordinator accounts).
 */
export const PRIVACY_MODES = ['none', 'record', 'client'] as const;
export type PrivacyMode = (typeof PRIVACY_MODES)[number];

/** The δ a DP run reports ε at unless it says otherwise. */
export const DEFAULT_DP_DELTA = 1e-5;

/** Strategies whose aggregate is not a mean of the updates: the noise of client-level DP, scaled to a mean's sensitivity, would not cover them. */
const NOT_A_MEAN = ['fedmedian', 'fedtrimmedavg', 'krum', 'multikrum'];

/** The settings of {@link privacyProblems}: the privacy block and the fields it must agree with. */
interface PrivacyContext {
  privacy: {
    mode: PrivacyMode;
    noiseMultiplier?: number | undefined;
    clipNorm?: number | undefined;
    noise?: string | undefined;
    adaptiveClipping?: { countNoiseMultiplier: number } | undefined;
    targetEpsilon?: number | undefined;
  };
  headInit: HeadInit;
  normalization: string;
  augment: { copies: number };
  strategy?: { name: string };
}

/** Fields of the privacy block that only client-level DP reads. */
const CLIENT_ONLY = ['noise', 'adaptiveClipping'] as const;

/**
 * What stands in the way of `privacy` as given, each with the field to name: settings record-level DP
 * needs and lacks, settings given without it, and other fields that would release a site's training
 * data outside DP-SGD or break the per-record bound its clipping gives. Empty when none.
 */
export function privacyProblems(run: PrivacyContext): Array<{ path: string; message: string }> {
  const { privacy } = run;
  const problems: Array<{ path: string; message: string }> = [];
  const fix = 'or set privacy.mode to none';
  if (privacy.mode !== 'client') {
    for (const key of CLIENT_ONLY) {
      if (privacy[key] !== undefined) {
        problems.push({
          path: `privacy.${key}`,
          message: `is a setting of client-level DP but privacy.mode is ${privacy.mode}; set privacy.mode to client, or leave privacy.${key} out`,
        });
      }
    }
  }
  if (privacy.mode === 'client') return [...problems, ...clientPrivacyProblems(run)];
  if (privacy.mode === 'none') {
    for (const key of ['noiseMultiplier', 'clipNorm', 'targetEpsilon'] as const) {
      if (privacy[key] !== undefined) {
        problems.push({
          path: `privacy.${key}`,
          message: `is set but privacy.mode is none, so no site would add noise or clip; set privacy.mode to record, or leave privacy.${key} out`,
        });
      }
    }
    return problems;
  }
  if (privacy.noiseMultiplier === undefined && privacy.targetEpsilon === undefined) {
    problems.push({
      path: 'privacy.noiseMultiplier',
      message:
        "or privacy.targetEpsilon is needed with privacy.mode record: σ, the noise's standard deviation as a multiple of clipNorm (e.g. 1.1; larger spends less ε per round), or the ε each site's noise is set to spend over the run (e.g. 8)",
    });
  }
  if (privacy.noiseMultiplier !== undefined && privacy.targetEpsilon !== undefined) {
    problems.push({
      path: 'privacy.targetEpsilon',
      message:
        'and privacy.noiseMultiplier are both set: with targetEpsilon each site sets its own σ from its number of records, so the run gives one or the other; leave one out',
    });
  }
  if (privacy.clipNorm === undefined) {
    problems.push({
      path: 'privacy.clipNorm',
      message: "is needed with privacy.mode record: the L2 norm each example's gradient is clipped to (C, e.g. 1)",
    });
  }
  if (run.headInit === 'class-means' || run.headInit === 'discriminant') {
    problems.push({
      path: 'privacy.mode',
      message: `record-level DP covers what DP-SGD trains, but headInit ${run.headInit} sends each site's exact per-class feature sums${run.headInit === 'discriminant' ? ' and scatter' : ''} before round 1; use headInit random, ${fix}`,
    });
  }
  if (run.normalization !== 'none') {
    problems.push({
      path: 'privacy.mode',
      message: `record-level DP covers what DP-SGD trains, but normalization ${run.normalization} has each site send the exact sums, minima and maxima of its training images; use normalization none, ${fix}`,
    });
  }
  if (run.augment.copies > 0) {
    problems.push({
      path: 'privacy.mode',
      message: `DP-SGD clips each example, but augment.copies ${run.augment.copies} puts every record in the training set ${run.augment.copies + 1} times, so one record could move an update by ${run.augment.copies + 1}× the clipping norm and the ε reported would be too small; set augment.copies to 0, ${fix}`,
    });
  }
  return problems;
}

/**
 * What stands in the way of client-level DP (DP-FedAvg) as given: σ and S it lacks, adaptive clipping
 * that cannot hold, strategies that do not average the clipped changes, and fields that send a site's
 * exact statistics outside the noised mean.
 */
function clientPrivacyProblems(run: PrivacyContext): Array<{ path: string; message: string }> {
  const { privacy } = run;
  const problems: Array<{ path: string; message: string }> = [];
  const fix = 'or set privacy.mode to none';
  if (privacy.noiseMultiplier === undefined) {
    problems.push({
      path: 'privacy.noiseMultiplier',
      message:
        "is needed with privacy.mode client: z, the noise's standard deviation on the round's sum of clipped changes as a multiple of clipNorm (e.g. 1; larger spends less ε per round)",
    });
  }
  if (privacy.clipNorm === undefined) {
    problems.push({
      path: 'privacy.clipNorm',
      message:
        "is needed with privacy.mode client: S, the L2 norm each site's change to the global model is clipped to (the first S with adaptiveClipping, e.g. 0.5)",
    });
  }
  const adaptive = privacy.adaptiveClipping;
  if (adaptive && privacy.noise === 'local') {
    problems.push({
      path: 'privacy.adaptiveClipping',
      message:
        'needs privacy.noise central: with local noise the coordinator would see each site’s clipped-or-not bit exactly, outside any noise; set privacy.noise to central or leave adaptiveClipping out',
    });
  }
  if (adaptive && privacy.noiseMultiplier !== undefined && 2 * adaptive.countNoiseMultiplier <= privacy.noiseMultiplier) {
    problems.push({
      path: 'privacy.adaptiveClipping.countNoiseMultiplier',
      message: `must be more than half of privacy.noiseMultiplier (${privacy.noiseMultiplier}): the update's noise is z_Δ = (z⁻² − (2σ_b)⁻²)^(−½), which does not exist below that; raise it (about m/20 for m sites per round)`,
    });
  }
  const strategy = run.strategy?.name;
  if (strategy !== undefined && NOT_A_MEAN.includes(strategy)) {
    problems.push({
      path: 'strategy.name',
      message: `${strategy} does not average the updates, but client-level DP's noise is scaled to the sensitivity S/m of a mean of changes clipped to S, so the guarantee would not hold (and the noise, not one site, is what a robust rule would then fight); use fedavg, fedprox, fedavgm, fedadam, fedyogi or fedadagrad, ${fix}`,
    });
  }
  if (strategy === 'normbounded') {
    problems.push({
      path: 'strategy.name',
      message: `normbounded weights the updates by sample count, which lets one site move the mean by more than S/m; client-level DP clips every change to privacy.clipNorm already, so use fedavg (or fedavgm, fedadam), ${fix}`,
    });
  }
  if (run.headInit === 'class-means' || run.headInit === 'discriminant') {
    problems.push({
      path: 'privacy.mode',
      message: `client-level DP covers the noised mean of the rounds, but headInit ${run.headInit} sends each site's exact per-class feature sums before round 1; use headInit random, ${fix}`,
    });
  }
  if (run.normalization !== 'none') {
    problems.push({
      path: 'privacy.mode',
      message: `client-level DP covers the noised mean of the rounds, but normalization ${run.normalization} has each site send the exact statistics of its training images; use normalization none, ${fix}`,
    });
  }
  return problems;
}

const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

/**
 * A run id: it names the run's export folder (`<exportRoot>/<runId>`), so it starts with a letter or digit
 * (never `.` or `..`) and holds no path separator.
 */
export const RUN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * Upper bounds of a run's counts. A run config may come from an API body, so each count is bounded
 * before anything is sized or scheduled by it; the model's own size is checked in `headParameterCount`.
 */
export const RUN_LIMITS = {
  rounds: 100_000,
  clients: 10_000,
  epochs: 10_000,
  batchSize: 65_536,
  hiddenLayers: 16,
  hiddenUnits: 65_536,
  classes: 10_000,
  /** Seeds are 32-bit: larger ones would repeat smaller ones. */
  seed: 4_294_967_295,
  /** Timers above 2³¹ ms fire at once in Node, so waits stay well below. */
  waitTimeoutSeconds: 7 * 24 * 3600,
  roundDeadlineSeconds: 24 * 3600,
  names: 256,
} as const;
const L = RUN_LIMITS;

/**
 * The run configuration: everything that defines a training run (not where the coordinator listens).
 * One JSON document — a file given with `--config`, or later an API body — validated here at the
 * boundary. Every field has a default (together, a working MNIST run); docs/run-config.md lists them.
 */
export const RunConfigSchema = z
  .strictObject({
    runId: rule('runId', '1–64 letters, digits, ".", "_" or "-", starting with a letter or digit', z.string().regex(RUN_ID_PATTERN), {
      flag: {
        name: 'run-id',
        arg: 'ID',
        help: "the run's id; restarting with the same --db and --run-id resumes it (default run-<time>)",
        read: flagText.word,
      },
    }).optional(),
    rounds: posInt('rounds', L.rounds, { name: 'rounds', arg: 'N', help: 'rounds to train' }).default(5),
    minClients: posInt('minClients', L.clients, { name: 'min-clients', arg: 'N', help: 'ready clients to wait for before round 1' }).default(2),
    waitTimeoutSeconds: rule('waitTimeoutSeconds', 'a number ≥ 0', z.number().min(0).max(L.waitTimeoutSeconds), {
      capped: true,
      flag: { name: 'wait-timeout', arg: 'S', help: 'seconds to wait for them' },
    }).default(120),
    fractionFit: rule('fractionFit', 'a number in (0, 1]', z.number().positive().max(1), {
      flag: { name: 'fraction-fit', arg: 'X', help: 'share of ready clients trained per round' },
    }).default(1),
    minFitClients: posInt('minFitClients', L.clients, { name: 'min-fit-clients', arg: 'N', help: 'accepted updates needed to aggregate' }).default(1),
    roundDeadlineSeconds: rule('roundDeadlineSeconds', 'a number > 0', z.number().positive().max(L.roundDeadlineSeconds), {
      capped: true,
      flag: { name: 'round-deadline', arg: 'S', help: 'seconds training, and then evaluation, each wait for answers' },
    }).default(60),
    quorumRetries: nonNegInt('quorumRetries', 1000, {
      name: 'quorum-retries',
      arg: 'N',
      help: 'retries of a round below --min-fit-clients before the run fails',
    }).default(2),
    fit: z
      .strictObject({
        epochs: posInt('fit.epochs', L.epochs, { name: 'epochs', arg: 'N', help: 'local epochs per round' }).default(5),
        batchSize: posInt('fit.batchSize', L.batchSize, { name: 'batch-size', arg: 'N', help: 'local minibatch size' }).default(32),
        learningRate: posNum('fit.learningRate', { name: 'lr', arg: 'X', help: 'client learning rate (Adam)' }).default(0.001),
      })
      .prefault({}),
    schedule: z
      .strictObject({
        lrDecay: rule('schedule.lrDecay', 'a number in (0, 1]', z.number().positive().max(1), {
          flag: { name: 'lr-decay', arg: 'X', help: 'learning rate × X each round' },
        }).default(1),
        epochs: rule(
          'schedule.epochs',
          'a list of {fromRound, epochs} with increasing fromRound, both positive integers',
          z
            .array(z.strictObject({ fromRound: z.number().int().positive().max(L.rounds), epochs: z.number().int().positive().max(L.epochs) }))
            .max(L.rounds)
            .refine((a) => a.every((s, i) => i === 0 || s.fromRound > a[i - 1]!.fromRound)),
          {
            capped: true,
            flag: {
              name: 'epochs-schedule',
              arg: 'S',
              help: 'from round r on, e local epochs: "r:e,r:e", e.g. 1:5,4:2 (none: --epochs throughout)',
              read: epochsSchedule,
            },
          },
        ).default([]),
      })
      .prefault({}),
    seed: nonNegInt('seed', L.seed, { name: 'seed', arg: 'N', help: "seeds the head, client selection and the clients' shuffling" }).default(1),
    l2: rule('l2', 'a number ≥ 0', z.number().min(0).finite(), { flag: { name: 'l2', arg: 'X', help: "L2 penalty on the head's kernels" } }).default(
      0,
    ),
    dropout: rule('dropout', 'a number in [0, 1)', z.number().min(0).lt(1), {
      flag: { name: 'dropout', arg: 'X', help: 'dropout after hidden layers' },
    }).default(0),
    patience: rule(
      'patience',
      'an integer ≥ 0 (rounds without a better federated validation loss or accuracy before stopping; 0 = off)',
      z.number().int().min(0).max(L.rounds),
      {
        capped: true,
        flag: {
          name: 'patience',
          arg: 'N',
          help: 'early stopping: stop after N rounds without a better median validation score and export the best head',
        },
      },
    ).default(0),
    patienceMetric: rule(
      'patienceMetric',
      "loss or accuracy (the median of the sites' validation losses, lower is better, or of their accuracies, higher is better)",
      z.enum(['loss', 'accuracy']),
      { flag: { name: 'patience-metric', arg: 'M', help: 'what early stopping watches: loss | accuracy', read: flagText.word } },
    ).default('loss'),
    hidden: rule(
      'hidden',
      'a list of positive integers (hidden layer sizes)',
      z.array(z.number().int().positive().max(L.hiddenUnits)).max(L.hiddenLayers),
      { capped: true, flag: { name: 'hidden', arg: 'N[,N]', help: 'hidden layer sizes of the head, "" for a linear head', read: flagText.numbers } },
    ).default([...DEFAULT_HIDDEN]),
    classes: rule(
      'classes',
      'a list of at least two distinct non-empty labels',
      z
        .array(z.string().min(1).max(L.names))
        .min(2)
        .max(L.classes)
        .refine((c) => new Set(c).size === c.length),
      { capped: true, flag: { name: 'classes', arg: 'A,B,…', help: "the run's label set", read: flagText.words } },
    ).default(DIGITS),
    strategy: flagFor(
      'strategy',
      {
        name: 'strategy',
        arg: 'NAME',
        help: Object.keys(STRATEGY_OPTIONS).join(' | '),
        // Another strategy starts from its own default options; --strategy-options sets them.
        read: (text) => ({ name: text, options: {} }),
      },
      z.strictObject({
        name: rule(
          'strategy.name',
          `one of ${Object.keys(STRATEGY_OPTIONS).join(', ')}`,
          z.enum(Object.keys(STRATEGY_OPTIONS) as [string, ...string[]]),
        ),
        options: rule('strategy.options', 'an object of numbers', z.record(z.string(), z.number()), {
          flag: {
            name: 'strategy-options',
            arg: 'KV',
            help: "the strategy's options as key=value,…, e.g. beta=0.2 (docs/strategies.md)",
            read: objectFlag('strategy-options'),
          },
        }).default({}),
      }),
    ).prefault({ name: 'fedavg' }),
    localLayers: rule('localLayers', 'a list of head layer names', z.array(z.string().min(1).max(L.names)).max(2 * L.hiddenLayers + 1), {
      capped: true,
      flag: {
        name: 'local-layers',
        arg: 'L[,L]',
        help: 'head layers kept on each client, e.g. head_output',
        read: (t) => t.split(',').filter(Boolean),
      },
    }).default([]),
    personalizeEpochs: nonNegInt('personalizeEpochs', L.epochs, {
      name: 'personalize-epochs',
      arg: 'N',
      help: 'after the run, clients fine-tune the global head N epochs and report',
    }).default(0),
    maxExamplesPerClient: posInt('maxExamplesPerClient', Number.MAX_SAFE_INTEGER, {
      name: 'max-examples',
      arg: 'N',
      help: 'larger claimed sample counts are refused',
    }).default(1_000_000),
    sampleWeightCap: posNum('sampleWeightCap', { name: 'sample-weight-cap', arg: 'N', help: 'aggregation weight = min(samples, N)' }).default(
      1_000_000,
    ),
    featureLayer: rule('featureLayer', 'a layer name', z.string().min(1).max(L.names), {
      capped: true,
      flag: {
        name: 'feature-layer',
        arg: 'NAME',
        help: 'layer (layers model) or node (graph model) whose output, flattened, is the feature vector (default: from ftl-backbone.json)',
        read: flagText.word,
      },
    }).optional(),
    normalization: rule('normalization', 'none, standard or min-max (federated per-channel statistics)', z.enum(['none', 'standard', 'min-max']), {
      flag: {
        name: 'normalization',
        arg: 'N',
        help: 'federated input normalisation: none | standard | min-max, optionally :feature for one statistic per value (tabular data)',
        read: (text) => text.split(':')[0],
        also: (text) => (text.includes(':') ? { normalizationScope: text.slice(text.indexOf(':') + 1) } : {}),
        alsoPaths: ['normalizationScope'],
      },
    }).default('none'),
    normalizationScope: rule(
      'normalizationScope',
      'channel (one statistic per image channel) or feature (one per value, for tabular CSV columns)',
      z.enum(['channel', 'feature']),
    ).default('channel'),
    normalizationTrim: rule(
      'normalizationTrim',
      'an integer in [0, 100] (per value, the sites with the most extreme means left out of the combined statistics; 0 = exact pooled statistics)',
      z.number().int().min(0).max(100),
      { flag: { name: 'normalization-trim', arg: 'N', help: 'robust normalisation: per value, N sites with the most extreme means left out' } },
    ).default(0),
    inputRange: rule(
      'inputRange',
      '[low, high], two finite numbers with low < high (the range every input value lies in; statistics outside it are refused)',
      z.tuple([z.number().finite(), z.number().finite()]).refine(([lo, hi]) => lo < hi),
      {
        flag: {
          name: 'input-range',
          arg: 'LO,HI',
          help: 'the range every input value lies in; sites whose statistics fall outside it are refused',
          read: flagText.numbers,
        },
      },
    ).optional(),
    // A tabular run: the columns every site's table has (docs/run-config.md#tables); absent for images.
    table: flagFor(
      'table',
      {
        name: 'table-schema',
        arg: 'FILE',
        help: "a tabular run's column schema: a JSON file {columns: [{name, type, role, missing?, categories?}], minCategoryRows?, scaling?}",
        read: (text) => tableSchemaFile(text),
      },
      z.strictObject({
        columns: rule(
          'table.columns',
          'a list of 1–4096 columns {name, type, role, missing?, categories?}, names unique, exactly one with role label',
          z
            .array(
              z.strictObject({
                name: rule('table.columns.name', 'a column name of 1–128 characters', z.string().min(1).max(128)),
                type: rule('table.columns.type', TABLE_COLUMN_TYPES.join(', ').replace(/, ([^,]*)$/, ' or $1'), z.enum(TABLE_COLUMN_TYPES)),
                role: rule('table.columns.role', TABLE_COLUMN_ROLES.join(', ').replace(/, ([^,]*)$/, ' or $1'), z.enum(TABLE_COLUMN_ROLES)).default(
                  'feature',
                ),
                missing: rule(
                  'table.columns.missing',
                  `${TABLE_MISSING_POLICIES.join(', ').replace(/, ([^,]*)$/, ' or $1')} (what a missing cell becomes)`,
                  z.enum(TABLE_MISSING_POLICIES),
                ).default('error'),
                categories: rule(
                  'table.columns.categories',
                  `an integer in [1, ${MAX_TABLE_CATEGORIES}] (a categorical column's vocabulary slots, besides "other")`,
                  z.number().int().min(1).max(MAX_TABLE_CATEGORIES),
                ).default(16),
              }),
            )
            .min(1)
            .max(MAX_TABLE_COLUMNS)
            .refine((cols) => cols.filter((c) => c.role === 'label').length === 1 && new Set(cols.map((c) => c.name)).size === cols.length),
        ),
        minCategoryRows: rule(
          'table.minCategoryRows',
          'an integer in [1, 1000000] (k: a site names a category only when at least k of its rows hold it)',
          z.number().int().min(1).max(1_000_000),
        ).default(5),
        scaling: rule(
          'table.scaling',
          `${TABLE_SCALINGS.join(', ').replace(/, ([^,]*)$/, ' or $1')} (numeric columns, from federated statistics)`,
          z.enum(TABLE_SCALINGS),
        ).default('standard'),
      }),
    ).optional(),
    trust: flagFor(
      'trust',
      {
        name: 'trust',
        arg: 'KV',
        help: 'the trust policy, e.g. normBound=4,maxAbsValue=1e6,weightCap=4 (0 turns a check off)',
        read: objectFlag('trust'),
      },
      z.strictObject({
        normBound: rule(
          'trust.normBound',
          "a number ≥ 0 (updates moving the model more than this × the round's median move are excluded; 0 = off)",
          z.number().min(0).finite(),
        ).default(DEFAULT_TRUST.normBound),
        maxAbsValue: rule(
          'trust.maxAbsValue',
          'a number ≥ 0 (updates holding a larger value are excluded; 0 = off)',
          z.number().min(0).finite(),
        ).default(DEFAULT_TRUST.maxAbsValue),
        weightCap: rule(
          'trust.weightCap',
          "a number ≥ 0 (sample weights capped at this × the round's median; 0 = off)",
          z.number().min(0).finite(),
        ).default(DEFAULT_TRUST.weightCap),
      }),
    ).prefault({}),
    augment: flagFor(
      'augment',
      {
        name: 'augment',
        arg: 'KV',
        help: 'seeded augmentation, e.g. copies=2,shift=0.1,rotation=10,flip=false',
        read: objectFlag('augment'),
      },
      z.strictObject({
        copies: rule(
          'augment.copies',
          'an integer in [0, 20] (augmented copies of each training image; 0 = off)',
          z.number().int().min(0).max(20),
        ).default(0),
        shift: rule('augment.shift', 'a number in [0, 0.5) (largest shift as a fraction of the side)', z.number().min(0).lt(0.5)).default(0),
        flip: rule('augment.flip', 'true or false (mirror left–right at random)', z.boolean()).default(false),
        rotation: rule('augment.rotation', 'a number of degrees in [0, 180]', z.number().min(0).max(180)).default(0),
      }),
    ).prefault({}),
    fineTuning: flagFor(
      'fineTuning',
      {
        name: 'fine-tuning',
        arg: 'SPEC',
        help: `${FINE_TUNING_MODES.join(' | ')}, then key=value options, e.g. partial,layers=1,backboneLrFactor=0.1`,
        read: objectFlag('fine-tuning', 'mode'),
      },
      z.strictObject({
        mode: rule('fineTuning.mode', FINE_TUNING_MODES.join(', ').replace(/, ([^,]*)$/, ' or $1'), z.enum(FINE_TUNING_MODES)).default(
          DEFAULT_FINE_TUNING.mode,
        ),
        layers: rule(
          'fineTuning.layers',
          'a positive integer (backbone layers with weights to unfreeze, counted down from the cut)',
          z.number().int().positive().max(1000),
          { capped: true },
        ).default(DEFAULT_FINE_TUNING.layers),
        everyRounds: posInt('fineTuning.everyRounds', L.rounds).default(DEFAULT_FINE_TUNING.everyRounds),
        backboneLrFactor: rule('fineTuning.backboneLrFactor', 'a number ≥ 0', z.number().min(0).finite()).default(
          DEFAULT_FINE_TUNING.backboneLrFactor,
        ),
      }),
    ).prefault({}),
    headInit: rule('headInit', HEAD_INIT_RULE, z.enum(HEAD_INITS), {
      flag: {
        name: 'head-init',
        arg: 'H',
        help: `${HEAD_INITS.join(' | ')} (class-means and discriminant need --hidden ""; auto is discriminant where the run allows it, else random)`,
        read: flagText.word,
      },
    }).default('auto'),
    privacy: flagFor(
      'privacy',
      {
        name: 'dp',
        arg: 'SPEC',
        help: 'differential privacy: none | record | client, then key=value options, e.g. record,noiseMultiplier=1.1,clipNorm=1 or client,noiseMultiplier=1,clipNorm=0.5,targetEpsilon=3 (adaptiveClipping in a config file)',
        // `none` starts from nothing, so a config file's σ and C do not linger to be refused.
        read: (text, current) => objectFlag('dp', 'mode')(text, keyValues(text, 'dp').head === 'none' ? {} : current),
      },
      z.strictObject({
        mode: rule(
          'privacy.mode',
          'none, record or client (record: every site trains with DP-SGD and reports its ε; client: DP-FedAvg, each site’s change clipped and the round’s mean noised)',
          z.enum(PRIVACY_MODES),
        ).default('none'),
        noiseMultiplier: rule(
          'privacy.noiseMultiplier',
          "a number > 0 (σ: the noise's standard deviation as a multiple of clipNorm)",
          z.number().positive().max(MAX_NOISE_MULTIPLIER),
          { capped: true },
        ).optional(),
        clipNorm: rule(
          'privacy.clipNorm',
          "a number > 0 (C: each example's gradient is clipped to this L2 norm)",
          z.number().positive().finite(),
        ).optional(),
        sampling: rule(
          'privacy.sampling',
          'poisson or shuffle (how each DP-SGD step draws its examples; the ε reported is the Poisson analysis)',
          z.enum(DP_SAMPLINGS),
        ).default('poisson'),
        delta: rule('privacy.delta', 'a number in (0, 1) (the δ each site reports its ε at)', z.number().gt(0).lt(1)).default(DEFAULT_DP_DELTA),
        noise: rule(
          'privacy.noise',
          'central or local (client-level DP: the coordinator noises the round’s sum, or each site its own clipped change; default central)',
          z.enum(CLIENT_DP_NOISES),
        ).optional(),
        adaptiveClipping: z
          .strictObject({
            targetQuantile: rule(
              'privacy.adaptiveClipping.targetQuantile',
              'a number in (0, 1) (γ: the share of sites whose change should fall within S, e.g. 0.5)',
              z.number().gt(0).lt(1),
            ),
            learningRate: rule(
              'privacy.adaptiveClipping.learningRate',
              'a number > 0 (η_C: how fast S moves, e.g. 0.2)',
              z.number().positive().max(10),
            ),
            countNoiseMultiplier: rule(
              'privacy.adaptiveClipping.countNoiseMultiplier',
              'a number > 0 (σ_b: the noise on the count of unclipped sites)',
              z.number().positive().max(MAX_NOISE_MULTIPLIER),
              { capped: true },
            ),
          })
          .optional(),
        targetEpsilon: rule(
          'privacy.targetEpsilon',
          'a number > 0, the ε at privacy.delta the run may spend (record: each site sets its own σ so that every round of the run, and personalisation, spends at most this on its records; client: the run stops before a round that would take its ε past this)',
          z.number().positive().finite(),
        ).optional(),
      }),
    ).prefault({}),
    secureAggregation: flagFor(
      'secureAggregation',
      {
        name: 'secure-aggregation',
        arg: 'SPEC',
        help: 'secure aggregation (the coordinator sees only the sum of the updates): on | off, then key=value options, e.g. on,clipRange=0.5,threshold=7,neighbours=10',
        read: (text, current) => {
          const { head, values } = keyValues(text, 'secure-aggregation');
          if (head !== undefined && head !== 'on' && head !== 'off') {
            throw new FtlError(ErrorCode.InvalidConfig, `--secure-aggregation starts with on or off (got "${head}")`);
          }
          return { ...(current as object), ...(head !== undefined ? { enabled: head === 'on' } : {}), ...values };
        },
      },
      z.strictObject({
        enabled: rule('secureAggregation.enabled', 'true or false', z.boolean()).default(false),
        clipRange: rule(
          'secureAggregation.clipRange',
          "a number > 0 (R: every value of a site's change to the global model is clipped to ±R before it is quantised)",
          z.number().positive().finite(),
        ).default(1),
        threshold: rule(
          'secureAggregation.threshold',
          "an integer ≥ 2 (t: how many of the sites holding a site's secret shares must answer for its masks to be removed; default ⌈2m/3⌉ of its m holders)",
          z.number().int().min(2).max(L.clients),
          { capped: true },
        ).optional(),
        neighbours: rule(
          'secureAggregation.neighbours',
          'an integer ≥ 2 (SecAgg+: each site shares keys and masks with this many others on a random regular graph; default: every other site)',
          z.number().int().min(2).max(L.clients),
          { capped: true },
        ).optional(),
        rounding: rule(
          'secureAggregation.rounding',
          'stochastic or nearest (how a scaled value is rounded to an integer; stochastic is unbiased)',
          z.enum(SECAGG_ROUNDINGS),
        ).default('stochastic'),
      }),
    ).prefault({}),
  })
  .superRefine((run, ctx) => {
    const problem = headInitProblem(run.headInit, run.hidden, run.fineTuning.mode);
    // Its own message: the rule text alone would not say which other field is in the way.
    if (problem) ctx.addIssue({ code: 'custom', path: ['headInit'], message: problem, params: { ownMessage: true } });
    for (const { path, message } of privacyProblems(run)) {
      ctx.addIssue({ code: 'custom', path: path.split('.'), message, params: { ownMessage: true } });
    }
    for (const { path, message } of secureAggregationProblems(run)) {
      ctx.addIssue({ code: 'custom', path: path.split('.'), message, params: { ownMessage: true } });
    }
  });

/** A validated run configuration with defaults filled in (strategy options validated and completed too). */
export type RunConfig = Omit<z.infer<typeof RunConfigSchema>, 'strategy'> & { strategy: StrategyConfig };

/** A refused value for a message: the body may be large, the message stays one short line. */
function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  const json = JSON.stringify(value) ?? String(value);
  return json.length > 100 ? `${json.slice(0, 100)}… (${json.length} characters)` : json;
}

function at(value: unknown, path: PropertyKey[]): unknown {
  return path.reduce<unknown>((v, k) => (v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined), value);
}

/**
 * Validates a run configuration (a parsed JSON document). Unknown fields are refused, so a typo does
 * not silently fall back to a default.
 *
 * @throws FtlError(INVALID_CONFIG) listing every problem, e.g. `rounds must be a positive integer (got -1)`.
 */
export function parseRunConfig(input: unknown, where = 'run config', label: (path: string) => string = (path) => path): RunConfig {
  const result = RunConfigSchema.safeParse(withSecureAggregationDefaults(input));
  if (!result.success) {
    const problems = result.error.issues.map((issue) => described(issue, input, label));
    throw new FtlError(ErrorCode.InvalidConfig, `${where}: ${problems.join('; ')}`);
  }
  const { strategy, ...rest } = result.data;
  const optionsText = Object.entries(strategy.options)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return { ...rest, strategy: parseStrategy(strategy.name, optionsText) };
}

/** One schema issue as the field's rule says it, e.g. `rounds must be a positive integer (got -1)`; `label` names the field. */
function described(issue: z.core.$ZodIssue, input: unknown, label: (path: string) => string): string {
  if (issue.code === 'unrecognized_keys') {
    return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => label([...issue.path, k].join('.'))).join(', ')} (see docs/run-config.md)`;
  }
  const path = issue.path.filter((p) => typeof p === 'string').join('.');
  if (issue.code === 'custom' && issue.params?.['ownMessage'] === true) return `${label(path)}: ${issue.message}`;
  const got = show(at(input, issue.path));
  if (issue.code === 'too_big' && (capped.has(path) || !rules.has(path))) {
    const subject = typeof issue.path.at(-1) === 'number' ? `each entry of ${label(path)}` : label(path);
    const limit =
      issue.origin === 'array'
        ? `have at most ${issue.maximum} entries`
        : issue.origin === 'string'
          ? `have at most ${issue.maximum} characters`
          : `be ≤ ${issue.maximum}`;
    return `${subject} must ${limit} (got ${got})`;
  }
  if (!rules.has(path)) {
    // A value inside a field with a rule (an entry of schedule.epochs): the field's rule, and its whole value.
    const strings = issue.path.filter((p) => typeof p === 'string');
    for (let n = strings.length - 1; n > 0; n--) {
      const parent = strings.slice(0, n).join('.');
      if (rules.has(parent)) return `${label(parent)} must be ${rules.get(parent)} (got ${show(at(input, parent.split('.')))})`;
    }
  }
  return `${path ? label(path) : 'the config'} must be ${rules.get(path) ?? issue.message} (got ${got})`;
}

/** The run config fields that have a command-line flag, in the schema's order (a field's flag before its parts'). */
export function runConfigFlags(): readonly RunFlag[] {
  const top = Object.keys(RunConfigSchema.shape);
  const rank = (f: RunFlag) => [top.indexOf(f.path.split('.')[0]!), f.path.split('.').length] as const;
  return [...flags].sort((a, b) => rank(a)[0] - rank(b)[0] || rank(a)[1] - rank(b)[1]);
}

/** How a field is named in a message about a command line: `--lr (fit.learningRate)`, or the path of a field without a flag. */
function flagLabel(path: string): string {
  const flag = flags.find((f) => f.path === path || f.alsoPaths?.includes(path)) ?? runConfigFlags().find((f) => path.startsWith(`${f.path}.`));
  return flag ? `--${flag.name} (${path})` : path;
}

/**
 * The run config a command line gives: `base` (a config file's, or the defaults) with every flag of
 * {@link runConfigFlags} that `values` holds written over its field, validated by the same schema as a
 * file, so a flag has the file's bounds and messages (`--rounds (rounds) must be a positive integer (got -1)`).
 */
export function runConfigFromFlags(values: Record<string, unknown>, base: RunConfig): RunConfig {
  const doc = structuredClone(base) as Record<string, unknown>;
  const set = (path: string, value: unknown) => {
    const keys = path.split('.');
    let o = doc;
    for (const k of keys.slice(0, -1)) o = (o[k] ??= {}) as Record<string, unknown>;
    o[keys.at(-1)!] = value;
  };
  for (const flag of runConfigFlags()) {
    const text = values[flag.name];
    if (text === undefined) continue;
    if (typeof text !== 'string') throw new FtlError(ErrorCode.InvalidConfig, `--${flag.name} needs a value`);
    set(flag.path, flag.read(text, at(doc, flag.path.split('.'))));
    for (const [path, value] of Object.entries(flag.also?.(text) ?? {})) set(path, value);
  }
  // The base holds the trust screens' defaults as values; --secure-aggregation without --trust gets what a
  // file turning it on gets: those screens off (withSecureAggregationDefaults), unless the base changed them.
  const trust = doc['trust'] as Record<string, unknown> | undefined;
  if (values['secure-aggregation'] !== undefined && values['trust'] === undefined && trust) {
    for (const key of ['normBound', 'maxAbsValue'] as const) if (trust[key] === DEFAULT_TRUST[key]) delete trust[key];
  }
  return parseRunConfig(doc, 'command line', flagLabel);
}

/** Help lines of the run config flags: `--name ARG  what it sets (default …)`, defaults from the schema. */
export function runConfigHelp(): string {
  const defaults = parseRunConfig({});
  const shown = (v: unknown) =>
    v === undefined ? undefined : Array.isArray(v) ? (v.length ? v.join(',') : 'none') : typeof v === 'object' ? undefined : String(v);
  return runConfigFlags()
    .map((f) => {
      const d = f.name === 'strategy' ? defaults.strategy.name : shown(at(defaults, f.path.split('.')));
      const head = `  --${f.name} ${f.arg}`;
      return `${head.padEnd(25)}${head.length >= 25 ? ' ' : ''}${f.help}${d !== undefined ? ` (default ${d})` : ''}`;
    })
    .join('\n');
}

/** Reads and validates a run configuration file (JSON). */
export function readRunConfigFile(path: string): RunConfig {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new FtlError(ErrorCode.InvalidConfig, `cannot read run config ${path}: ${(err as Error).message}`, { cause: err });
  }
  return parseRunConfig(json, path);
}
