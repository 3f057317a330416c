/** What the coordinator records about one round. */
export interface RoundRecord {
  round: number;
  /** `kept`: the strategy kept the previous global model (no aggregate, or a non-finite one). */
  status: 'aggregated' | 'no-quorum' | 'kept';
  /** Clients asked to train. */
  selected: number;
  /** Updates accepted and averaged. */
  accepted: number;
  rejected: number;
  /** Accepted updates the run's trust policy left out of the aggregate (absent in records from older versions). */
  excluded?: number;
  failed: number;
  /** Sample-weighted mean of the clients' training loss. */
  trainLoss: number;
  /** Federated evaluation of the new global head on the clients' validation splits. */
  valLoss: number;
  valAccuracy: number;
  evalClients: number;
  bytesIn: number;
  bytesOut: number;
  seconds: number;
  modelVersion: number;
  /**
   * Runs with record-level DP: the largest ε a site reported with its update this round (each site's
   * own guarantee on its own data, at the run's δ; the round's event lists every site's). Runs with
   * client-level DP: the run's ε after this round (any one site's participation, at the run's δ).
   * Absent when there is none.
   */
  epsilon?: number;
  /**
   * Runs with secure aggregation: how many masked inputs the sum held, how many selected sites did not see
   * the round through, t and each site's neighbours, and why the round could not be summed when it could not.
   */
  secureAggregation?: { maskedInputs: number; dropouts: number; threshold: number; neighbours: number; failure?: string };
}

function mb(bytes: number): string {
  return (bytes / 1e6).toFixed(2);
}

/** The header of the per-round table; with `privacy` (runs with record-level DP) a last column of the largest ε a site reported. */
export function roundTableHeader(options: { privacy?: boolean } = {}): string {
  return `round | clients ok/sel | train loss | val loss | val acc | MB in | MB out | seconds${options.privacy ? ' |  max ε' : ''}`;
}

/** One row of the per-round table; with `privacy`, or when the round has an ε, the largest ε a site reported. */
export function formatRoundRow(r: RoundRecord, rounds: number, options: { privacy?: boolean } = {}): string {
  const cell = (s: string, w: number) => s.padStart(w);
  const f = (n: number, d: number) => (Number.isFinite(n) ? n.toFixed(d) : '-');
  return [
    cell(`${r.round}/${rounds}`, 5),
    // Excluded updates (trust policy) are shown beside the count: `4/5 1 excl`.
    cell(`${r.accepted}/${r.selected}${r.excluded ? ` ${r.excluded} excl` : ''}${r.status === 'aggregated' ? '' : ` (${r.status})`}`, 14),
    cell(f(r.trainLoss, 4), 10),
    cell(f(r.valLoss, 4), 8),
    cell(Number.isFinite(r.valAccuracy) ? `${(r.valAccuracy * 100).toFixed(2)}%` : '-', 7),
    cell(mb(r.bytesIn), 5),
    cell(mb(r.bytesOut), 6),
    cell(r.seconds.toFixed(1), 7),
    ...(options.privacy || r.epsilon !== undefined ? [cell(r.epsilon !== undefined ? r.epsilon.toFixed(2) : '-', 6)] : []),
  ].join(' | ');
}
