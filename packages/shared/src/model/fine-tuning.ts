import { shapeSize, type WeightSpec, type Weights } from '../codec/weights.js';

/** How much of the backbone a run trains, besides the head, and whether it starts pretrained. */
export const FINE_TUNING_MODES = ['feature-extraction', 'partial', 'gradual', 'scratch'] as const;
export type FineTuningMode = (typeof FINE_TUNING_MODES)[number];

/**
 * A run's fine-tuning settings (`fineTuning` in the run config):
 * - `feature-extraction`: the backbone is frozen; only the head trains and travels.
 * - `partial`: the top `layers` backbone layers with weights below the cut train and travel with the head.
 * - `gradual`: head only at first, then one more backbone layer every `everyRounds` rounds, up to `layers`.
 * - `scratch`: the same network, every backbone layer below the cut re-initialised randomly (seeded by the
 *   run's seed) and trained with the head from round 1: the baseline a transfer run is measured against.
 *   `layers` and `everyRounds` do not apply (a run refuses a `layers` other than the default 1).
 */
export interface FineTuning {
  mode: FineTuningMode;
  /** `partial`: backbone layers unfrozen (top first); `gradual`: the most ever unfrozen. */
  layers: number;
  /** `gradual`: rounds between two unfreezings. */
  everyRounds: number;
  /** Unfrozen backbone layers train at the client learning rate × this (discriminative learning rates; 0 keeps them fixed). */
  backboneLrFactor: number;
}

/** Today's behaviour: a frozen backbone, head-only training. */
export const DEFAULT_FINE_TUNING: Readonly<FineTuning> = { mode: 'feature-extraction', layers: 1, everyRounds: 1, backboneLrFactor: 1 };

/**
 * A layer count meaning "every backbone layer with weights below the cut", whatever their number: what
 * `scratch` trains. The trainable-network functions take it wherever they take a count.
 */
export const ALL_BACKBONE_LAYERS = Number.POSITIVE_INFINITY;

/**
 * How many backbone layers (with weights, counted down from the cut) train in `round` (1-based);
 * {@link ALL_BACKBONE_LAYERS} for `scratch`. The schedule never shrinks, so the largest trainable set of a
 * run is the one of its last round.
 *
 * @example
 * unfrozenLayerCount({ mode: 'gradual', layers: 2, everyRounds: 3, backboneLrFactor: 1 }, 4); // 1: rounds 1–3 head only, 4–6 one layer, 7+ two
 */
export function unfrozenLayerCount(ft: FineTuning, round: number): number {
  switch (ft.mode) {
    case 'feature-extraction':
      return 0;
    case 'partial':
      return ft.layers;
    case 'gradual':
      return Math.min(ft.layers, Math.floor((Math.max(round, 1) - 1) / ft.everyRounds));
    case 'scratch':
      return ALL_BACKBONE_LAYERS;
  }
}

/** Layer name of a wire tensor name `<layer>/<kernel|bias|…>`. */
export function layerOfTensor(name: string): string {
  const i = name.lastIndexOf('/');
  return i < 0 ? name : name.slice(0, i);
}

/**
 * Values laid out for the tensors `to`, taken by name from `values` laid out for `from`; tensors absent
 * from `from` (or of another shape) get `fill(spec)` (default zeros). Used when the trainable set changes:
 * the global model keeps what it learned, and server optimizer moments keep theirs.
 */
export function remapByName(
  values: Float32Array,
  from: readonly WeightSpec[],
  to: readonly WeightSpec[],
  fill?: (spec: WeightSpec, index: number) => Float32Array,
): Float32Array {
  const offsets = new Map<string, { offset: number; spec: WeightSpec }>();
  let off = 0;
  for (const spec of from) {
    offsets.set(spec.name, { offset: off, spec });
    off += shapeSize(spec.shape);
  }
  const out = new Float32Array(to.reduce((n, s) => n + shapeSize(s.shape), 0));
  let at = 0;
  to.forEach((spec, i) => {
    const n = shapeSize(spec.shape);
    const src = offsets.get(spec.name);
    if (src && src.spec.shape.join('x') === spec.shape.join('x')) out.set(values.subarray(src.offset, src.offset + n), at);
    else if (fill) out.set(fill(spec, i), at);
    at += n;
  });
  return out;
}

/**
 * The global model after the trainable set changed to `fresh.specs`: tensors it already had keep their
 * (federated) values, new ones start from `fresh` (the pretrained backbone layer).
 */
export function carryOver(previous: Weights, fresh: Weights): Weights {
  const starts: number[] = [];
  let off = 0;
  for (const s of fresh.specs) {
    starts.push(off);
    off += shapeSize(s.shape);
  }
  return {
    specs: fresh.specs,
    values: remapByName(previous.values, previous.specs, fresh.specs, (spec, i) =>
      fresh.values.subarray(starts[i]!, starts[i]! + shapeSize(spec.shape)),
    ),
  };
}

/**
 * Server optimizer state (momentum, Adam moments: one value per model value) carried to a new trainable
 * set: values of tensors kept stay, new tensors start at 0 (as every moment does in round 1). An entry of
 * another length (not per-value state) cannot be mapped and is dropped, which resets it.
 */
export function remapStrategyState(
  state: Record<string, Float32Array>,
  from: readonly WeightSpec[],
  to: readonly WeightSpec[],
): Record<string, Float32Array> {
  const size = from.reduce((n, s) => n + shapeSize(s.shape), 0);
  const out: Record<string, Float32Array> = {};
  for (const [key, values] of Object.entries(state)) if (values.length === size) out[key] = remapByName(values, from, to);
  return out;
}
