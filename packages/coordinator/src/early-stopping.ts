import type { Logger, Weights } from '@ftl/shared';
import type { CoordinatorConfig } from './config.js';
import type { Store } from './store/store.js';

/**
 * Early stopping on the median of the sites' validation losses (or accuracies, `patienceMetric`), so no
 * one site decides which head is exported. Keeps the best round's global head; not persisted, so after a
 * restart it is tracked again from the resumed rounds on.
 */
export class EarlyStopping {
  /** The best round so far, scored so that lower is better, with its global head. */
  best?: { round: number; score: number; weights: Weights };

  constructor(
    private readonly config: CoordinatorConfig,
    private readonly log: Logger,
    private readonly store: Store | undefined,
  ) {}

  /** Takes a committed round's medians and global head; true when the run should stop after it. */
  observe(round: number, medians: { loss: number; accuracy: number }, global: Weights): boolean {
    const { patience, patienceMetric, runId } = this.config;
    if (patience <= 0) return false;
    // Scored so that lower is better: the median loss, or minus the median accuracy.
    const byAccuracy = patienceMetric === 'accuracy';
    const score = byAccuracy ? -medians.accuracy : medians.loss;
    if (Number.isFinite(score) && (this.best === undefined || score < this.best.score)) {
      this.best = { round, score, weights: { specs: global.specs, values: global.values.slice() } };
    }
    const best = this.best;
    if (!best || round - best.round < patience) return false;
    const value = byAccuracy ? { bestValAccuracy: -best.score } : { bestValLoss: best.score };
    this.log.info('early-stop', { round, bestRound: best.round, ...Object.fromEntries(Object.entries(value).map(([k, v]) => [k, v.toFixed(4)])) });
    this.store?.appendEvent(runId, 'early-stop', { round, bestRound: best.round, ...value });
    return true;
  }
}
