/**
 * What a run with secure aggregation (`secureAggregation.enabled`) cannot have, said at config time: the
 * coordinator sees only the sum of the sites' masked updates, so anything that needs one site's update, or
 * sends a site's data statistics in the clear, is refused with the field to change and how.
 */

/** Strategies whose aggregate needs the individual updates: medians, trimmed means, Krum's distances. */
const NEEDS_EACH_UPDATE = ['fedmedian', 'fedtrimmedavg', 'krum', 'multikrum'];

/** The settings {@link secureAggregationProblems} reads: the block and the fields it must agree with. */
export interface SecureAggregationContext {
  secureAggregation: { enabled: boolean; threshold?: number | undefined; neighbours?: number | undefined };
  strategy?: { name: string };
  trust: { normBound: number; maxAbsValue: number };
  headInit: string;
  normalization: string;
  privacy: { mode: string; adaptiveClipping?: unknown };
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A run config as given, with the trust policy's per-update screens off by default when it turns secure
 * aggregation on: `trust.normBound` and `trust.maxAbsValue` judge one site's update, which the coordinator
 * never sees then, and each site clips every value of its change to ±`clipRange` instead. A screen the
 * config sets itself is kept, so a value above 0 is still refused by {@link secureAggregationProblems}.
 */
export function withSecureAggregationDefaults(input: unknown): unknown {
  if (!isRecord(input) || !isRecord(input['secureAggregation']) || input['secureAggregation']['enabled'] !== true) return input;
  const trust = input['trust'] ?? {};
  if (!isRecord(trust)) return input;
  return { ...input, trust: { normBound: 0, maxAbsValue: 0, ...trust } };
}

/**
 * What stands in the way of secure aggregation as configured, each with the field to name; empty when
 * nothing does (or when it is off).
 *
 * @example
 * secureAggregationProblems({ ...run, strategy: { name: 'krum' } }); // [{ path: 'strategy.name', message: 'krum needs …' }]
 */
export function secureAggregationProblems(run: SecureAggregationContext): Array<{ path: string; message: string }> {
  const sa = run.secureAggregation;
  if (!sa.enabled) return [];
  const off = 'or set secureAggregation.enabled to false';
  const problems: Array<{ path: string; message: string }> = [];
  const strategy = run.strategy?.name;
  if (strategy !== undefined && NEEDS_EACH_UPDATE.includes(strategy)) {
    problems.push({
      path: 'strategy.name',
      message: `${strategy} needs every site's update, but with secure aggregation the coordinator sees only their sum; use fedavg, fedprox, fedavgm, fedadam, fedyogi or fedadagrad, ${off}`,
    });
  }
  if (strategy === 'normbounded') {
    problems.push({
      path: 'strategy.name',
      message: `normbounded clips each site's update, which secure aggregation hides; each site clips every value of its change to ±secureAggregation.clipRange instead, so use fedavg (or fedavgm, fedadam), ${off}`,
    });
  }
  if (run.trust.normBound > 0) {
    problems.push({
      path: 'trust.normBound',
      message: `excludes an update by its distance from the global model, which a masked update does not show; with secure aggregation each site clips every value of its change to ±secureAggregation.clipRange instead, so set trust.normBound to 0, ${off}`,
    });
  }
  if (run.trust.maxAbsValue > 0) {
    problems.push({
      path: 'trust.maxAbsValue',
      message: `excludes an update holding a value beyond it, which a masked update does not show; with secure aggregation each site clips every value of its change to ±secureAggregation.clipRange instead (and the aggregate is still checked for finite values), so set trust.maxAbsValue to 0, ${off}`,
    });
  }
  if (run.headInit === 'class-means' || run.headInit === 'discriminant') {
    problems.push({
      path: 'headInit',
      message: `${run.headInit} has each site send its exact per-class feature sums in the clear before round 1, outside secure aggregation; use headInit random, ${off}`,
    });
  }
  if (run.normalization !== 'none') {
    problems.push({
      path: 'normalization',
      message: `${run.normalization} has each site send the exact statistics of its training inputs in the clear, outside secure aggregation; use normalization none, ${off}`,
    });
  }
  if (run.privacy.mode === 'client' && run.privacy.adaptiveClipping !== undefined) {
    problems.push({
      path: 'privacy.adaptiveClipping',
      message: `needs each site's clipped-or-not bit, which would travel outside the masked sum; leave adaptiveClipping out (a fixed privacy.clipNorm), ${off}`,
    });
  }
  if (sa.threshold !== undefined && sa.neighbours !== undefined) {
    const holders = sa.neighbours + 1;
    const least = Math.floor(holders / 2) + 1;
    if (sa.threshold < least || sa.threshold > holders) {
      problems.push({
        path: 'secureAggregation.threshold',
        message: `must be in [${least}, ${holders}] with ${sa.neighbours} neighbours: a majority of the ${holders} sites holding each site's shares (its neighbours and itself), at most all of them (got ${sa.threshold})`,
      });
    }
  }
  return problems;
}
