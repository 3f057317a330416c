/**
 * The run's trust policy applied to one round's accepted updates before the strategy sees them, so that no
 * single site moves the global model by more than its share: an update far from the global model compared
 * with the round's others is excluded, values no model holds are excluded, and sample counts used as
 * aggregation weights are capped relative to the round's median. Pure functions on Float32Arrays.
 */

/** How strictly a run screens its sites' updates and evaluations (on by default). */
export interface TrustPolicy {
  /**
   * An update whose distance from the global model exceeds this many times the round's reference
   * distance (the lower median of the updates' distances) is excluded. 0 turns the check off.
   */
  normBound: number;
  /** An update holding a value larger than this in magnitude is excluded. 0 turns the check off. */
  maxAbsValue: number;
  /**
   * Sample counts (aggregation and evaluation weights) are capped at this many times the round's median
   * count, so a site claiming much more data than the others cannot outweigh them. 0 turns the cap off.
   */
  weightCap: number;
}

/** The policy every run gets unless its config says otherwise. */
export const DEFAULT_TRUST: TrustPolicy = { normBound: 4, maxAbsValue: 1e6, weightCap: 4 };

/** One update as the screen sees it. */
export interface ScreenedUpdate {
  clientId: string;
  values: Float32Array;
  numExamples: number;
  loss: number;
}

/** Why an update was left out of the aggregate. */
export type ExclusionReason = 'outlier-update' | 'extreme-value';

/** One update left out, with why. */
export interface Exclusion {
  clientId: string;
  reason: ExclusionReason;
  message: string;
}

/** Euclidean distance between two vectors of the same length (float64 accumulation). */
export function distance(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    s += d * d;
  }
  return Math.sqrt(s);
}

/** The lower median: for two values the smaller, so one far-off value never sets the reference. */
export function lowerMedian(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

/** Sample counts capped at `cap` × their median (unchanged when `cap` is 0). */
export function capCounts(counts: readonly number[], cap: number): number[] {
  if (cap <= 0 || counts.length === 0) return [...counts];
  const limit = cap * lowerMedian(counts);
  return counts.map((n) => Math.min(n, limit));
}

/**
 * Screens a round's updates against the global model. `reference` is the distance the round is compared
 * with when it has a single update (the previous round's reference); the round's own lower median of
 * distances otherwise. Returns the updates kept (with capped sample counts), the exclusions, and the
 * reference the next round may use.
 *
 * @example
 * const { kept, excluded } = screenUpdates(global, updates, DEFAULT_TRUST);
 */
export function screenUpdates(
  global: Float32Array,
  updates: readonly ScreenedUpdate[],
  policy: TrustPolicy,
  reference?: number,
): { kept: ScreenedUpdate[]; excluded: Exclusion[]; reference?: number } {
  const excluded: Exclusion[] = [];
  let candidates = updates.filter((u) => {
    if (policy.maxAbsValue <= 0) return true;
    const i = u.values.findIndex((v) => Math.abs(v) > policy.maxAbsValue);
    if (i < 0) return true;
    excluded.push({
      clientId: u.clientId,
      reason: 'extreme-value',
      message: `value ${i} of the update is ${u.values[i]}, beyond the ±${policy.maxAbsValue} no model of this run holds`,
    });
    return false;
  });
  const distances = new Map(candidates.map((u) => [u.clientId, distance(u.values, global)]));
  const own = candidates.length >= 2 ? lowerMedian([...distances.values()]) : undefined;
  const ref = own ?? reference;
  if (policy.normBound > 0 && ref !== undefined && ref > 0) {
    const limit = policy.normBound * ref;
    candidates = candidates.filter((u) => {
      const d = distances.get(u.clientId)!;
      if (d <= limit) return true;
      excluded.push({
        clientId: u.clientId,
        reason: 'outlier-update',
        message: `the update moves the model by ${d.toPrecision(4)}, more than ${policy.normBound} × the round's median move ${ref.toPrecision(4)}`,
      });
      return false;
    });
  }
  const counts = capCounts(
    candidates.map((u) => u.numExamples),
    policy.weightCap,
  );
  const kept = candidates.map((u, i) => ({ ...u, numExamples: counts[i]! }));
  return { kept, excluded, ...(own !== undefined ? { reference: own } : reference !== undefined ? { reference } : {}) };
}
