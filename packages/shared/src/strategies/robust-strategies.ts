import { coordinateMedian, krumSelect, mean, trimmedMean } from '../aggregation/robust.js';
import { clipUpdate } from '../aggregation/clip.js';
import { BaseStrategy, bufferedAggregator, weightedAggregator, type BaseStrategyOptions, type RoundAggregator } from './strategy.js';

// Byzantine-robust rules. They need every update of the round at once, so they keep n models in memory
// (norm-bounded FedAvg streams). Sample counts are ignored by median, trimmed mean and Krum: a lying
// site gains nothing by claiming more samples.

/** FedMedian (Yin et al. 2018): the coordinate-wise median of the updates. */
export class FedMedian extends BaseStrategy {
  readonly name = 'fedmedian';

  beginAggregation(): RoundAggregator {
    return bufferedAggregator((updates) => coordinateMedian(updates.map((u) => u.values)));
  }
}

/** FedTrimmedAvg (Yin et al. 2018): per coordinate, drop the ⌊β·n⌋ lowest and highest values, average the rest. */
export class FedTrimmedAvg extends BaseStrategy {
  readonly name = 'fedtrimmedavg';

  constructor(
    base: BaseStrategyOptions,
    private readonly options: { beta: number },
  ) {
    super(base);
  }

  beginAggregation(): RoundAggregator {
    return bufferedAggregator((updates) =>
      trimmedMean(
        updates.map((u) => u.values),
        this.options.beta,
      ),
    );
  }
}

/**
 * Krum and Multi-Krum (Blanchard et al. 2017): score each update by its distance to its n − f − 2
 * nearest neighbours, assuming at most f attackers; keep the m best (m = 1: Krum) and average them.
 */
export class Krum extends BaseStrategy {
  readonly name: string;
  override readonly minUpdates: number;

  constructor(
    base: BaseStrategyOptions,
    private readonly options: { f: number; m: number },
  ) {
    super(base);
    this.name = options.m === 1 ? 'krum' : 'multikrum';
    // Scores use each update's n − f − 2 nearest others, so a round needs at least f + 3 updates.
    this.minUpdates = options.f + 3;
  }

  beginAggregation(): RoundAggregator {
    return bufferedAggregator((updates) => {
      // Too few updates to tell an attacker from the others: keep the previous global model.
      if (updates.length < this.minUpdates) return null;
      const vectors = updates.map((u) => u.values);
      return mean(krumSelect(vectors, this.options.f, Math.min(this.options.m, vectors.length)).map((i) => vectors[i]!));
    });
  }
}

/**
 * Norm-bounded FedAvg (Sun et al. 2019): each update's change from the global model is clipped to
 * `maxNorm` before the sample-weighted mean, bounding what any one client can move the model.
 */
export class NormBoundedFedAvg extends BaseStrategy {
  readonly name = 'normbounded';

  constructor(
    base: BaseStrategyOptions,
    private readonly options: { maxNorm: number },
  ) {
    super(base);
  }

  beginAggregation(_round: number, global: Float32Array): RoundAggregator {
    return weightedAggregator(
      global.length,
      (u) => this.weightOf(u),
      (v) => clipUpdate(v, global, this.options.maxNorm),
    );
  }
}
