import { ErrorCode, FtlError } from '../errors.js';
import { createRng, shuffleInPlace, type Rng } from '../random.js';

/** How the `size:` partition grows a client's share with its index (after flwr-datasets' size partitioners). */
export type SizeGrowth = 'linear' | 'square' | 'exponential';

const SIZE_GROWTHS: readonly SizeGrowth[] = ['linear', 'square', 'exponential'];

/**
 * How a pool of samples is divided among clients. `iid`, `dirichlet` and `shards` skew the label mix (or
 * not); `quantity`, `samples` and `size` skew how many samples each client holds, labels IID within each.
 */
export type PartitionSpec =
  | { kind: 'iid' }
  | { kind: 'dirichlet'; alpha: number }
  | { kind: 'shards'; perClient: number }
  | { kind: 'quantity'; beta: number }
  | { kind: 'samples'; perClient: number }
  | { kind: 'size'; growth: SizeGrowth };

function positiveNumber(text: string | undefined): number | undefined {
  const x = text === undefined ? NaN : Number(text);
  return Number.isFinite(x) && x > 0 ? x : undefined;
}

/**
 * Parses the text form of a partition:
 * - `iid`;
 * - `dirichlet:<alpha>` (alpha > 0; small alpha = few classes per client);
 * - `shards:<k>` (each client gets k label-sorted shards, so about k classes: McMahan et al.'s split);
 * - `quantity:<beta>` (beta > 0; client sizes from Dir(beta), small beta = very unequal sizes);
 * - `samples:<n>` (n ≥ 1; every client gets exactly n samples, the rest of the pool is unused);
 * - `size:linear`, `size:square` or `size:exponential` (fixed sizes growing with the client's index).
 *
 * {@link describePartition} gives the text back.
 *
 * @example
 * parsePartition('dirichlet:0.5'); // { kind: 'dirichlet', alpha: 0.5 }
 * parsePartition('size:square'); // { kind: 'size', growth: 'square' }
 */
export function parsePartition(text: string): PartitionSpec {
  if (text === 'iid') return { kind: 'iid' };
  const shards = /^shards:(\d+)$/.exec(text);
  if (shards && Number(shards[1]) >= 1) return { kind: 'shards', perClient: Number(shards[1]) };
  const alpha = positiveNumber(/^dirichlet:(.+)$/.exec(text)?.[1]);
  if (alpha !== undefined) return { kind: 'dirichlet', alpha };
  const beta = positiveNumber(/^quantity:(.+)$/.exec(text)?.[1]);
  if (beta !== undefined) return { kind: 'quantity', beta };
  const samples = /^samples:(\d+)$/.exec(text);
  const perClient = Number(samples?.[1]);
  if (samples && Number.isSafeInteger(perClient) && perClient >= 1) return { kind: 'samples', perClient };
  const growth = SIZE_GROWTHS.find((g) => text === `size:${g}`);
  if (growth) return { kind: 'size', growth };
  // JSON.stringify keeps the message on one line whatever the text holds.
  throw new FtlError(
    ErrorCode.InvalidConfig,
    `partition must be "iid", "dirichlet:<alpha>" with alpha > 0 (e.g. dirichlet:0.5), "shards:<k>" with k ≥ 1 (e.g. shards:2), ` +
      `"quantity:<beta>" with beta > 0 (e.g. quantity:0.5), "samples:<n>" with n ≥ 1 (e.g. samples:200) ` +
      `or "size:linear", "size:square" or "size:exponential" (got ${JSON.stringify(text)})`,
  );
}

/**
 * The text form of a partition, the one {@link parsePartition} reads: `parsePartition(describePartition(s))`
 * equals `s` for every valid spec.
 *
 * @example
 * describePartition({ kind: 'dirichlet', alpha: 0.5 }); // 'dirichlet:0.5'
 */
export function describePartition(spec: PartitionSpec): string {
  switch (spec.kind) {
    case 'iid':
      return 'iid';
    case 'dirichlet':
      return `dirichlet:${spec.alpha}`;
    case 'shards':
      return `shards:${spec.perClient}`;
    case 'quantity':
      return `quantity:${spec.beta}`;
    case 'samples':
      return `samples:${spec.perClient}`;
    case 'size':
      return `size:${spec.growth}`;
  }
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

/** Cuts `idx` into consecutive runs of the given sizes, each sorted. */
function cut(idx: Int32Array, sizes: readonly number[]): Int32Array[] {
  let start = 0;
  return sizes.map((size) => {
    const part = idx.slice(start, start + size).sort();
    start += size;
    return part;
  });
}

/**
 * A `quantity` draw redraws only the clients' proportions, a handful of gamma samples, so it can afford
 * far more draws than `dirichlet`: with a small beta most draws leave some client nearly empty (Dir(0.1)
 * over 10 clients gives one of them under 1/10,000 of the pool in most draws).
 */
const QUANTITY_DRAWS = 10_000;

function quantitySkew(n: number, beta: number, clients: number, rng: Rng, minPerClient: number): Int32Array[] {
  const idx = shuffleInPlace(range(n), rng);
  for (let attempt = 0; attempt < QUANTITY_DRAWS; attempt++) {
    const p = dirichlet(beta, clients, rng);
    // Round the cumulative shares, as `dirichlet` does per class, so the sizes add up to n exactly.
    const sizes: number[] = [];
    let start = 0;
    let acc = 0;
    for (let c = 0; c < clients; c++) {
      acc += p[c]!;
      const end = c === clients - 1 ? n : Math.round(acc * n);
      sizes.push(end - start);
      start = end;
    }
    if (sizes.every((s) => s >= minPerClient)) return cut(idx, sizes);
  }
  throw new FtlError(
    ErrorCode.InvalidConfig,
    `quantity:${beta} could not give each of ${clients} clients ${minPerClient} samples in ${QUANTITY_DRAWS} draws; raise beta or use fewer clients`,
  );
}

/** floor(a / b) for non-negative integers, exact where a float quotient is not: (7 / 55) · 55 < 7. */
function floorDiv(a: number, b: number): number {
  let q = Math.floor(a / b);
  if (q * b > a) q--;
  else if ((q + 1) * b <= a) q++;
  return q;
}

/**
 * Client sizes for `size:<growth>`, after flwr-datasets' Linear/Square/ExponentialPartitioner: client i
 * (from 0) weighs u(i) = i+1, (i+1)² or e^(i+1); it gets floor(n · u(i) / Σu) samples and the last (largest)
 * client also gets what the floors left over, so the sizes add up to n and never shrink with i. For linear
 * and square the floor is exact; flwr-datasets takes it of a float product, which can give a client one
 * sample less (55 samples on 10 linear clients: 6 for the seventh instead of 7).
 *
 * @example
 * sizeSkewSizes(1000, 4, 'square'); // [33, 133, 300, 534]
 */
export function sizeSkewSizes(n: number, clients: number, growth: SizeGrowth): number[] {
  let sizes: number[];
  if (growth === 'exponential') {
    // e^(i+1−clients) has the same ratios as e^(i+1) and cannot overflow for a large federation.
    const units = Array.from({ length: clients }, (_, i) => Math.exp(i + 1 - clients));
    const total = units.reduce((a, b) => a + b, 0);
    sizes = units.map((u) => Math.floor((u / total) * n));
  } else {
    const units = Array.from({ length: clients }, (_, i) => (growth === 'linear' ? i + 1 : (i + 1) ** 2));
    const total = units.reduce((a, b) => a + b, 0);
    sizes = units.map((u) => floorDiv(n * u, total));
  }
  sizes[clients - 1]! += n - sizes.reduce((a, b) => a + b, 0);
  return sizes;
}

/**
 * Divides sample indices among `clients` with a seeded generator, so every client computing it agrees:
 * - `iid` deals a shuffled pool evenly.
 * - `dirichlet:α` gives each class to the clients in proportions drawn from Dir(α), redrawing (up to
 *   100 times) until every client holds at least `minPerClient` samples.
 * - `shards:k` sorts the pool by label, cuts it into clients·k equal shards and deals k to each client.
 * - `quantity:β` draws the clients' shares of the pool from Dir(β) (quantity skew, as in Li et al.'s
 *   NIID-Bench, 2022) and deals a shuffled pool by those shares, so labels are IID within a client;
 *   it redraws the shares (up to 10,000 times) until every client holds at least `minPerClient`.
 * - `samples:n` gives every client exactly n samples of a shuffled pool and leaves the rest unused.
 * - `size:linear|square|exponential` deals a shuffled pool in the sizes of {@link sizeSkewSizes}: for
 *   1,000 samples and 4 clients, 100/200/300/400, 33/133/300/534 or 32/87/236/645.
 *
 * A kind that cannot give every client `minPerClient` samples throws an `INVALID_CONFIG` error saying
 * what to change.
 *
 * @returns one sorted index array per client, pairwise disjoint; for every kind but `samples` they
 *   cover every index exactly once.
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
  if (spec.kind === 'quantity') return quantitySkew(labels.length, spec.beta, clients, rng, minPerClient);
  if (spec.kind === 'samples') {
    const n = spec.perClient;
    if (n < minPerClient) {
      throw new FtlError(
        ErrorCode.InvalidConfig,
        `samples:${n} gives each client fewer than the ${minPerClient} samples it needs; use samples:${minPerClient} or more`,
      );
    }
    if (n * clients > labels.length) {
      throw new FtlError(
        ErrorCode.InvalidConfig,
        `samples:${n} needs ${n * clients} samples for ${clients} clients but the pool holds ${labels.length}; lower n or use fewer clients`,
      );
    }
    return cut(shuffleInPlace(range(labels.length), rng), new Array<number>(clients).fill(n));
  }
  if (spec.kind === 'size') {
    const sizes = sizeSkewSizes(labels.length, clients, spec.growth);
    // Sizes never shrink with the index, so client 0 holds the fewest.
    if (sizes[0]! < minPerClient) {
      throw new FtlError(
        ErrorCode.InvalidConfig,
        `size:${spec.growth} gives client 0 only ${sizes[0]} of ${labels.length} samples, fewer than ${minPerClient}; use fewer clients or a gentler growth (size:linear)`,
      );
    }
    return cut(shuffleInPlace(range(labels.length), rng), sizes);
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
