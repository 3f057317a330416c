// The rows this fixed scenario wrote (docs/data/), which `npm run scenario -- byzantine --from FILE` prints again.
// The scenario itself now runs as a study: simulations/scenarios/*.json with `npm run sim`.

/** One row of the Byzantine scenario. */
export interface ByzantineRow {
  label: string;
  attackers: number;
  heldOut: number;
  finalValAccuracy: number;
  seconds: number;
}
