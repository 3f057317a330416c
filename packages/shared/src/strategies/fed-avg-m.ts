import { momentumStep, type ServerOptimizerState } from '../aggregation/server-optimizers.js';
import { BaseStrategy, weightedAggregator, type BaseStrategyOptions, type RoundAggregator } from './strategy.js';

/**
 * FedAvgM (Hsu et al. 2019): server momentum on the pseudo-gradient (FedAvg mean − global). With
 * momentum 0 and lr 1 it is FedAvg. The momentum buffer is server state, checkpointed via `state()`.
 */
export class FedAvgM extends BaseStrategy {
  readonly name = 'fedavgm';
  private opt: ServerOptimizerState = {};

  constructor(
    base: BaseStrategyOptions,
    private readonly options: { lr: number; momentum: number },
  ) {
    super(base);
  }

  beginAggregation(_round: number, global: Float32Array): RoundAggregator {
    return weightedAggregator(
      global.length,
      (u) => this.weightOf(u),
      undefined,
      (mean) => momentumStep(global, mean, this.opt, this.options),
    );
  }

  override state(): Record<string, Float32Array> {
    return this.opt.m ? { m: this.opt.m } : {};
  }

  override restore(state: Record<string, Float32Array>): void {
    this.opt = state['m'] ? { m: Float32Array.from(state['m']) } : {};
  }
}
