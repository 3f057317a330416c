import type { Weights } from '@ftl/shared';

/** A run's global model as the rounds change it: weights, version, and the last round's move. */
export interface GlobalModel {
  /** The global trainable tensors (the head, and any unfrozen backbone layers before it). */
  weights: Weights;
  /** How many rounds changed the weights so far (0: the initial head, or the class-sums head). */
  version: number;
  /** The last round's median distance of updates from the global model: the reference of a round with one update. */
  moveReference?: number;
}
