import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ComputeTurns, FtlClient } from '@ftl/client';
import { Coordinator, defaultCoordinatorConfig, type HeadInit, type RunSummary, type TrustPolicy } from '@ftl/coordinator';
import {
  createLogger,
  initBackend,
  loadBuiltinDataset,
  loadClientShard,
  type ImageDataset,
  type Logger,
  type PartitionSpec,
  type StrategyConfig,
  type Weights,
  type FineTuning,
  keepClasses,
  concatDatasets,
  type BuiltinDatasetName,
} from '@ftl/shared';
import { holdoutAccuracy } from './holdout.js';

/** A misbehaving site: rewrites its trained weights before sending them. */
export type Attack = (trained: Weights, global: Weights) => Weights;

/** Sign-flipped, scaled update: sends global − scale·(trained − global). */
export function signFlip(scale: number): Attack {
  return (trained, global) => ({
    specs: trained.specs,
    values: trained.values.map((v, i) => global.values[i]! - scale * (v - global.values[i]!)),
  });
}

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

const loaded = new Map<BuiltinDatasetName, ImageDataset>();

/** A built-in dataset (loaded once per process), cut to some classes when a task names them. */
function taskData(dataset: BuiltinDatasetName, classes?: readonly number[]): ImageDataset {
  let ds = loaded.get(dataset);
  if (!ds) loaded.set(dataset, (ds = loadBuiltinDataset(dataset)));
  return classes ? keepClasses(ds, classes) : ds;
}

/**
 * Runs one federated run on MNIST with the committed backbone and returns its per-round records and the
 * exported model's held-out accuracy.
 */
export async function simulate(o: SimulationOptions): Promise<SimulationResult> {
  await initBackend();
  const t0 = performance.now();
  const log = o.log ?? createLogger('simulation', { level: 'warn' });
  const dataset = o.dataset ?? 'mnist';
  const task = taskData(dataset, o.classes);
  const dir = await mkdtemp(join(tmpdir(), 'ftl-sim-'));
  const coordinator = await Coordinator.create(
    {
      ...defaultCoordinatorConfig(),
      port: 0,
      runId: `sim-${o.strategy.name}`,
      rounds: o.rounds,
      minClients: o.pooled ? 1 : o.clients,
      waitTimeoutMs: 120_000,
      roundDeadlineMs: 300_000,
      fit: { epochs: o.epochs, batchSize: o.batchSize, learningRate: o.learningRate },
      seed: o.seed,
      strategy: o.strategy,
      exportDir: join(dir, 'model'),
      localLayers: o.localLayers ?? [],
      schedule: { lrDecay: o.lrDecay ?? 1, epochs: [] },
      ...(o.featureLayer ? { featureLayer: o.featureLayer } : {}),
      ...(o.backboneDir ? { backboneDir: o.backboneDir } : {}),
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
    },
    log,
  );
  const { url } = await coordinator.listen();
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
  // The sites share this thread: their training takes turns, so the thread answers pings between batches.
  const turns = new ComputeTurns();
  const clients = sites.map((shard, index) => {
    const attack = index < (o.attackers ?? 0) ? o.attack : undefined;
    return new FtlClient({
      serverUrl: url,
      name: `site-${index}`,
      shard,
      cacheDir: o.cacheDir ?? join(dir, 'cache'),
      log: log.child({ client: index }),
      turns,
      ...(attack ? { transformUpdate: attack } : {}),
    });
  });
  // Settled either way: a client that fails after the coordinator gave up must not become an unhandled rejection.
  const ends = clients.map((c) =>
    c.run().then(
      () => undefined,
      (err: unknown) => err,
    ),
  );
  try {
    const summary = await coordinator.run((r) => o.onRound?.(r.round, r.valAccuracy));
    const failed = (await Promise.all(ends)).find((e) => e !== undefined);
    if (failed !== undefined) throw failed;
    const heldOut = o.localLayers?.length ? NaN : (await holdoutAccuracy(join(dir, 'model'), dataset, o.classes)).accuracy;
    return { summary, heldOut, seconds: (performance.now() - t0) / 1000, featureDim: coordinator.head.featureDim };
  } finally {
    for (const c of clients) c.close();
    await coordinator.close();
    await rm(dir, { recursive: true, force: true });
  }
}
