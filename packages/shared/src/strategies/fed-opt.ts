import { adaptiveStep, type ServerOptimizerState } from '../aggregation/server-optimizers.js';
import { BaseStrategy, weightedAggregator, type BaseStrategyOptions, type RoundAggregator } from './strategy.js';

/** Options of the adaptive server optimizers (Reddi et al. 2021). */
export interface FedOptOptions {
  eta: number;
  beta1: number;
  beta2: number;
  tau: number;
}

/**
 * FedAdam, FedYogi and FedAdagrad (Reddi et al. 2021, "Adaptive Federated Optimization"): the server
 * treats FedAvg mean − global as a pseudo-gradient and steps with Adam, Yogi or Adagrad. Moments are
 * server state, checkpointed via `state()`.
 */
export class FedOpt extends BaseStrategy {
  readonly name: string;
  private opt: ServerOptimizerState = {};

  constructor(
    base: BaseStrategyOptions,
    private readonly kind: 'adam' | 'yogi' | 'adagrad',
    private readonly options: FedOptOptions,
  ) {
    super(base);
    this.name = `fed${kind}`;
  }

  beginAggregation(_round: number, global: Float32Array): RoundAggregator {
    return weightedAggregator(
      global.length,
      (u) => this.weightOf(u),
      undefined,
      (mean) => adaptiveStep(this.kind, global, mean, this.opt, this.options),
    );
  }

  override state(): Record<string, Float32Array> {
    const s: Record<string, Float32Array> = {};
    if (this.opt.m) s['m'] = this.opt.m;
    if (this.opt.v) s['v'] = this.opt.v;
    return s;
  }

  override restore(state: Record<string, Float32Array>): void {
    this.opt = {};
    if (state['m']) this.opt.m = Float32Array.from(state['m']);
    if (state['v']) this.opt.v = Float32Array.from(state['v']);
  }
}
