// The rows this fixed scenario wrote (docs/data/), which `npm run scenario -- cutpoint --from FILE` prints again.
// The scenario itself now runs as a study: simulations/scenarios/*.json with `npm run sim`.

/** One row of the cut-point scenario. */
export interface CutPointRow {
  featureLayer: string;
  /** Length of the feature vector, i.e. the head's input. */
  featureDim: number;
  heldOut: number;
  finalValAccuracy: number;
  /** Bytes of one head update on the wire. */
  updateBytes: number;
  seconds: number;
}
