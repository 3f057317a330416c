import { ErrorCode, FtlError } from '../errors.js';
import { createRng, shuffleInPlace, type Rng } from '../random.js';

/** How a pool of samples is divided among clients. */
export type PartitionSpec = { kind: 'iid' } | { kind: 'dirichlet'; alpha: number } | { kind: 'shards'; perClient: number };

/**
 * Parses `iid`, `dirichlet:<alpha>` (alpha > 0; small alpha = few classes per client) or
 * `shards:<k>` (each client gets k label-sorted shards, so about k classes: McMahan et al.'s split).
 *
 * @example
 * parsePartition('dirichlet:0.5'); // { kind: 'dirichlet', alpha: 0.5 }
 */
export function parsePartition(text: string): PartitionSpec {
  if (text === 'iid') return { kind: 'iid' };
  const shards = /^shards:(\d+)$/.exec(text);
  if (shards && Number(shards[1]) >= 1) return { kind: 'shards', perClient: Number(shards[1]) };
  const m = /^dirichlet:(.+)$/.exec(text);
  const alpha = m ? Number(m[1]) : NaN;
  if (m && Number.isFinite(alpha) && alpha > 0) return { kind: 'dirichlet', alpha };
  throw new FtlError(
    ErrorCode.InvalidConfig,
    `partition must be "iid", "dirichlet:<alpha>" with alpha > 0 (e.g. dirichlet:0.5) or "shards:<k>" with k ≥ 1 (got "${text}")`,
  );
}

function range(n: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => i);
}

/** Splits `0..n-1` into two seeded random parts, the second holding `round(n × fraction)` indices. */
export function splitIndices(n: number, fraction: number, seed: number): [Int32Array, Int32Array] {
  if (!(fraction >= 0 && fraction < 1)) {
    throw new FtlError(ErrorCode.InvalidConfig, `split fraction must be in [0, 1) (got ${fraction})`);
  }
  const idx = shuffleInPlace(range(n), createRng(seed));
  const cut = n - Math.round(n * fraction);
  return [idx.slice(0, cut).sort(), idx.slice(cut).sort()];
}

function dirichlet(alpha: number, k: number, rng: Rng): number[] {
  const g = Array.from({ length: k }, () => rng.gamma(alpha));
  const sum = g.reduce((a, b) => a + b, 0);
  return sum > 0 ? g.map((x) => x / sum) : g.map(() => 1 / k);
}

/**
 * Divides sample indices among `clients` with a seeded generator. `iid` deals a shuffled pool evenly;
 * `dirichlet:α` gives each class to the clients in proportions drawn from Dir(α), redrawing (up to
 * 100 times) until every client holds at least `minPerClient` samples.
 *
 * @returns one sorted index array per client; together they cover every index exactly once.
 */
export function partitionIndices(
  labels: Int32Array,
  numClasses: number,
  spec: PartitionSpec,
  clients: number,
  seed: number,
  minPerClient = 10,
): Int32Array[] {
  if (!Number.isInteger(clients) || clients < 1) {
    throw new FtlError(ErrorCode.InvalidConfig, `clients must be a positive integer (got ${clients})`);
  }
  if (labels.length < clients * minPerClient) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `${labels.length} samples cannot give ${clients} clients ${minPerClient} samples each; use fewer clients`,
    );
  }
  const rng = createRng(seed);
  if (spec.kind === 'iid') {
    const idx = shuffleInPlace(range(labels.length), rng);
    return Array.from({ length: clients }, (_, c) => idx.filter((_, i) => i % clients === c).sort());
  }
  if (spec.kind === 'shards') {
    // Sort by label (seeded order within a label), cut into clients·k equal shards, deal k random shards to each.
    const idx = shuffleInPlace(range(labels.length), rng).sort((a, b) => labels[a]! - labels[b]! || a - b);
    const count = clients * spec.perClient;
    const order = shuffleInPlace(
      Array.from({ length: count }, (_, i) => i),
      rng,
    );
    return Array.from({ length: clients }, (_, c) => {
      const mine: number[] = [];
      for (let j = 0; j < spec.perClient; j++) {
        const shard = order[c * spec.perClient + j]!;
        const from = Math.floor((shard * labels.length) / count);
        const to = Math.floor(((shard + 1) * labels.length) / count);
        for (let i = from; i < to; i++) mine.push(idx[i]!);
      }
      return Int32Array.from(mine).sort();
    });
  }
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  labels.forEach((l, i) => byClass[l]!.push(i));
  for (let attempt = 0; attempt < 100; attempt++) {
    const parts: number[][] = Array.from({ length: clients }, () => []);
    for (const members of byClass) {
      const shuffled = shuffleInPlace([...members], rng);
      const p = dirichlet(spec.alpha, clients, rng);
      let start = 0;
      let acc = 0;
      for (let c = 0; c < clients; c++) {
        acc += p[c]!;
        const end = c === clients - 1 ? shuffled.length : Math.round(acc * shuffled.length);
        parts[c]!.push(...shuffled.slice(start, end));
        start = end;
      }
    }
    if (parts.every((p) => p.length >= minPerClient)) return parts.map((p) => Int32Array.from(p).sort());
  }
  throw new FtlError(
    ErrorCode.InvalidConfig,
    `dirichlet:${spec.alpha} could not give each of ${clients} clients ${minPerClient} samples in 100 draws; raise alpha or use fewer clients`,
  );
}
