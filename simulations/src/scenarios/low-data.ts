import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_BACKBONE_DIR } from '@ftl/coordinator';
import { initBackend, parsePartition, parseStrategy, type BuiltinDatasetName, type FineTuning } from '@ftl/shared';
import { rawInputsBackbone } from '../sim/methods.js';
import { simulate, type SimulationOptions } from '../simulate.js';

/** The target tasks: far transfer (a Fashion-MNIST backbone on MNIST digits) and near transfer. */
export const LOW_DATA_TASKS = {
  mnist: { dataset: 'mnist' as BuiltinDatasetName, classes: undefined, about: 'MNIST digits (far transfer from Fashion-MNIST)' },
  near: {
    dataset: 'fashion-mnist' as BuiltinDatasetName,
    classes: [5, 6, 7, 8, 9],
    about: 'Fashion-MNIST classes 5–9 (near transfer from classes 0–4)',
  },
} as const;
export type LowDataTask = keyof typeof LOW_DATA_TASKS;

/** How a run trains: which backbone layers, from which initial values. */
export const LOW_DATA_METHODS = ['feature-extraction', 'ncm', 'discriminant', 'lp-ft', 'partial', 'scratch', 'linear-raw', 'centralized'] as const;
export type LowDataMethod = (typeof LOW_DATA_METHODS)[number];

/** One run of the scenario. */
export interface LowDataRow {
  task: LowDataTask;
  method: LowDataMethod;
  /** Labelled images per site (train + validation); undefined: the whole split. */
  perSite?: number;
  seed: number;
  heldOut: number;
  rounds: number;
  /** First round whose federated validation accuracy reached the target, and the seconds until its end. */
  roundToTarget?: number;
  secondsToTarget?: number;
  /** Mean bytes a round moved (in + out, every site). */
  bytesPerRound: number;
  /** Mean seconds of a round (every site trains in this one process, one after another). */
  secondsPerRound: number;
  /** Values in one update. */
  updateValues: number;
  /** The backbone layer the transfer methods were cut at, when not the backbone's own. */
  featureLayer?: string;
  /** Why the run did not finish (its other figures are then NaN). */
  failed?: string;
}

const FEATURE_EXTRACTION: FineTuning = { mode: 'feature-extraction', layers: 1, everyRounds: 1, backboneLrFactor: 1 };

/** The settings of one method. */
function methodOptions(method: LowDataMethod, rounds: number, backboneDir: string, rawDir: string): Partial<SimulationOptions> {
  switch (method) {
    case 'feature-extraction':
      return { backboneDir, fineTuning: FEATURE_EXTRACTION, headInit: 'random' };
    case 'ncm':
      // The head starts as the sites' pooled nearest-class-mean classifier (FedNCM), then trains as usual.
      return { backboneDir, fineTuning: FEATURE_EXTRACTION, headInit: 'class-means' };
    case 'discriminant':
      // The head starts as the pooled shrinkage linear discriminant of the sites' statistics, then trains as usual.
      return { backboneDir, fineTuning: FEATURE_EXTRACTION, headInit: 'discriminant' };
    case 'lp-ft':
      // Linear probe first (the discriminant head), then the top backbone layer joins at a tenth of the learning rate (LP-FT).
      return {
        backboneDir,
        headInit: 'discriminant',
        fineTuning: { mode: 'gradual', layers: 1, everyRounds: Math.max(1, Math.floor(rounds / 2)), backboneLrFactor: 0.1 },
      };
    case 'partial':
      return { backboneDir, headInit: 'random', fineTuning: { mode: 'partial', layers: 1, everyRounds: 1, backboneLrFactor: 1 } };
    case 'scratch':
      return { backboneDir, headInit: 'random', fineTuning: { mode: 'scratch', layers: 1, everyRounds: 1, backboneLrFactor: 1 } };
    case 'linear-raw':
      return { backboneDir: rawDir, fineTuning: FEATURE_EXTRACTION, hidden: [], headInit: 'random' };
    case 'centralized':
      // The discriminant run trained on exactly the sites' pooled shards at one site.
      return { backboneDir, fineTuning: FEATURE_EXTRACTION, headInit: 'discriminant', pooled: true };
  }
}

/**
 * Sites with little labelled data, where transfer should win: for each number of images per site and each
 * method, one federated run per seed (10 sites, Dirichlet 0.5, the real coordinator and clients in one
 * process), scored on held-out images no site saw.
 */
export async function lowDataScenario(
  progress: (line: string) => void,
  o: {
    task: LowDataTask;
    sizes: Array<number | undefined>;
    seeds: number[];
    methods: LowDataMethod[];
    rounds: number;
    epochs: number;
    learningRate: number;
    hidden: number[];
    target: number;
    backboneDir?: string;
    /** Cut the backbone at this layer for the transfer methods (default: the backbone's own feature layer). */
    featureLayer?: string;
  },
  /** Hears the rows so far after each run, so a long grid can be saved as it goes. */
  onRow?: (rows: readonly LowDataRow[]) => Promise<void>,
): Promise<LowDataRow[]> {
  await initBackend();
  const task = LOW_DATA_TASKS[o.task];
  const rawDir = await rawInputsBackbone(await mkdtemp(join(tmpdir(), 'ftl-raw-pixels-')), [28, 28, 1]);
  const rows: LowDataRow[] = [];
  try {
    for (const perSite of o.sizes) {
      for (const method of o.methods) {
        const options = methodOptions(method, o.rounds, o.backboneDir ?? DEFAULT_BACKBONE_DIR, rawDir);
        const cut = o.featureLayer !== undefined && method !== 'linear-raw' ? { featureLayer: o.featureLayer } : {};
        for (const seed of o.seeds) {
          progress(`${o.task} · ${perSite ?? 'all'} images per site · ${method} · seed ${seed} …`);
          let r: Awaited<ReturnType<typeof simulate>>;
          try {
            r = await simulate({
              clients: 10,
              partition: parsePartition('dirichlet:0.5'),
              rounds: o.rounds,
              epochs: o.epochs,
              learningRate: o.learningRate,
              batchSize: 32,
              seed,
              strategy: parseStrategy('fedavg'),
              hidden: o.hidden,
              dataset: task.dataset,
              ...(task.classes ? { classes: [...task.classes] } : {}),
              ...(perSite !== undefined ? { perSite } : {}),
              ...options,
              ...cut,
            });
          } catch (err) {
            // One failed run is a result to report, not the end of the grid.
            const failed = err instanceof Error ? err.message : String(err);
            progress(`  failed: ${failed}`);
            rows.push({
              task: o.task,
              method,
              ...(perSite !== undefined ? { perSite } : {}),
              seed,
              heldOut: NaN,
              rounds: 0,
              bytesPerRound: NaN,
              secondsPerRound: NaN,
              updateValues: NaN,
              ...cut,
              failed,
            });
            await onRow?.(rows);
            continue;
          }
          const rounds = r.summary.rounds;
          const hit = rounds.findIndex((x) => x.valAccuracy >= o.target);
          const seconds = rounds.map((x) => x.seconds);
          rows.push({
            task: o.task,
            method,
            ...(perSite !== undefined ? { perSite } : {}),
            seed,
            heldOut: r.heldOut,
            rounds: rounds.length,
            ...(hit >= 0 ? { roundToTarget: hit + 1, secondsToTarget: seconds.slice(0, hit + 1).reduce((a, b) => a + b, 0) } : {}),
            bytesPerRound: rounds.reduce((a, x) => a + x.bytesIn + x.bytesOut, 0) / rounds.length,
            secondsPerRound: seconds.reduce((a, b) => a + b, 0) / rounds.length,
            updateValues: r.summary.weights.values.length,
            ...cut,
          });
          progress(`  held-out ${(r.heldOut * 100).toFixed(2)}%`);
          await onRow?.(rows);
        }
      }
    }
  } finally {
    await rm(rawDir, { recursive: true, force: true });
  }
  return rows;
}
