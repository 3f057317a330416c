import {
  backboneLayersOf,
  carryOver,
  createHead,
  createTrainableNetwork,
  DEFAULT_FINE_TUNING,
  ErrorCode,
  FtlError,
  getTrainableWeights,
  planFineTuning,
  remapStrategyState,
  unfrozenLayerCount,
  type HeadConfig,
  type LayersFeatureExtractor,
  type Logger,
  type Strategy,
  type WeightSpec,
  type Weights,
} from '@ftl/shared';
import type { ServedBackbone } from './backbone-server.js';
import type { CoordinatorConfig } from './config.js';
import type { GlobalModel } from './global-model.js';
import type { Store } from './store/store.js';

/**
 * The sets of tensors a run trains, round by round: the head alone, or (fine-tuning) the unfrozen backbone
 * layers below the cut plus the head, a set that gradual unfreezing grows. Built once per run, after
 * the checks only the model can make (head layers kept local, a fine-tuning mode the backbone allows).
 */
export class TrainableSets {
  /** The backbone cut at the run's feature layer, when the run trains backbone layers (a layers model). */
  private readonly cut?: LayersFeatureExtractor;
  /** The initial trainable tensors per number of unfrozen backbone layers: the pretrained layers + the seeded head. */
  private readonly initial = new Map<number, Weights>();
  /** The largest trainable set of the run (its last round's): what sizes the message limit. */
  readonly largest: Weights;

  constructor(
    private readonly config: CoordinatorConfig,
    backbone: ServedBackbone,
    private readonly head: HeadConfig,
  ) {
    const seeded = createHead(head, config.seed);
    const layers = seeded.layers.map((l) => l.name);
    const unknown = config.localLayers.filter((l) => !layers.includes(l));
    if (unknown.length > 0 || config.localLayers.length >= layers.length) {
      seeded.dispose();
      throw new FtlError(
        ErrorCode.InvalidConfig,
        `localLayers must name some but not all head layers (${layers.join(', ')}); got ${config.localLayers.join(', ')}`,
      );
    }
    this.initial.set(0, getTrainableWeights(seeded, config.localLayers));
    seeded.dispose();
    const ft = config.fineTuning;
    if (ft.mode !== 'feature-extraction') {
      if (config.localLayers.length > 0) {
        throw new FtlError(
          ErrorCode.InvalidConfig,
          `localLayers (${config.localLayers.join(', ')}) work only with fineTuning.mode "feature-extraction" (got "${ft.mode}"); ` +
            'drop localLayers, or fine-tune the backbone without personal head layers',
        );
      }
      // Scratch trains every layer below the cut, so a layer count would be silently ignored: refused instead.
      if (ft.mode === 'scratch' && ft.layers !== DEFAULT_FINE_TUNING.layers) {
        throw new FtlError(
          ErrorCode.InvalidConfig,
          `fineTuning.layers is ${ft.layers} but mode "scratch" re-initialises and trains every backbone layer below the cut; ` +
            'leave fineTuning.layers out, or use mode "partial" to train only the top layers from their pretrained values',
        );
      }
      const fx = backbone.extractor.at(config.featureLayer ?? backbone.featureLayer);
      if (fx.kind !== 'layers') {
        throw new FtlError(
          ErrorCode.InvalidConfig,
          ft.mode === 'scratch'
            ? `fineTuning.mode "scratch" re-initialises the backbone's layers, but the backbone ${backbone.dir} is a graph model, whose ` +
                'layers cannot be re-initialised; use a TensorFlow.js layers-model backbone of the same architecture'
            : `fineTuning.mode "${ft.mode}" trains backbone layers, but the backbone ${backbone.dir} is a graph model, a frozen feature ` +
                'extractor; use fineTuning.mode "feature-extraction" or a TensorFlow.js layers-model backbone',
        );
      }
      this.cut = fx;
      // Refuses a cap the backbone cannot meet, even one the rounds never reach (scratch: a backbone with nothing to train).
      planFineTuning(fx, ft.mode === 'scratch' ? unfrozenLayerCount(ft, 1) : ft.layers);
    }
    // Round 1's set first, then the last round's: seeded initialisers draw in the same order on every start.
    this.forRound(1);
    this.largest = this.forRound(config.rounds);
  }

  /** The initial trainable tensors of `round`'s set. */
  forRound(round: number): Weights {
    return this.withUnfrozen(unfrozenLayerCount(this.config.fineTuning, round));
  }

  /**
   * Sets the trainable set `round` trains (gradual unfreezing changes it): tensors the global model has
   * keep their values, newly unfrozen layers start from the pretrained backbone, and the strategy's
   * per-value server state (momentum, Adam moments) is carried by name, with zeros for the new tensors.
   */
  enterRound(round: number, model: GlobalModel, strategy: Strategy, log: Logger, store: Store | undefined): void {
    const fresh = this.forRound(round);
    if (sameSpecs(fresh.specs, model.weights.specs)) return;
    const before = model.weights.specs;
    model.weights = carryOver(model.weights, fresh);
    strategy.restore(remapStrategyState(strategy.state(), before, fresh.specs));
    // Distances over another set of tensors are not comparable with the last round's.
    model.moveReference = undefined;
    const layers = backboneLayersOf(fresh.specs);
    log.info('unfreeze', { round, layers: layers.join(','), values: model.weights.values.length });
    store?.appendEvent(this.config.runId, 'unfreeze', { round, layers, values: model.weights.values.length });
  }

  /**
   * The initial trainable tensors with `count` unfrozen backbone layers before the seeded head: pretrained,
   * or (scratch) drawn from the layers' own initialisers, seeded by the run's seed.
   */
  private withUnfrozen(count: number): Weights {
    let w = this.initial.get(count);
    if (w === undefined) {
      const backbone = this.config.fineTuning.mode === 'scratch' ? 'random' : 'pretrained';
      const net = createTrainableNetwork(this.cut!, count, this.head, this.config.seed, { backbone });
      w = getTrainableWeights(net.model);
      net.model.dispose();
      this.initial.set(count, w);
    }
    return w;
  }
}

function sameSpecs(a: readonly WeightSpec[], b: readonly WeightSpec[]): boolean {
  return a.length === b.length && a.every((s, i) => s.name === b[i]!.name && s.shape.join('x') === b[i]!.shape.join('x'));
}
