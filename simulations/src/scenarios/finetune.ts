// The rows this fixed scenario wrote (docs/data/), which `npm run scenario -- finetune --from FILE` prints again.
// The scenario itself now runs as a study: simulations/scenarios/*.json with `npm run sim`.

import type { FineTuning } from '@ftl/shared';

/** One row of the fine-tuning scenario. */
export interface FineTuneRow {
  label: string;
  fineTuning: FineTuning;
  /** Held-out MNIST accuracy of the exported global model (1,500 images no client saw). */
  heldOut: number;
  finalValAccuracy: number;
  /** Float32 values the last round's updates carried (head + unfrozen backbone layers). */
  trainedValues: number;
  /** Bytes received by the coordinator in the last round, per accepted update. */
  updateBytes: number;
  seconds: number;
}
