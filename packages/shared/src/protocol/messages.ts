import type { EncodedWeights } from '../codec/weights.js';
import type { ChannelStats, Normalization } from '../data/federated-stats.js';
import type { HeadConfig } from '../model/head.js';

export type { ChannelStats, Normalization } from '../data/federated-stats.js';

/** Bumped on any incompatible change to a message below. Both sides refuse another version. */
export const PROTOCOL_VERSION = 1;

/** What every run-scoped message carries: who it is for and which global model it was built on. */
export interface Envelope {
  protocol: number;
  runId: string;
  round: number;
  /** The global model version the message refers to (0 = the initial head, +1 per aggregation). */
  modelVersion: number;
}

/** Sent by the client in the socket.io handshake (`auth`). */
export interface HandshakeAuth {
  protocol: number;
  /**
   * The client's stable name; a second connection with the same name replaces the first. 1–128 letters,
   * digits, `.`, `_` or `-`, starting with a letter or digit, and not `constructor` or `prototype`
   * (`checkSiteName`).
   */
  name: string;
  /** The secret the operator issued for this name (required when the coordinator runs with auth). */
  token?: string;
}

/** Where and what the backbone is; the files travel over plain HTTP, never over socket.io. */
export interface BackboneInfo {
  /** Path on the coordinator's HTTP server under which the files are served, e.g. `/backbone`. */
  path: string;
  /** File names to fetch: `model.json` and its weight shards. */
  files: string[];
  /** {@link modelDigest} of those files. */
  sha256: string;
  /** Layer whose flattened output is the feature vector. */
  featureLayer: string;
}

/** Server → client, once per connection: the run the client is part of. */
export interface Welcome {
  protocol: number;
  runId: string;
  clientId: string;
  backbone: BackboneInfo;
  head: HeadConfig;
  classes: string[];
  /** Head layers that never leave the client (personalization): not in any weights message. */
  localLayers: string[];
  /**
   * Training-time augmentation: each client adds `copies` randomly shifted/flipped/rotated copies of its
   * training images (seeded per run and client) before features are extracted; validation is untouched.
   */
  augment?: AugmentConfig;
  /**
   * Federated normalisation: the client reports channel statistics (sums, sums of squares, min, max,
   * count; never values) with `ready`, and receives the combined normalisation with every round.
   */
  normalization?: Normalization['kind'];
  /** `channel` (default): statistics per image channel; `feature`: per value position (tabular columns). */
  normalizationScope?: 'channel' | 'feature';
  /**
   * Set when every round trains backbone layers too (`partial` fine-tuning): features at the cut would
   * never be used, so the client prepares features for the round's trainable set when the round comes.
   */
  backboneTrainsFromStart?: boolean;
}

/** Seeded augmentation of a run (see {@link Welcome.augment}). */
export interface AugmentConfig {
  copies: number;
  /** Largest shift as a fraction of the side, [0, 0.5). */
  shift: number;
  flip: boolean;
  /** Largest rotation in degrees, [0, 180]. */
  rotation: number;
}

/** Local training settings for one round. */
export interface FitConfig {
  epochs: number;
  batchSize: number;
  learningRate: number;
  /** Seed for the client's shuffling this round. */
  seed: number;
  /** FedProx: add (μ/2)·‖w − w_global‖² to the local loss; absent or 0 for plain local training. */
  proximalMu?: number;
  /**
   * Fine-tuning: backbone layers among the weights train at `learningRate` × this (≥ 0; 0 keeps them
   * fixed); absent means 1. Which layers train is not said here: it is the weights' own tensors.
   */
  backboneLrFactor?: number;
}

/** Server → client: train the head from these weights. */
export interface FitInstruction extends Envelope {
  weights: EncodedWeights;
  config: FitConfig;
  /** Runs with federated normalisation: how to normalise inputs before the backbone (fixed for the run). */
  normalization?: Normalization;
}

/** Server → client: evaluate these (global) weights on the local validation split. */
export interface EvaluateInstruction extends Envelope {
  weights: EncodedWeights;
  normalization?: Normalization;
}

/** Server → client, after the last round: fine-tune the final global head locally and report both accuracies. */
export interface PersonalizeInstruction extends Envelope {
  weights: EncodedWeights;
  config: FitConfig;
  normalization?: Normalization;
}

/** Client → server: validation metrics of the global head and of the client's fine-tuned copy. */
export interface PersonalizeResult extends Envelope {
  numExamples: number;
  globalLoss: number;
  globalAccuracy: number;
  personalLoss: number;
  personalAccuracy: number;
}

/** Why a run ended. */
export type RunEndReason = 'completed' | 'stopped' | 'failed';

/** Server → client: the run is over; the client may disconnect. */
export interface RunEnd {
  protocol: number;
  runId: string;
  reason: RunEndReason;
  message?: string;
}

/** Why the coordinator is closing a client's connection. */
export type GoodbyeReason = 'replaced' | 'revoked' | 'shutdown' | 'misbehaving';

/**
 * Server → client, just before the coordinator closes this connection: `replaced` (the same name
 * connected again) and `revoked` (the operator revoked the token) are final; after `shutdown` the client
 * reconnects, since a restarted coordinator resumes its run.
 */
export interface Goodbye {
  protocol: number;
  reason: GoodbyeReason;
  message: string;
}

/** Client → server: features are ready; the client can take rounds. */
export interface Ready {
  protocol: number;
  runId: string;
  numTrain: number;
  numVal: number;
  /** The label names this client's data holds, in its own words (before mapping to the run's classes). */
  labels?: string[];
  /** Channel statistics of the training images, when the run asked for federated normalisation. */
  stats?: ChannelStats;
}

/** Training metrics a client reports with its update. */
export interface FitMetrics {
  /** Finite and ≥ 0. */
  loss: number;
  /** In [0, 1]. */
  accuracy: number;
  /** Finite and ≥ 0. */
  seconds: number;
}

/** Client → server: the locally trained head. */
export interface FitResult extends Envelope {
  weights: EncodedWeights;
  /** Training samples behind the update: its weight in FedAvg. A positive integer. */
  numExamples: number;
  metrics: FitMetrics;
}

/** Client → server: metrics of the global head on the client's validation split. */
export interface EvaluateResult extends Envelope {
  /** Validation samples behind the metrics: a positive integer. */
  numExamples: number;
  /** Finite and ≥ 0. */
  loss: number;
  /** In [0, 1]. */
  accuracy: number;
}

/** Client → server: the client could not do what a round (or the class-sums phase) asked. */
export interface ClientFailure extends Envelope {
  stage: 'fit' | 'evaluate' | 'personalize' | 'class-sums';
  message: string;
}

/**
 * Server → client, once before round 1 in runs with `headInit: "class-means"` (round 0, model version 0):
 * report the per-class sums of the training features at the run's cut, and the per-class counts.
 */
export interface ClassSumsInstruction extends Envelope {
  /** Runs with federated normalisation: the features are those of the normalised images, as in the rounds. */
  normalization?: Normalization;
  /** `headInit: "discriminant"`: also send the within-class scatter of the features ({@link ClassSumsResult.scatter}). */
  scatter?: boolean;
}

/** The name of the one tensor a {@link ClassSumsResult} carries. */
export const CLASS_SUMS_TENSOR = 'class-sums';
/** The name of the tensor in {@link ClassSumsResult.scatter}. */
export const FEATURE_SCATTER_TENSOR = 'feature-scatter';

/**
 * Client → server: what FedNCM needs from a site, and all that leaves it in that phase. No feature vector
 * and no record travels: only one sum per class and value, and one count per class.
 */
export interface ClassSumsResult extends Envelope {
  /**
   * One float32 tensor named {@link CLASS_SUMS_TENSOR} of shape `[classes, featureDim]`: row `c` is the sum
   * of the feature vectors of the site's training samples of class `c` (the run's class order).
   */
  sums: EncodedWeights;
  /** Training samples per class, non-negative integers in the run's class order; together at most `ready.numTrain`. */
  counts: number[];
  /**
   * Asked for (`scatter: true`) only: one float32 tensor named {@link FEATURE_SCATTER_TENSOR} of shape
   * `[featureDim, featureDim]`, Σ_c Σ_{i∈c} (x_i − m_c)(x_i − m_c)ᵀ over the site's training features about
   * its own class means m_c = sums_c / counts_c. With the sums it gives the pooled within-class covariance
   * exactly; no feature vector travels.
   */
  scatter?: EncodedWeights;
}

/** Why the coordinator refused a message. */
export type RejectReason =
  | 'malformed'
  | 'protocol-mismatch'
  | 'unknown-run'
  | 'stale-round'
  | 'stale-model'
  | 'not-selected'
  | 'duplicate'
  | 'round-closed'
  | 'wrong-shape'
  | 'non-finite'
  | 'bad-sample-count'
  /** `ready` statistics that do not fit the run (value count) or contradict themselves; the site is left out. */
  | 'bad-statistics'
  /** The connection sent more messages than its budget allows; repeated, it is closed. */
  | 'rate-limited';

/**
 * Every {@link RejectReason}, for validators that must check a reason at run time (`parseAck`). The
 * type below fails to compile when a reason is added to the union but not here.
 */
export const REJECT_REASONS = [
  'malformed', 'protocol-mismatch', 'unknown-run', 'stale-round', 'stale-model', 'not-selected', 'duplicate',
  'round-closed', 'wrong-shape', 'non-finite', 'bad-sample-count', 'bad-statistics', 'rate-limited',
] as const satisfies readonly RejectReason[];
const everyRejectReasonListed: Exclude<RejectReason, (typeof REJECT_REASONS)[number]> extends never ? true : never = true;
void everyRejectReasonListed;

/** The coordinator's answer to every update: accepted, or rejected with a reason. */
export type Ack = { accepted: true } | Rejection;

/** A refused message: the reason code and a sentence that says what was wrong. */
export interface Rejection {
  accepted: false;
  reason: RejectReason;
  message: string;
}

/** Why the coordinator refuses a connection (the `connect_error` message's `data.reason`). */
export type ConnectRefusal = 'protocol-mismatch' | 'malformed-handshake' | 'unauthorized';
