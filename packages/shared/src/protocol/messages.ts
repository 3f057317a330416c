import { z } from 'zod';
import { specsSize, type EncodedWeights, type WeightSpec } from '../codec/weights.js';
import { ErrorCode } from '../errors.js';
import { between, binary, claimedCount, finite, flag, integer, integerIn, list, nonNegative, oneOf, positive, record, text } from './fields.js';
import { CLIENT_DP_NOISES } from '../privacy/client-dp.js';
import { DeltaSchema } from '../privacy/params.js';
import {
  ADVERTISE_KEYS_FIELDS,
  KEY_DIRECTORY_FIELDS,
  MASKED_INPUT_FIELDS,
  SECAGG_SETUP_FIELDS,
  SHARES_IN_FIELDS,
  SHARES_OUT_FIELDS,
  UNMASK_REQUEST_FIELDS,
  UNMASK_SHARES_FIELDS,
} from '../secagg/phase-messages.js';
import { statsInconsistency } from './stats-consistency.js';
import { describe, type IssueParams } from './validate.js';

// Every message of the protocol, as a zod schema: its TypeScript type is inferred from it and its
// validator (`parse*` in parse.ts) runs it, so a message is defined here and nowhere else. Unknown
// fields are dropped; every refusal names the field, what it must be and what it was.

/** Bumped on any incompatible change to a message below. Both sides refuse another version. */
export const PROTOCOL_VERSION = 1;

// Another version is PROTOCOL_MISMATCH (`protocol-mismatch`), whatever else is wrong with the message.
const protocol = z.custom<number>((v) => v === PROTOCOL_VERSION, {
  error: (issue) => `is ${describe(issue.input)} but this side speaks protocol ${PROTOCOL_VERSION}; run the same ftl version on both sides`,
  params: { code: ErrorCode.ProtocolMismatch, sentence: true } satisfies IssueParams,
});

const envelope = {
  protocol,
  runId: text(),
  round: integer(),
  /** The global model version the message refers to (0 = the initial head, +1 per aggregation). */
  modelVersion: integer(),
};

/** What every run-scoped message carries: who it is for and which global model it was built on. */
export const EnvelopeSchema = record(envelope);
export type Envelope = z.infer<typeof EnvelopeSchema>;

// Bounds that keep a hostile message from costing more than its bytes.
const MAX_TENSORS = 4096;
const MAX_RANK = 8;
// Per-feature statistics of a tabular row or an image: one value per position.
const MAX_CHANNELS = 1 << 20;
// As many classes as a run may have (welcome.classes).
const MAX_CLASSES = 10_000;
const MAX_MESSAGE_TEXT = 2000;

const WeightSpecSchema: z.ZodType<WeightSpec> = record({
  name: text(),
  shape: list(integer(), MAX_RANK),
  dtype: z.literal('float32', { error: '"float32"' }),
});
const weightSpecs = list(WeightSpecSchema, MAX_TENSORS);

/**
 * Wire weights whose specs pass `specs`: the data is binary, never read value by value here, and holds
 * exactly 4 bytes per value the specs describe (else WEIGHTS_MISMATCH, `wrong-shape`).
 */
function encodedWeights(specs: z.ZodType<WeightSpec[]> = weightSpecs): z.ZodType<EncodedWeights> {
  return record({ specs, data: binary() }).superRefine((w, ctx) => {
    const bytes = specsSize(w.specs) * 4;
    if (w.data.byteLength === bytes) return;
    const params: IssueParams = { code: ErrorCode.WeightsMismatch };
    ctx.addIssue({
      code: 'custom',
      continue: false,
      path: ['data'],
      input: w.data,
      params,
      message: `${bytes} bytes, 4 per float32 value its specs describe`,
    });
  });
}

/** Weights as they travel ({@link EncodedWeights}): specs and float32 values as raw little-endian bytes. */
export const EncodedWeightsSchema = encodedWeights();

const SITE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
// Names that are object machinery: a registry keyed by site name must never meet them.
const RESERVED_SITE_NAMES = new Set(['constructor', 'prototype']);

/**
 * A site (client) name: 1–128 letters, digits, `.`, `_` or `-`, starting with a letter or digit (which
 * rules out `.`, `..` and `__proto__`), and not `constructor` or `prototype`.
 */
export const SiteNameSchema = z
  .string({ error: '1–128 letters, digits, ".", "_" or "-" starting with a letter or digit, and not "constructor" or "prototype"' })
  .refine((name) => SITE_NAME.test(name) && !RESERVED_SITE_NAMES.has(name), { abort: true });

/** Sent by the client in the socket.io handshake (`auth`). */
export const HandshakeAuthSchema = record({
  protocol,
  /**
   * The client's stable name; a second connection with the same name replaces the first
   * ({@link SiteNameSchema}, `checkSiteName`).
   */
  name: SiteNameSchema,
  /** The secret the operator issued for this name (required when the coordinator runs with auth). */
  token: text(256).optional(),
});
export type HandshakeAuth = z.infer<typeof HandshakeAuthSchema>;

/** Where and what the backbone is; the files travel over plain HTTP, never over socket.io. */
export const BackboneInfoSchema = record({
  /** Path on the coordinator's HTTP server under which the files are served, e.g. `/backbone`. */
  path: text(),
  /** File names to fetch: `model.json` and its weight shards. */
  files: list(text(), 1024),
  /** {@link modelDigest} of those files. */
  sha256: z.string({ error: 'a hex SHA-256 digest' }).regex(/^[0-9a-f]{64}$/, { abort: true }),
  /** Layer whose flattened output is the feature vector. */
  featureLayer: text(),
});
export type BackboneInfo = z.infer<typeof BackboneInfoSchema>;

/** The shape of the trainable head on top of the backbone's features. */
export const HeadConfigSchema = record({
  featureDim: integer(1),
  /** Hidden dense layer sizes (ReLU); empty for a linear head. */
  hidden: list(integer(1), 16),
  classes: integer(2),
  /** L2 penalty on the dense kernels (0 or absent: none). */
  l2: nonNegative().optional(),
  /** Dropout rate after each hidden layer during training, in [0, 1) (0 or absent: none). */
  dropout: between(0, 1, { open: true }).optional(),
});
export type HeadConfig = z.infer<typeof HeadConfigSchema>;

/** Seeded augmentation of a run (see {@link Welcome.augment}). */
export const AugmentConfigSchema = record({
  copies: integerIn(0, 20),
  /** Largest shift as a fraction of the side, [0, 0.5). */
  shift: between(0, 0.5, { open: true }),
  flip: flag(),
  /** Largest rotation in degrees, [0, 180]. */
  rotation: between(0, 180),
});
export type AugmentConfig = z.infer<typeof AugmentConfigSchema>;

const normalizationKind = oneOf(['standard', 'min-max'], 'standard or min-max');
const channelValues = list(finite(), MAX_CHANNELS);
const sameLength = (n: number) => `${n} values, one per channel`;

/**
 * What one client shares for federated normalisation: per-channel sums, sums of squares, minima, maxima
 * and the value count behind them. Never the values themselves. Well-formed but impossible statistics
 * are DATASET (`bad-statistics`), not malformed.
 */
export const ChannelStatsSchema = record({
  count: integer(1),
  sum: channelValues,
  sumSquares: channelValues,
  min: channelValues,
  max: channelValues,
}).superRefine((s, ctx) => {
  const c = s.sum.length;
  if (c === 0) return ctx.addIssue({ code: 'custom', continue: false, path: ['sum'], input: s.sum, message: 'one value per channel' });
  for (const key of ['sumSquares', 'min', 'max'] as const) {
    if (s[key].length !== c) return ctx.addIssue({ code: 'custom', continue: false, path: [key], input: s[key], message: sameLength(c) });
  }
  const why = statsInconsistency(s);
  const params: IssueParams = { code: ErrorCode.Dataset, sentence: true };
  if (why) ctx.addIssue({ code: 'custom', continue: false, params, message: `are inconsistent: ${why}; send the statistics channelStats computes` });
});
export type ChannelStats = z.infer<typeof ChannelStatsSchema>;

/** Per-channel normalisation the coordinator sends back: `(x − shift) / scale`. */
export const NormalizationSchema = record({
  kind: normalizationKind,
  shift: channelValues,
  scale: list(finite().gt(0, { error: 'a number > 0', abort: true }), MAX_CHANNELS),
}).superRefine((n, ctx) => {
  if (n.shift.length === 0)
    return ctx.addIssue({ code: 'custom', continue: false, path: ['shift'], input: n.shift, message: 'one value per channel' });
  if (n.scale.length !== n.shift.length)
    ctx.addIssue({ code: 'custom', continue: false, path: ['scale'], input: n.scale, message: sameLength(n.shift.length) });
});
export type Normalization = z.infer<typeof NormalizationSchema>;

// ---- Tabular data: the run's column schema, a site's summary of its table, the encoding the run fixes ----

/** A table column's type: numbers, names from a vocabulary, true/false, or a date (read as days since 1970-01-01). */
export const TABLE_COLUMN_TYPES = ['numeric', 'categorical', 'boolean', 'date'] as const;
/** What a column is for: a model input, the label the model predicts, or neither (present but not read). */
export const TABLE_COLUMN_ROLES = ['feature', 'label', 'ignore'] as const;
/**
 * What a missing (empty) cell of a feature column becomes: `error` (the site stops, naming the line and
 * column), `impute` (the federated mean of a numeric, boolean or date column; the federated mode of a
 * categorical one) or `indicator` (imputed as for `impute`, plus a 0/1 column saying it was missing; a
 * categorical column gets a "missing" slot instead).
 */
export const TABLE_MISSING_POLICIES = ['error', 'impute', 'indicator'] as const;
/** How numeric, boolean and date columns are scaled, from federated statistics: z-scores, to [0, 1], or not at all. */
export const TABLE_SCALINGS = ['standard', 'min-max', 'none'] as const;
/** Columns a table may have. */
export const MAX_TABLE_COLUMNS = 4096;
/** Category slots a categorical column may have. */
export const MAX_TABLE_CATEGORIES = 1024;
const MAX_CATEGORY_NAME = 128;

/** One column of a run's table: its header name, type and role; for a feature, its missing-value policy and (categorical) slot count. */
export const TableColumnSchema = record({
  name: text(MAX_CATEGORY_NAME),
  type: oneOf(TABLE_COLUMN_TYPES, TABLE_COLUMN_TYPES.join(', ')),
  role: oneOf(TABLE_COLUMN_ROLES, TABLE_COLUMN_ROLES.join(', ')),
  missing: oneOf(TABLE_MISSING_POLICIES, TABLE_MISSING_POLICIES.join(', ')),
  /** Categorical features: vocabulary slots, besides the "other" slot every unseen or rare category maps to. */
  categories: integerIn(1, MAX_TABLE_CATEGORIES),
});
export type TableColumn = z.infer<typeof TableColumnSchema>;

/**
 * A run's table (run config `table`, sent in `welcome`): every column a site's CSV must have, by header
 * name, in any order; `minCategoryRows` is k, the fewest rows of a site that must hold a category for the
 * site to name it; `scaling` how numeric columns are scaled from the federated statistics.
 */
export const TableSpecSchema = record({
  columns: list(TableColumnSchema, MAX_TABLE_COLUMNS),
  minCategoryRows: integerIn(1, 1_000_000),
  scaling: oneOf(TABLE_SCALINGS, TABLE_SCALINGS.join(', ')),
}).superRefine((t, ctx) => {
  const labels = t.columns.filter((c) => c.role === 'label').length;
  if (labels !== 1)
    ctx.addIssue({ code: 'custom', path: ['columns'], input: t.columns, message: `exactly one column with role label (got ${labels})` });
  const names = new Set<string>();
  for (const c of t.columns) {
    if (names.has(c.name)) ctx.addIssue({ code: 'custom', path: ['columns'], input: c.name, message: `column names that differ (${c.name} twice)` });
    names.add(c.name);
  }
});
export type TableSpec = z.infer<typeof TableSpecSchema>;

/**
 * What a site says of one feature column of its training rows, in the run's column order: for a numeric,
 * boolean or date column, the count, sum, sum of squares and extremes of the values present (no value
 * itself); for a categorical one, the category names at least `minCategoryRows` of its rows hold (never
 * how many) and the most common of them (`mode`), if any.
 */
export const TableColumnSummarySchema = record({
  name: text(MAX_CATEGORY_NAME),
  count: integer().optional(),
  sum: finite().optional(),
  sumSquares: nonNegative().optional(),
  min: finite().optional(),
  max: finite().optional(),
  categories: list(text(MAX_CATEGORY_NAME), MAX_TABLE_CATEGORIES * 4).optional(),
  mode: text(MAX_CATEGORY_NAME).optional(),
});
export type TableColumnSummary = z.infer<typeof TableColumnSummarySchema>;

/** A site's summary of its training table ({@link TableColumnSummarySchema}), one entry per feature column. */
export const TableSummarySchema = record({ columns: list(TableColumnSummarySchema, MAX_TABLE_COLUMNS) });
export type TableSummary = z.infer<typeof TableSummarySchema>;

/**
 * How a run encodes one feature column, fixed once before round 1 from every site's summary: a numeric,
 * boolean or date column fills a missing cell with `fill` and scales to `(x − shift) / scale`; a
 * categorical one has its `vocabulary` (one slot each, then "other"; with the indicator policy a
 * "missing" slot last) and fills a missing cell with `fill` (the federated mode) under `impute`.
 */
export const TableColumnEncodingSchema = record({
  name: text(MAX_CATEGORY_NAME),
  fill: z.union([finite(), text(MAX_CATEGORY_NAME)], { error: 'a finite number or a category name' }).optional(),
  shift: finite().optional(),
  scale: positive().optional(),
  vocabulary: list(text(MAX_CATEGORY_NAME), MAX_TABLE_CATEGORIES).optional(),
});
export type TableColumnEncoding = z.infer<typeof TableColumnEncodingSchema>;

/** The encoding of a run's feature columns, in the run's column order (its vectors are what the backbone reads). */
export const TableEncodingSchema = record({ columns: list(TableColumnEncodingSchema, MAX_TABLE_COLUMNS) });
export type TableEncoding = z.infer<typeof TableEncodingSchema>;

/**
 * Server → client, once the run's table encoding is fixed (and to a site that becomes ready after): encode
 * the local table with it before any round.
 */
export const TableEncodingMessageSchema = record({
  protocol,
  runId: text(),
  encoding: TableEncodingSchema,
});
export type TableEncodingMessage = z.infer<typeof TableEncodingMessageSchema>;

/** Server → client, once per connection: the run the client is part of. */
export const WelcomeSchema = record({
  protocol,
  runId: text(),
  clientId: text(),
  backbone: BackboneInfoSchema,
  head: HeadConfigSchema,
  classes: list(text(), MAX_CLASSES),
  /** Head layers that never leave the client (personalization): not in any weights message. */
  localLayers: list(text(), 64),
  /**
   * Training-time augmentation: each client adds `copies` randomly shifted/flipped/rotated copies of its
   * training images (seeded per run and client) before features are extracted; validation is untouched.
   */
  augment: AugmentConfigSchema.optional(),
  /**
   * Federated normalisation: the client reports channel statistics (sums, sums of squares, min, max,
   * count; never values) with `ready`, and receives the combined normalisation with every round.
   */
  normalization: normalizationKind.optional(),
  /** `channel` (default): statistics per image channel; `feature`: per value position (tabular columns). */
  normalizationScope: oneOf(['channel', 'feature'], 'channel or feature').optional(),
  /**
   * Set when every round trains backbone layers too (`partial` fine-tuning): features at the cut would
   * never be used, so the client prepares features for the round's trainable set when the round comes.
   */
  backboneTrainsFromStart: flag().optional(),
  /** A tabular run: the columns a site's table must have; the site answers `ready` with its {@link TableSummary}. */
  table: TableSpecSchema.optional(),
});
export type Welcome = z.infer<typeof WelcomeSchema>;

/**
 * How record-level DP-SGD draws each step's examples: `poisson` (each example independently with
 * probability q, what the accountant's analysis covers) or `shuffle` (fixed-size batches of a shuffled
 * order, accounted as if Poisson).
 */
export const DP_SAMPLINGS = ['poisson', 'shuffle'] as const;

/**
 * The record-level DP mechanism a run asks every site to train with (DP-SGD): each example's gradient
 * clipped to L2 norm `clipNorm`, Gaussian noise of standard deviation `noiseMultiplier` × `clipNorm` on
 * every step's sum, examples drawn by `sampling`; `delta` is the δ at which each site reports its ε.
 * The noise's randomness is the site's own secret, never sent or derived from the round's seed.
 */
export const RecordPrivacySchema = record({
  /** σ > 0; absent when the site sets its own from `targetEpsilon`. */
  noiseMultiplier: positive().optional(),
  /**
   * Instead of one σ for every site: the ε at `delta` each site may spend on this run, over
   * `plannedEpochs` epochs of DP-SGD in all (every round's and personalisation's). A site sets the
   * smallest σ that keeps its own ε within it given its number of records, so a large site adds less
   * noise than a small one for the same guarantee.
   */
  targetEpsilon: positive().optional(),
  /** The epochs of DP-SGD the run may ask of a site, in all: what `targetEpsilon` is spread over. */
  plannedEpochs: integer(1).optional(),
  /** C > 0. */
  clipNorm: positive(),
  sampling: oneOf(DP_SAMPLINGS, 'poisson or shuffle'),
  /** δ in (0, 1). */
  delta: DeltaSchema,
});
export type RecordPrivacy = z.infer<typeof RecordPrivacySchema>;

/**
 * The privacy a site has spent on its training data so far, across rounds and runs (its accountant's
 * ledger): (ε, δ)-DP at the run's δ, and the site's own ε budget when it keeps one.
 */
export const PrivacyReportSchema = record({
  /** Finite and ≥ 0. */
  epsilon: nonNegative(),
  /** In (0, 1). */
  delta: DeltaSchema,
  /** The site's ε budget, finite and > 0 (absent: the site keeps none). */
  budget: positive().optional(),
});
export type PrivacyReport = z.infer<typeof PrivacyReportSchema>;

/**
 * The client-level DP settings of one round (DP-FedAvg, run config `privacy.mode: client`): the site
 * clips its change to the global model (trained − global, over every value it sends) to L2 norm
 * `clipNorm` (S, this round's: adaptive clipping moves it), and with `noise: local` adds N(0, (z·S)²) to
 * every value itself, z being `noiseMultiplier`; with `central` the coordinator adds the noise to the
 * round's sum. `reportUnclipped`: answer with b = [‖Δ‖ ≤ S] ({@link FitResult.clientPrivacy}) for
 * adaptive clipping. The site keeps no ledger for it: the coordinator accounts for the run.
 */
export const ClientPrivacySchema = record({
  /** S > 0. */
  clipNorm: positive(),
  noise: oneOf(CLIENT_DP_NOISES, 'central or local'),
  /** z > 0. */
  noiseMultiplier: positive(),
  reportUnclipped: flag().optional(),
});
export type ClientPrivacy = z.infer<typeof ClientPrivacySchema>;

/** What a site says of its clipping in a client-level DP round with adaptive clipping: whether its change was within S. */
export const ClientClipReportSchema = record({
  /** b = [‖Δ‖ ≤ S] before clipping. */
  unclipped: flag(),
});
export type ClientClipReport = z.infer<typeof ClientClipReportSchema>;

/** Local training settings for one round. */
export const FitConfigSchema = record({
  epochs: integer(1),
  batchSize: integer(1),
  learningRate: positive(),
  /** Seed for the client's shuffling this round. */
  seed: integer(),
  /** FedProx: add (μ/2)·‖w − w_global‖² to the local loss; absent or 0 for plain local training. */
  proximalMu: nonNegative().optional(),
  /**
   * Fine-tuning: backbone layers among the weights train at `learningRate` × this (≥ 0; 0 keeps them
   * fixed); absent means 1. Which layers train is not said here: it is the weights' own tensors.
   */
  backboneLrFactor: nonNegative().optional(),
  /**
   * Runs with record-level DP: train with DP-SGD under this mechanism, account for it and report the
   * privacy spent ({@link FitResult.privacy}); absent: plain training.
   */
  privacy: RecordPrivacySchema.optional(),
  /**
   * Runs with client-level DP: send the change clipped to S (and noised, with local noise) under these
   * settings; absent: send the trained weights as they are.
   */
  clientPrivacy: ClientPrivacySchema.optional(),
});
export type FitConfig = z.infer<typeof FitConfigSchema>;

/** The fields of an instruction to train from the global weights: every round's fit, and the final personalize. */
const trainFrom = {
  ...envelope,
  weights: EncodedWeightsSchema,
  config: FitConfigSchema,
  /** Runs with federated normalisation: how to normalise inputs before the backbone (fixed for the run). */
  normalization: NormalizationSchema.optional(),
};

/** How a site rounds its scaled change to ring integers in secure aggregation: stochastically (unbiased) or to the nearest. */
export const SECAGG_ROUNDINGS = ['stochastic', 'nearest'] as const;

/**
 * A round of secure aggregation as one site takes part in it (a fit instruction's `secureAggregation`):
 * its id in the round, its neighbours and the threshold t (SecAggSetup), and how it turns its update into
 * ring words: its change from the global weights, every value clipped to ±`clipRange`, times `weight`,
 * times `scale`, rounded by `rounding`. With client-level DP the change is clipped to the round's S first
 * and, with central noise, the site adds its share N(0, (z·S)²/t) of the round's noise to each value
 * (`config.clientPrivacy` has z and S). The site answers with `secagg-advertise` instead of a fit-result.
 */
export const SecAggInstructionSchema = record({
  ...SECAGG_SETUP_FIELDS,
  /** R > 0. */
  clipRange: positive(),
  /** Integers per unit, > 0. */
  scale: positive(),
  /** The site's aggregation weight (its capped sample count, or 1), > 0. */
  weight: positive(),
  rounding: oneOf(SECAGG_ROUNDINGS, 'stochastic or nearest'),
});
export type SecAggInstruction = z.infer<typeof SecAggInstructionSchema>;

/** Server → client: train the head from these weights (and, in a secure-aggregation run, take part in its phases). */
export const FitInstructionSchema = record({ ...trainFrom, secureAggregation: SecAggInstructionSchema.optional() });
export type FitInstruction = z.infer<typeof FitInstructionSchema>;

/** Server → client: evaluate these (global) weights on the local validation split. */
export const EvaluateInstructionSchema = record({
  ...envelope,
  weights: EncodedWeightsSchema,
  normalization: NormalizationSchema.optional(),
});
export type EvaluateInstruction = z.infer<typeof EvaluateInstructionSchema>;

/** Server → client, after the last round: fine-tune the final global head locally and report both accuracies. */
export const PersonalizeInstructionSchema = record(trainFrom);
export type PersonalizeInstruction = z.infer<typeof PersonalizeInstructionSchema>;

// Samples behind an update or a metric: a positive integer; any other number is `bad-sample-count`.
const sampleCount = claimedCount(1, 'report the number of samples used');
/** Finite and ≥ 0. */
const loss = nonNegative;
/** In [0, 1]. */
const accuracy = () => between(0, 1);

/** Client → server: validation metrics of the global head and of the client's fine-tuned copy. */
export const PersonalizeResultSchema = record({
  ...envelope,
  numExamples: sampleCount,
  globalLoss: loss(),
  globalAccuracy: accuracy(),
  personalLoss: loss(),
  personalAccuracy: accuracy(),
  /** Runs with record-level DP: the site's privacy spent, personalisation included. */
  privacy: PrivacyReportSchema.optional(),
});
export type PersonalizeResult = z.infer<typeof PersonalizeResultSchema>;

/** Why a run ended. */
export const RunEndReasonSchema = oneOf(['completed', 'stopped', 'failed'], 'completed, stopped or failed');
export type RunEndReason = z.infer<typeof RunEndReasonSchema>;

/** Server → client: the run is over; the client may disconnect. */
export const RunEndSchema = record({
  protocol,
  runId: text(),
  reason: RunEndReasonSchema,
  message: text(MAX_MESSAGE_TEXT).optional(),
});
export type RunEnd = z.infer<typeof RunEndSchema>;

/** Why the coordinator is closing a client's connection. */
export const GoodbyeReasonSchema = oneOf(['replaced', 'revoked', 'shutdown', 'misbehaving'], 'replaced, revoked, shutdown or misbehaving');
export type GoodbyeReason = z.infer<typeof GoodbyeReasonSchema>;

/**
 * Server → client, just before the coordinator closes this connection: `replaced` (the same name
 * connected again) and `revoked` (the operator revoked the token) are final; after `shutdown` the client
 * reconnects, since a restarted coordinator resumes its run.
 */
export const GoodbyeSchema = record({
  protocol,
  reason: GoodbyeReasonSchema,
  message: text(MAX_MESSAGE_TEXT),
});
export type Goodbye = z.infer<typeof GoodbyeSchema>;

/** Client → server: features are ready; the client can take rounds. */
export const ReadySchema = record({
  protocol,
  runId: text(),
  numTrain: sampleCount,
  numVal: integer(),
  /** The label names this client's data holds, in its own words (before mapping to the run's classes). */
  labels: list(text(), MAX_CLASSES).optional(),
  /** Channel statistics of the training images, when the run asked for federated normalisation. */
  stats: ChannelStatsSchema.optional(),
  /** A tabular run: the summary of this site's training table (category names, column statistics). */
  table: TableSummarySchema.optional(),
});
export type Ready = z.infer<typeof ReadySchema>;

/** Training metrics a client reports with its update. */
export const FitMetricsSchema = record({
  /** Finite and ≥ 0. */
  loss: loss(),
  /** In [0, 1]. */
  accuracy: accuracy(),
  /** Finite and ≥ 0. */
  seconds: nonNegative(),
});
export type FitMetrics = z.infer<typeof FitMetricsSchema>;

/** Client → server: the locally trained head. */
export const FitResultSchema = record({
  ...envelope,
  weights: EncodedWeightsSchema,
  /** Training samples behind the update: its weight in FedAvg. A positive integer. */
  numExamples: sampleCount,
  metrics: FitMetricsSchema,
  /**
   * Runs with record-level DP (`config.privacy` in the round's fit): the privacy the site has spent on its
   * training data so far, this round included.
   */
  privacy: PrivacyReportSchema.optional(),
  /** Runs with client-level DP and adaptive clipping (`config.clientPrivacy.reportUnclipped`): whether the change was within S. */
  clientPrivacy: ClientClipReportSchema.optional(),
});
export type FitResult = z.infer<typeof FitResultSchema>;

/** Client → server: metrics of the global head on the client's validation split. */
export const EvaluateResultSchema = record({
  ...envelope,
  /** Validation samples behind the metrics: a positive integer. */
  numExamples: sampleCount,
  /** Finite and ≥ 0. */
  loss: loss(),
  /** In [0, 1]. */
  accuracy: accuracy(),
});
export type EvaluateResult = z.infer<typeof EvaluateResultSchema>;

/**
 * Why a site would not do what it was asked, when the coordinator acts on the reason: `privacy-budget`,
 * the work would take the site's ε past its own budget (or release its data without record-level DP).
 */
export const FailureReasonSchema = oneOf(['privacy-budget'], 'privacy-budget');
export type FailureReason = z.infer<typeof FailureReasonSchema>;

/**
 * Client → server: the client could not do what a round (or the class-sums phase) asked, or (`prepare`,
 * round 0, model version 0) cannot take part in the run at all and is about to leave: its backbone, data
 * or features failed after the welcome.
 */
export const ClientFailureSchema = record({
  ...envelope,
  stage: oneOf(['prepare', 'fit', 'evaluate', 'personalize', 'class-sums'], '"prepare", "fit", "evaluate", "personalize" or "class-sums"'),
  message: text(MAX_MESSAGE_TEXT),
  /** Absent for an ordinary failure (an error); `message` says what happened either way. */
  reason: FailureReasonSchema.optional(),
  /** With `privacy-budget`: the privacy the site has spent so far. */
  privacy: PrivacyReportSchema.optional(),
});
export type ClientFailure = z.infer<typeof ClientFailureSchema>;

/**
 * Server → client, once before round 1 in runs with `headInit: "class-means"` (round 0, model version 0):
 * report the per-class sums of the training features at the run's cut, and the per-class counts.
 */
export const ClassSumsInstructionSchema = record({
  ...envelope,
  /** Runs with federated normalisation: the features are those of the normalised images, as in the rounds. */
  normalization: NormalizationSchema.optional(),
  /** `headInit: "discriminant"`: also send the within-class scatter of the features ({@link ClassSumsResult.scatter}). */
  scatter: flag('true or false').optional(),
});
export type ClassSumsInstruction = z.infer<typeof ClassSumsInstructionSchema>;

/** The name of the one tensor a {@link ClassSumsResult} carries. */
export const CLASS_SUMS_TENSOR = 'class-sums';
/** The name of the tensor in {@link ClassSumsResult.scatter}. */
export const FEATURE_SCATTER_TENSOR = 'feature-scatter';

const classSumsSpecs = weightSpecs.refine((specs) => specs.length === 1 && specs[0]!.name === CLASS_SUMS_TENSOR && specs[0]!.shape.length === 2, {
  error: `one tensor named "${CLASS_SUMS_TENSOR}" of shape [classes, featureDim]`,
  abort: true,
});

/**
 * Client → server: what FedNCM needs from a site, and all that leaves it in that phase. No feature vector
 * and no record travels: only one sum per class and value, and one count per class. The coordinator then
 * checks the shape against the run, the values for finiteness and the total against what the site declared.
 */
export const ClassSumsResultSchema = record({
  ...envelope,
  /**
   * One float32 tensor named {@link CLASS_SUMS_TENSOR} of shape `[classes, featureDim]`: row `c` is the sum
   * of the feature vectors of the site's training samples of class `c` (the run's class order).
   */
  sums: encodedWeights(classSumsSpecs),
  /**
   * Training samples per class, non-negative integers in the run's class order (any other number is
   * `bad-sample-count`); together at least 1 and at most `ready.numTrain`.
   */
  counts: list(claimedCount(0, 'report how many training samples each class has'), MAX_CLASSES),
  /**
   * Asked for (`scatter: true`) only: one float32 tensor named {@link FEATURE_SCATTER_TENSOR} of shape
   * `[featureDim, featureDim]`, Σ_c Σ_{i∈c} (x_i − m_c)(x_i − m_c)ᵀ over the site's training features about
   * its own class means m_c = sums_c / counts_c. With the sums it gives the pooled within-class covariance
   * exactly; no feature vector travels.
   */
  scatter: EncodedWeightsSchema.optional(),
}).superRefine((m, ctx) => {
  const [rows, featureDim] = m.sums.specs[0]!.shape as [number, number];
  if (m.counts.length !== rows) {
    return ctx.addIssue({ code: 'custom', continue: false, path: ['counts'], input: m.counts, message: `one count per row of the sums (${rows})` });
  }
  const total = m.counts.reduce((a, b) => a + b, 0);
  if (!Number.isSafeInteger(total) || total < 1) {
    const params: IssueParams = { code: ErrorCode.SampleCount, sentence: true };
    return ctx.addIssue({
      code: 'custom',
      continue: false,
      path: ['counts'],
      params,
      message: `add up to ${total}; they must count at least one training sample, and at most 2^53 − 1`,
    });
  }
  const s = m.scatter?.specs;
  if (s && !(s.length === 1 && s[0]!.name === FEATURE_SCATTER_TENSOR && s[0]!.shape.length === 2 && s[0]!.shape.every((d) => d === featureDim))) {
    ctx.addIssue({
      code: 'custom',
      continue: false,
      path: ['scatter', 'specs'],
      input: s,
      message: `one tensor named "${FEATURE_SCATTER_TENSOR}" of shape [${featureDim}, ${featureDim}] (featureDim × featureDim)`,
    });
  }
});
export type ClassSumsResult = z.infer<typeof ClassSumsResultSchema>;

// Secure aggregation's phases after training (secagg/phase-messages.ts has their fields): the site's keys
// and metrics, its neighbours' keys, the sealed shares out and in, the masked input, and the unmasking.

/** Client → server, phase 0 (after training): the site's two fresh public keys, and the round's training metrics. */
export const SecAggAdvertiseSchema = record({
  ...envelope,
  ...ADVERTISE_KEYS_FIELDS,
  /** Training samples behind the update; its weight is the one the instruction named. */
  numExamples: sampleCount,
  metrics: FitMetricsSchema,
  /** Runs with record-level DP: the privacy the site has spent, this round included. */
  privacy: PrivacyReportSchema.optional(),
});
export type SecAggAdvertise = z.infer<typeof SecAggAdvertiseSchema>;

/** Server → client, phase 1: the public keys of the site's neighbours that advertised theirs. */
export const SecAggDirectorySchema = record({ ...envelope, ...KEY_DIRECTORY_FIELDS });
export type SecAggDirectory = z.infer<typeof SecAggDirectorySchema>;

/** Client → server, phase 1: its shares for each neighbour, sealed for it, and its commitment to its self-mask seed. */
export const SecAggSharesSchema = record({ ...envelope, ...SHARES_OUT_FIELDS });
export type SecAggShares = z.infer<typeof SecAggSharesSchema>;

/** Server → client, phase 2: the shares its neighbours sealed for it; the site masks its input with their senders. */
export const SecAggDeliverySchema = record({ ...envelope, ...SHARES_IN_FIELDS });
export type SecAggDelivery = z.infer<typeof SecAggDeliverySchema>;

/** Client → server, phase 2: its masked input (4 bytes per value of the round's trainable set). */
export const SecAggMaskedInputSchema = record({ ...envelope, ...MASKED_INPUT_FIELDS });
export type SecAggMaskedInput = z.infer<typeof SecAggMaskedInputSchema>;

/** Server → client, phase 3: which of its peers sent masked inputs and which dropped. */
export const SecAggUnmaskSchema = record({ ...envelope, ...UNMASK_REQUEST_FIELDS });
export type SecAggUnmask = z.infer<typeof SecAggUnmaskSchema>;

/** Client → server, phase 3: its seed shares of the survivors and key shares of the dropped, never both for one peer. */
export const SecAggUnmaskSharesSchema = record({ ...envelope, ...UNMASK_SHARES_FIELDS });
export type SecAggUnmaskShares = z.infer<typeof SecAggUnmaskSharesSchema>;

/**
 * Every reason the coordinator gives for refusing a message:
 * - `bad-statistics`: `ready` statistics that do not fit the run (value count) or contradict themselves;
 *   the site is left out.
 * - `rate-limited`: the connection sent more messages than its budget allows; repeated, it is closed.
 */
export const REJECT_REASONS = [
  'malformed',
  'protocol-mismatch',
  'unknown-run',
  'stale-round',
  'stale-model',
  'not-selected',
  'duplicate',
  'round-closed',
  'wrong-shape',
  'non-finite',
  'bad-sample-count',
  'bad-statistics',
  'rate-limited',
] as const;

/** Why the coordinator refused a message: one of {@link REJECT_REASONS}. */
export const RejectReasonSchema = oneOf(REJECT_REASONS, `one of ${REJECT_REASONS.join(', ')}`);
export type RejectReason = z.infer<typeof RejectReasonSchema>;

/** A refused message: the reason code and a sentence that says what was wrong. */
export const RejectionSchema = z.object({
  accepted: z.literal(false),
  reason: RejectReasonSchema,
  message: text(MAX_MESSAGE_TEXT),
});
export type Rejection = z.infer<typeof RejectionSchema>;

/** The coordinator's answer to every update: accepted, or rejected with a reason. */
export const AckSchema = z
  .custom<unknown>((v) => !(v instanceof Uint8Array), { error: 'an object' })
  .pipe(
    z.discriminatedUnion('accepted', [z.object({ accepted: z.literal(true) }), RejectionSchema], {
      error: (issue) => (issue.code === 'invalid_union' ? 'a boolean' : 'an object'),
    }),
  );
export type Ack = z.infer<typeof AckSchema>;

/** Why the coordinator refuses a connection (the `connect_error` message's `data.reason`). */
export type ConnectRefusal = 'protocol-mismatch' | 'malformed-handshake' | 'unauthorized';
