// The rows this fixed scenario wrote (docs/data/), which `npm run scenario -- personalization --from FILE` prints again.
// The scenario itself now runs as a study: simulations/scenarios/*.json with `npm run sim`.

/** One row of the personalization scenario. */
export interface PersonalizationRow {
  label: string;
  /** Held-out MNIST accuracy of the exported global model (NaN when layers stay local). */
  heldOut: number;
  /** Sample-weighted mean of the clients' validation accuracy with the global model. */
  globalPerClient: number;
  /** The same with each client's personalised model (local layers, or local fine-tuning). */
  personalPerClient: number;
  /** Lowest per-client personalised accuracy (fine-tuning only; NaN otherwise). */
  worstClient: number;
  seconds: number;
}
