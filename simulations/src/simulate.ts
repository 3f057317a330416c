import { DEFAULT_BACKBONE_DIR, parseRunConfig, type HeadInit, type RunConfig, type RunSummary, type TrustPolicy } from '@ftl/coordinator';
import {
  concatDatasets,
  createLogger,
  loadClientShard,
  type BuiltinDatasetName,
  type FineTuning,
  type Logger,
  type PartitionSpec,
  type StrategyConfig,
} from '@ftl/shared';
import { heldOutSet, taskDataset } from './holdout.js';
import type { RoundPoint } from './report/types.js';
import { runFederation } from './sim/federation.js';

import type { Attack } from './sim/federation.js';

export { signFlip, type Attack } from './sim/federation.js';

/** One simulated federation: a real coordinator and real clients in this process, over loopback socket.io. */
export interface SimulationOptions {
  clients: number;
  partition: PartitionSpec;
  rounds: number;
  strategy: StrategyConfig;
  epochs: number;
  learningRate: number;
  batchSize: number;
  seed: number;
  /** The first `attackers` clients run `attack` on every update. */
  attackers?: number;
  attack?: Attack;
  localLayers?: string[];
  personalizeEpochs?: number;
  /** Early stopping patience in rounds (0 = off). */
  patience?: number;
  /** What early stopping watches: the sites' median validation loss (default) or accuracy. */
  patienceMetric?: 'loss' | 'accuracy';
  dropout?: number;
  l2?: number;
  /** Clients' backbone and feature cache; kept after the run when given (default: a temporary folder). */
  cacheDir?: string;
  /** Folder of the backbone every client downloads (default: the committed one). */
  backboneDir?: string;
  /** Backbone layer whose output is the feature vector (default: the backbone's own). */
  featureLayer?: string;
  /** Learning rate × lrDecay^(round−1) (default 1: constant). */
  lrDecay?: number;
  /** Cut the federation pool to this many samples (default: all 8,500). */
  limit?: number;
  /** Each site keeps at most this many of its samples (train + validation), its label mix unchanged. */
  perSite?: number;
  /**
   * The centralized baseline: the same shards, pooled at one site that trains on all of them (same
   * epochs, rounds and head), so federated results can be compared with training on the pooled data.
   */
  pooled?: boolean;
  /** How the head starts: random, or the sites' pooled class means (FedNCM; needs a linear head). */
  headInit?: HeadInit;
  /** Which backbone layers train and travel with the head (default: feature extraction, the head only). */
  fineTuning?: FineTuning;
  /** Hidden layer sizes of the head (default: the run config's, [128]). */
  hidden?: number[];
  /** How the coordinator screens updates (default: the run config's trust policy). */
  trust?: TrustPolicy;
  /** The built-in dataset the sites hold (default MNIST). */
  dataset?: BuiltinDatasetName;
  /** Keep only these classes of the dataset (relabelled in this order): a target task such as Fashion-MNIST 5–9. */
  classes?: number[];
  log?: Logger;
  /** Called after each round, for progress. */
  onRound?: (round: number, accuracy: number) => void;
}

/** What a simulation measured. */
export interface SimulationResult {
  summary: RunSummary;
  /** Held-out MNIST accuracy of the exported global model (NaN with local layers: no single global model). */
  heldOut: number;
  seconds: number;
  /** Length of the feature vector the head was trained on. */
  featureDim: number;
}

/**
 * Runs one federated run on a built-in task with the committed backbone and returns its per-round records
 * and the exported model's held-out accuracy.
 */
export async function simulate(o: SimulationOptions): Promise<SimulationResult> {
  const log = o.log ?? createLogger('simulation', { level: 'warn' });
  const dataset = o.dataset ?? 'mnist';
  const task = taskDataset(dataset, o.classes);
  const run: RunConfig = {
    ...parseRunConfig({}),
    runId: `sim-${o.strategy.name}`,
    rounds: o.rounds,
    fit: { epochs: o.epochs, batchSize: o.batchSize, learningRate: o.learningRate },
    seed: o.seed,
    strategy: o.strategy,
    localLayers: o.localLayers ?? [],
    schedule: { lrDecay: o.lrDecay ?? 1, epochs: [] },
    ...(o.featureLayer ? { featureLayer: o.featureLayer } : {}),
    personalizeEpochs: o.personalizeEpochs ?? 0,
    patience: o.patience ?? 0,
    patienceMetric: o.patienceMetric ?? 'loss',
    dropout: o.dropout ?? 0,
    l2: o.l2 ?? 0,
    ...(o.fineTuning ? { fineTuning: o.fineTuning } : {}),
    ...(o.hidden ? { hidden: o.hidden } : {}),
    ...(o.trust ? { trust: o.trust } : {}),
    ...(o.headInit ? { headInit: o.headInit } : {}),
    classes: [...task.classes],
  };
  const shards = Array.from({ length: o.clients }, (_, index) =>
    loadClientShard(
      {
        dataset,
        partition: o.partition,
        clients: o.clients,
        index,
        seed: o.seed,
        ...(o.limit ? { limit: o.limit } : {}),
        ...(o.perSite ? { perClient: o.perSite } : {}),
      },
      log,
      task,
    ),
  );
  // Centralized: one site holding exactly the union of the federation's shards, trained the same way.
  const sites = o.pooled ? [{ train: concatDatasets(shards.map((s) => s.train)), val: concatDatasets(shards.map((s) => s.val)) }] : shards;
  const r = await runFederation({
    run,
    backboneDir: o.backboneDir ?? DEFAULT_BACKBONE_DIR,
    sites,
    heldOut: { test: heldOutSet(dataset, o.classes), every: 0 },
    log,
    ...(o.cacheDir ? { cacheDir: o.cacheDir } : {}),
    ...(o.attackers ? { attackers: o.attackers } : {}),
    ...(o.attack ? { attack: o.attack } : {}),
    ...(o.onRound ? { onRound: (p: RoundPoint) => o.onRound?.(p.round, p.valAccuracy) } : {}),
  });
  return { summary: r.summary, heldOut: r.heldOut, seconds: r.seconds, featureDim: r.featureDim };
}
