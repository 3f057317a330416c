import { WeightedMean } from '../aggregation/weighted-mean.js';
import { deriveSeed } from '../random.js';

/** One accepted client update, as a strategy sees it. */
export interface ClientUpdate {
  clientId: string;
  /** The client's trained weights (the global model's tensors, flat). */
  values: Float32Array;
  numExamples: number;
  loss: number;
}

/** One round's aggregation: updates are folded in as they arrive; `finish` gives the new global weights. */
export interface RoundAggregator {
  add(update: ClientUpdate): void;
  /** The new global weights, or `null` to keep the previous global model. */
  finish(): Float32Array | null;
}

/** What a strategy asks of the round's clients besides the run's fit settings. */
export interface FitExtras {
  /** FedProx: weight μ of the proximal term (μ/2)·‖w − w_global‖² added to the local loss. */
  proximalMu?: number;
}

/** Server-side evaluation result (loss and accuracy), sample-weighted over clients. */
export interface EvaluationSummary {
  loss: number;
  accuracy: number;
  clients: number;
  numExamples: number;
}

/** Options every strategy shares. */
export interface BaseStrategyOptions {
  /** Share of available clients trained per round, (0, 1]. */
  fractionFit: number;
  /** Never select fewer than this many (when available). */
  minFitClients: number;
  /** Sample counts used as aggregation weights are capped here, so no site outweighs others by claiming more. */
  sampleWeightCap: number;
  seed: number;
}

/**
 * A federated learning strategy, split as in Flower: which clients train and with what settings
 * (`configureFit`, `fitExtras`), how their updates become the next global model (`beginAggregation`),
 * who evaluates (`configureEvaluate`) and how evaluations combine (`aggregateEvaluate`). Server state
 * (optimizer moments) is exposed by `state`/`restore` so it can be checkpointed.
 */
export interface Strategy {
  readonly name: string;
  /**
   * Fewest updates a round needs for this rule to aggregate (Krum: f + 3). With fewer, the round keeps
   * the previous global model; a run whose `minClients` is below it is refused when it is created.
   */
  readonly minUpdates: number;
  configureFit(round: number, available: readonly string[]): string[];
  fitExtras(round: number): FitExtras;
  beginAggregation(round: number, global: Float32Array): RoundAggregator;
  configureEvaluate(round: number, available: readonly string[]): string[];
  aggregateEvaluate(round: number, results: ReadonlyArray<{ numExamples: number; loss: number; accuracy: number }>): EvaluationSummary | null;
  state(): Record<string, Float32Array>;
  restore(state: Record<string, Float32Array>): void;
}

/**
 * Defaults shared by every strategy: seeded fraction sampling, all clients evaluate, sample-weighted
 * evaluation, no server state. Subclasses provide `beginAggregation`.
 */
export abstract class BaseStrategy implements Strategy {
  abstract readonly name: string;
  readonly minUpdates: number = 1;

  constructor(protected readonly base: BaseStrategyOptions) {}

  configureFit(round: number, available: readonly string[]): string[] {
    const { fractionFit, minFitClients, seed } = this.base;
    const count = Math.min(available.length, Math.max(minFitClients, Math.ceil(fractionFit * available.length)));
    const roundSeed = deriveSeed(seed, round);
    // A seeded ranking: the same clients are selected for the same seed and round, whatever the order they joined in.
    return [...available]
      .map((id) => ({ id, key: deriveSeed(roundSeed, ...[...id].map((ch) => ch.charCodeAt(0))) }))
      .sort((a, b) => a.key - b.key || (a.id < b.id ? -1 : 1))
      .slice(0, count)
      .map((x) => x.id)
      .sort();
  }

  fitExtras(_round: number): FitExtras {
    return {};
  }

  abstract beginAggregation(round: number, global: Float32Array): RoundAggregator;

  configureEvaluate(_round: number, available: readonly string[]): string[] {
    return [...available];
  }

  aggregateEvaluate(_round: number, results: ReadonlyArray<{ numExamples: number; loss: number; accuracy: number }>): EvaluationSummary | null {
    let n = 0;
    let loss = 0;
    let accuracy = 0;
    for (const r of results) {
      n += r.numExamples;
      loss += r.loss * r.numExamples;
      accuracy += r.accuracy * r.numExamples;
    }
    return n > 0 ? { loss: loss / n, accuracy: accuracy / n, clients: results.length, numExamples: n } : null;
  }

  state(): Record<string, Float32Array> {
    return {};
  }

  restore(_state: Record<string, Float32Array>): void {}

  /** The aggregation weight of an update: its sample count, capped. */
  protected weightOf(update: ClientUpdate): number {
    return Math.min(update.numExamples, this.base.sampleWeightCap);
  }
}

/**
 * A streaming, sample-weighted mean of the updates, optionally transformed first (clipping) and
 * post-processed with the global weights (server optimizers). Memory: one model, whatever the clients.
 */
export function weightedAggregator(
  length: number,
  weightOf: (u: ClientUpdate) => number,
  transform: (values: Float32Array) => Float32Array = (v) => v,
  finish: (mean: Float32Array) => Float32Array = (m) => m,
): RoundAggregator {
  const acc = new WeightedMean(length);
  return {
    add: (u) => acc.add(transform(u.values), weightOf(u)),
    finish: () => (acc.size === 0 ? null : finish(acc.result())),
  };
}

/** Collects every update (for rules that need them all at once: median, trimmed mean, Krum). */
export function bufferedAggregator(finish: (updates: ClientUpdate[]) => Float32Array | null): RoundAggregator {
  const updates: ClientUpdate[] = [];
  return {
    add: (u) => void updates.push(u),
    finish: () => (updates.length === 0 ? null : finish(updates)),
  };
}
