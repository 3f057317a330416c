import { BaseStrategy, weightedAggregator, type RoundAggregator } from './strategy.js';

/** FedAvg (McMahan et al. 2017): the sample-weighted mean of the clients' weights, streamed. */
export class FedAvg extends BaseStrategy {
  readonly name: string = 'fedavg';

  beginAggregation(_round: number, global: Float32Array): RoundAggregator {
    return weightedAggregator(global.length, (u) => this.weightOf(u));
  }
}
