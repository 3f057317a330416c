/**
 * `@ftl/shared/fl`: federated learning as pure math. Aggregation on `Float32Array`s (weighted mean,
 * median, trimmed mean, Krum, clipping, server optimisers), the strategies built on it, and Rényi-DP
 * accounting of the sampled Gaussian mechanism. Imports no tfjs and does no I/O; the package's boundary
 * test fails if a file reachable from here does.
 *
 * @example
 * import { createStrategy, parseStrategy } from '@ftl/shared/fl';
 * const strategy = createStrategy(parseStrategy('fedmedian'), { fractionFit: 1, minFitClients: 2, sampleWeightCap: 10_000, seed: 1 });
 */
export { WeightedMean } from './aggregation/weighted-mean.js';
export { coordinateMedian, krumScores, krumSelect, mean, trimmedMean } from './aggregation/robust.js';
export { clipUpdate } from './aggregation/clip.js';
export { adaptiveStep, momentumStep, type ServerOptimizerState } from './aggregation/server-optimizers.js';

export {
  BaseStrategy,
  bufferedAggregator,
  weightedAggregator,
  type BaseStrategyOptions,
  type ClientUpdate,
  type EvaluationSummary,
  type FitExtras,
  type RoundAggregator,
  type Strategy,
} from './strategies/strategy.js';
export { createStrategy, parseStrategy, STRATEGY_OPTIONS, type StrategyConfig, type StrategyName } from './strategies/create-strategy.js';
export { FedAvg } from './strategies/fed-avg.js';
export { FedAvgM } from './strategies/fed-avg-m.js';
export { FedOpt, type FedOptOptions } from './strategies/fed-opt.js';
export { FedProx } from './strategies/fed-prox.js';
export { FedMedian, FedTrimmedAvg, Krum, NormBoundedFedAvg } from './strategies/robust-strategies.js';

export { type EpsilonOptions, RDP_ACCOUNTANT_FORMAT, RdpAccountant, type RdpAccountantState } from './privacy/accountant.js';
export { MAX_NOISE_MULTIPLIER, type NoiseMultiplierSearch, noiseMultiplierFor } from './privacy/noise-multiplier.js';
export { type Conversion, type SampledGaussian, SampledGaussianSchema } from './privacy/params.js';
export { composeRdp, DEFAULT_RDP_ORDERS, epsilonFromRdp, type PrivacySpent, sampledGaussianRdp } from './privacy/rdp.js';
export {
  type AdaptiveClipping,
  addNoise,
  CLIENT_DP_NOISES,
  type ClientDpNoise,
  type ClippedDelta,
  clipDelta,
  clipSiteUpdate,
  deltaNoiseMultiplier,
  DpFedAvgAggregator,
  type DpFedAvgResult,
  type DpFedAvgRound,
  l2Norm,
  nextClipNorm,
  type SiteClipSettings,
  updateDelta,
} from './privacy/client-dp.js';
export { type GaussianSource, GaussianNoise } from './privacy/gaussian-noise.js';
