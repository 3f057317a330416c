import { ErrorCode, FtlError } from '../errors.js';
import { createRng, shuffleInPlace } from '../random.js';

// SecAgg+ (Bell et al. 2020): each site shares keys and masks only with k neighbours on a k-regular graph,
// a Harary graph (a ring where each site links to the k/2 nearest on either side, plus the opposite site
// when k is odd) over the sites in a random order. The graph is public: every site and the coordinator may
// know it, so the project's seeded generator picks the order, and a round's graph repeats with its seed.

/**
 * The degree a k-regular graph on n sites can have for a requested k: n − 1 (the complete graph, plain
 * SecAgg) when k ≥ n − 1; k + 1 when both k and n are odd (no k-regular graph exists then); k otherwise.
 *
 * @throws FtlError(INVALID_CONFIG) for n < 2, or k < 2 short of the complete graph.
 */
export function graphDegree(sites: number, k: number): number {
  if (!Number.isSafeInteger(sites) || sites < 2)
    throw new FtlError(ErrorCode.InvalidConfig, `secure aggregation needs at least 2 sites (got ${sites})`);
  if (Number.isSafeInteger(k) && k >= sites - 1) return sites - 1;
  if (!Number.isSafeInteger(k) || k < 2) throw new FtlError(ErrorCode.InvalidConfig, `neighbours must be an integer ≥ 2 (got ${k})`);
  return k % 2 === 1 && sites % 2 === 1 ? k + 1 : k;
}

/**
 * Each site's neighbours (sorted ids, never itself) on a k-regular Harary graph over `ids` in an order
 * drawn with `seed`; with k ≥ ids.length − 1, every other site. The relation is symmetric.
 *
 * @example
 * neighbourGraph([1, 2, 3, 4, 5, 6], 2, deriveSeed(runSeed, round)); // a random 6-cycle
 */
export function neighbourGraph(ids: readonly number[], k: number, seed: number): Map<number, number[]> {
  const n = ids.length;
  const degree = graphDegree(n, k);
  const order = shuffleInPlace([...ids], createRng(seed));
  const links = new Map<number, Set<number>>(ids.map((id) => [id, new Set<number>()]));
  const link = (i: number, j: number) => {
    const a = order[((i % n) + n) % n]!;
    const b = order[((j % n) + n) % n]!;
    if (a === b) return;
    links.get(a)!.add(b);
    links.get(b)!.add(a);
  };
  for (let i = 0; i < n; i++) {
    for (let d = 1; d <= Math.floor(degree / 2); d++) link(i, i + d);
    if (degree % 2 === 1) link(i, i + n / 2);
  }
  return new Map([...links].map(([id, set]) => [id, [...set].sort((a, b) => a - b)]));
}
