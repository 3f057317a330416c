import { readFileSync } from 'node:fs';
import { z } from 'zod';
import {
  DEFAULT_FINE_TUNING, DEFAULT_HIDDEN, ErrorCode, FINE_TUNING_MODES, FtlError, parseStrategy, STRATEGY_OPTIONS, type StrategyConfig,
} from '@ftl/shared';
import { DEFAULT_TRUST } from './update-screen.js';

// What each field must be, by path, for messages like `rounds must be a positive integer (got -1)`.
const rules = new Map<string, string>();
// Fields whose upper bound is not in their text: above it they read `rounds must be ≤ 100000 (got …)`.
const capped = new Set<string>();
function rule<T extends z.ZodType>(path: string, text: string, schema: T, options: { capped?: boolean } = {}): T {
  rules.set(path, text);
  if (options.capped) capped.add(path);
  return schema;
}
const posInt = (path: string, max: number) => rule(path, 'a positive integer', z.number().int().positive().max(max), { capped: true });
const nonNegInt = (path: string, max: number) => rule(path, 'an integer ≥ 0', z.number().int().min(0).max(max), { capped: true });
const posNum = (path: string) => rule(path, 'a number > 0', z.number().positive().finite());

/**
 * How a run's head starts: `random` (seeded); `class-means` — before round 1 the sites send per-class
 * sums and counts of their training features and the coordinator sets the head to the nearest-class-mean
 * classifier (FedNCM); `discriminant` — the same sums plus each site's within-class scatter, which give the
 * pooled shrinkage linear discriminant (LDA) exactly as if the features were pooled.
 */
export const HEAD_INITS = ['random', 'class-means', 'discriminant'] as const;
export type HeadInit = (typeof HEAD_INITS)[number];

/** Largest feature vector a discriminant head takes: each site sends featureDim² values once. */
export const MAX_DISCRIMINANT_FEATURES = 2048;

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

const HEAD_INIT_RULE = 'random, class-means (the nearest-class-mean head from the sites\' per-class feature sums) or discriminant (the pooled shrinkage LDA head from the sums and each site\'s within-class scatter); the last two need a linear head, hidden []';

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
 * boundary. Every field has a default that runs the embedded demo; docs/run-config.md lists them.
 */
export const RunConfigSchema = z.strictObject({
  runId: rule('runId', '1–64 letters, digits, ".", "_" or "-", starting with a letter or digit', z.string().regex(RUN_ID_PATTERN)).optional(),
  rounds: posInt('rounds', L.rounds).default(5),
  minClients: posInt('minClients', L.clients).default(2),
  waitTimeoutSeconds: rule('waitTimeoutSeconds', 'a number ≥ 0', z.number().min(0).max(L.waitTimeoutSeconds), { capped: true }).default(120),
  fractionFit: rule('fractionFit', 'a number in (0, 1]', z.number().positive().max(1)).default(1),
  minFitClients: posInt('minFitClients', L.clients).default(1),
  roundDeadlineSeconds: rule('roundDeadlineSeconds', 'a number > 0', z.number().positive().max(L.roundDeadlineSeconds), { capped: true }).default(60),
  quorumRetries: nonNegInt('quorumRetries', 1000).default(2),
  fit: z.strictObject({
    epochs: posInt('fit.epochs', L.epochs).default(5),
    batchSize: posInt('fit.batchSize', L.batchSize).default(32),
    learningRate: posNum('fit.learningRate').default(0.001),
  }).prefault({}),
  schedule: z.strictObject({
    lrDecay: rule('schedule.lrDecay', 'a number in (0, 1]', z.number().positive().max(1)).default(1),
    epochs: rule('schedule.epochs', 'a list of {fromRound, epochs} with increasing fromRound, both positive integers',
      z.array(z.strictObject({ fromRound: z.number().int().positive().max(L.rounds), epochs: z.number().int().positive().max(L.epochs) })).max(L.rounds)
        .refine((a) => a.every((s, i) => i === 0 || s.fromRound > a[i - 1]!.fromRound)), { capped: true }).default([]),
  }).prefault({}),
  seed: nonNegInt('seed', L.seed).default(1),
  l2: rule('l2', 'a number ≥ 0', z.number().min(0).finite()).default(0),
  dropout: rule('dropout', 'a number in [0, 1)', z.number().min(0).lt(1)).default(0),
  patience: rule('patience', 'an integer ≥ 0 (rounds without a better federated validation loss or accuracy before stopping; 0 = off)', z.number().int().min(0).max(L.rounds), { capped: true }).default(0),
  patienceMetric: rule('patienceMetric', 'loss or accuracy (the median of the sites\' validation losses, lower is better, or of their accuracies, higher is better)',
    z.enum(['loss', 'accuracy'])).default('loss'),
  hidden: rule('hidden', 'a list of positive integers (hidden layer sizes)',
    z.array(z.number().int().positive().max(L.hiddenUnits)).max(L.hiddenLayers), { capped: true }).default([...DEFAULT_HIDDEN]),
  classes: rule('classes', 'a list of at least two distinct non-empty labels',
    z.array(z.string().min(1).max(L.names)).min(2).max(L.classes).refine((c) => new Set(c).size === c.length), { capped: true }).default(DIGITS),
  strategy: z.strictObject({
    name: rule('strategy.name', `one of ${Object.keys(STRATEGY_OPTIONS).join(', ')}`, z.enum(Object.keys(STRATEGY_OPTIONS) as [string, ...string[]])),
    options: rule('strategy.options', 'an object of numbers', z.record(z.string(), z.number())).default({}),
  }).prefault({ name: 'fedavg' }),
  localLayers: rule('localLayers', 'a list of head layer names', z.array(z.string().min(1).max(L.names)).max(2 * L.hiddenLayers + 1), { capped: true }).default([]),
  personalizeEpochs: nonNegInt('personalizeEpochs', L.epochs).default(0),
  maxExamplesPerClient: posInt('maxExamplesPerClient', Number.MAX_SAFE_INTEGER).default(1_000_000),
  sampleWeightCap: posNum('sampleWeightCap').default(1_000_000),
  featureLayer: rule('featureLayer', 'a layer name', z.string().min(1).max(L.names), { capped: true }).optional(),
  normalization: rule('normalization', 'none, standard or min-max (federated per-channel statistics)', z.enum(['none', 'standard', 'min-max'])).default('none'),
  normalizationScope: rule('normalizationScope', 'channel (one statistic per image channel) or feature (one per value, for tabular CSV columns)',
    z.enum(['channel', 'feature'])).default('channel'),
  normalizationTrim: rule('normalizationTrim', 'an integer in [0, 100] (per value, the sites with the most extreme means left out of the combined statistics; 0 = exact pooled statistics)',
    z.number().int().min(0).max(100)).default(0),
  inputRange: rule('inputRange', '[low, high], two finite numbers with low < high (the range every input value lies in; statistics outside it are refused)',
    z.tuple([z.number().finite(), z.number().finite()]).refine(([lo, hi]) => lo < hi)).optional(),
  trust: z.strictObject({
    normBound: rule('trust.normBound', 'a number ≥ 0 (updates moving the model more than this × the round\'s median move are excluded; 0 = off)',
      z.number().min(0).finite()).default(DEFAULT_TRUST.normBound),
    maxAbsValue: rule('trust.maxAbsValue', 'a number ≥ 0 (updates holding a larger value are excluded; 0 = off)', z.number().min(0).finite()).default(DEFAULT_TRUST.maxAbsValue),
    weightCap: rule('trust.weightCap', 'a number ≥ 0 (sample weights capped at this × the round\'s median; 0 = off)', z.number().min(0).finite()).default(DEFAULT_TRUST.weightCap),
  }).prefault({}),
  augment: z.strictObject({
    copies: rule('augment.copies', 'an integer in [0, 20] (augmented copies of each training image; 0 = off)', z.number().int().min(0).max(20)).default(0),
    shift: rule('augment.shift', 'a number in [0, 0.5) (largest shift as a fraction of the side)', z.number().min(0).lt(0.5)).default(0),
    flip: rule('augment.flip', 'true or false (mirror left–right at random)', z.boolean()).default(false),
    rotation: rule('augment.rotation', 'a number of degrees in [0, 180]', z.number().min(0).max(180)).default(0),
  }).prefault({}),
  fineTuning: z.strictObject({
    mode: rule('fineTuning.mode', FINE_TUNING_MODES.join(', ').replace(/, ([^,]*)$/, ' or $1'), z.enum(FINE_TUNING_MODES)).default(DEFAULT_FINE_TUNING.mode),
    layers: rule('fineTuning.layers', 'a positive integer (backbone layers with weights to unfreeze, counted down from the cut)',
      z.number().int().positive().max(1000), { capped: true }).default(DEFAULT_FINE_TUNING.layers),
    everyRounds: posInt('fineTuning.everyRounds', L.rounds).default(DEFAULT_FINE_TUNING.everyRounds),
    backboneLrFactor: rule('fineTuning.backboneLrFactor', 'a number ≥ 0', z.number().min(0).finite()).default(DEFAULT_FINE_TUNING.backboneLrFactor),
  }).prefault({}),
  headInit: rule('headInit', HEAD_INIT_RULE, z.enum(HEAD_INITS)).default('random'),
}).superRefine((run, ctx) => {
  const problem = headInitProblem(run.headInit, run.hidden, run.fineTuning.mode);
  // Its own message: the rule text alone would not say which other field is in the way.
  if (problem) ctx.addIssue({ code: 'custom', path: ['headInit'], message: problem, params: { ownMessage: true } });
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
export function parseRunConfig(input: unknown, where = 'run config'): RunConfig {
  const result = RunConfigSchema.safeParse(input);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      if (issue.code === 'unrecognized_keys') {
        return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => [...issue.path, k].join('.')).join(', ')} (see docs/run-config.md)`;
      }
      const path = issue.path.filter((p) => typeof p === 'string').join('.');
      if (issue.code === 'custom' && issue.params?.['ownMessage'] === true) return `${path}: ${issue.message}`;
      const got = show(at(input, issue.path));
      if (issue.code === 'too_big' && (capped.has(path) || !rules.has(path))) {
        const subject = typeof issue.path.at(-1) === 'number' ? `each entry of ${path}` : path;
        const limit = issue.origin === 'array' ? `have at most ${issue.maximum} entries`
          : issue.origin === 'string' ? `have at most ${issue.maximum} characters` : `be ≤ ${issue.maximum}`;
        return `${subject} must ${limit} (got ${got})`;
      }
      return `${path || 'the config'} must be ${rules.get(path) ?? issue.message} (got ${got})`;
    });
    throw new FtlError(ErrorCode.InvalidConfig, `${where}: ${problems.join('; ')}`);
  }
  const { strategy, ...rest } = result.data;
  const optionsText = Object.entries(strategy.options).map(([k, v]) => `${k}=${v}`).join(',');
  return { ...rest, strategy: parseStrategy(strategy.name, optionsText) };
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
