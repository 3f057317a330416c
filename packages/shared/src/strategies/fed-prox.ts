import { FedAvg } from './fed-avg.js';
import type { BaseStrategyOptions, FitExtras } from './strategy.js';

/**
 * FedProx (Li et al. 2020): FedAvg aggregation, and each client adds (μ/2)·‖w − w_global‖² to its local
 * loss so that heterogeneous clients drift less from the global model. μ = 0 is FedAvg.
 */
export class FedProx extends FedAvg {
  override readonly name = 'fedprox';

  constructor(
    base: BaseStrategyOptions,
    private readonly options: { mu: number },
  ) {
    super(base);
  }

  override fitExtras(): FitExtras {
    return { proximalMu: this.options.mu };
  }
}
