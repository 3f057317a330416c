import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { ErrorCode, FtlError } from '../errors.js';
import { describePartition, type PartitionSpec, parsePartition, partitionIndices, sizeSkewSizes, splitIndices } from './partition.js';

const labelsArb = fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 200, maxLength: 600 }).map((a) => Int32Array.from(a));

/** One text form of every kind, with parameters that suit up to 8 clients on 200 samples. */
const EVERY_KIND = [
  'iid',
  'dirichlet:0.5',
  'dirichlet:5',
  'shards:2',
  'quantity:0.5',
  'quantity:5',
  'samples:20',
  'size:linear',
  'size:square',
  'size:exponential',
];

const sorted = (parts: Int32Array[]) => parts.flatMap((x) => Array.from(x)).sort((a, b) => a - b);

/** The share of each class in each client: `counts[client][class]`. */
function classCounts(parts: Int32Array[], labels: Int32Array, numClasses: number): number[][] {
  return parts.map((p) => {
    const counts = new Array<number>(numClasses).fill(0);
    for (const i of p) counts[labels[i]!]!++;
    return counts;
  });
}

/** The largest share one class has in any client: 1/classes when the mix is even, up to 1 when skewed. */
function skew(parts: Int32Array[], labels: Int32Array): number {
  return Math.max(...classCounts(parts, labels, 10).map((counts) => Math.max(...counts) / counts.reduce((a, b) => a + b, 0)));
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs: number[]) => {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
};

function parseError(text: string): FtlError {
  try {
    parsePartition(text);
  } catch (err) {
    if (err instanceof FtlError) return err;
    throw err;
  }
  throw new Error(`parsePartition accepted ${JSON.stringify(text)}`);
}

describe('partitioning', () => {
  test('parts are disjoint; every kind but samples gives every sample to exactly one client', () => {
    fc.assert(
      fc.property(labelsArb, fc.integer({ min: 1, max: 8 }), fc.constantFrom(...EVERY_KIND), fc.nat(), (labels, clients, p, seed) => {
        const spec = parsePartition(p);
        // No floor here: size:exponential leaves its first clients empty on 200 samples, and the floor has its own tests.
        const parts = partitionIndices(labels, 10, spec, clients, seed, 0);
        expect(parts).toHaveLength(clients);
        const all = sorted(parts);
        expect(new Set(all).size).toBe(all.length);
        if (spec.kind === 'samples') {
          expect(parts.every((x) => x.length === spec.perClient)).toBe(true);
          expect(all.every((i) => i >= 0 && i < labels.length)).toBe(true);
        } else {
          expect(all).toEqual(Array.from({ length: labels.length }, (_, i) => i));
        }
      }),
      { numRuns: 100 },
    );
  });

  test('every part is sorted, as a subset of a dataset keeps its order', () => {
    const labels = Int32Array.from({ length: 1000 }, (_, i) => i % 10);
    for (const p of EVERY_KIND) {
      for (const part of partitionIndices(labels, 10, parsePartition(p), 5, 3)) {
        expect(Array.from(part)).toEqual(Array.from(part).sort((a, b) => a - b));
      }
    }
  });

  test.each(EVERY_KIND)('%s is reproducible from the seed and changes with it', (p) => {
    const labels = Int32Array.from({ length: 1000 }, (_, i) => i % 10);
    const spec = parsePartition(p);
    const a = partitionIndices(labels, 10, spec, 5, 7);
    expect(partitionIndices(labels, 10, spec, 5, 7)).toEqual(a);
    expect(partitionIndices(labels, 10, spec, 5, 8)).not.toEqual(a);
  });

  test('a seed gives the same partition in every version, so a past run can be repeated', () => {
    // FNV-1a over each part's length and indices. Those of iid, dirichlet and shards were taken before quantity,
    // samples and size existed: adding a kind must not move the others.
    const fnv = (parts: Int32Array[]) => {
      let h = 0x811c9dc5;
      for (const p of parts) for (const x of [p.length, ...p]) h = Math.imul(h ^ x, 0x01000193) >>> 0;
      return h.toString(16);
    };
    const labels = Int32Array.from({ length: 1000 }, (_, i) => (i * 7) % 10);
    const hashes = Object.fromEntries(EVERY_KIND.map((p) => [p, fnv(partitionIndices(labels, 10, parsePartition(p), 5, 42))]));
    expect(hashes).toEqual({
      iid: '8f922595',
      'dirichlet:0.5': 'd092a59d',
      'dirichlet:5': '6e05196f',
      'shards:2': '96a07457',
      'quantity:0.5': '7665bc1b',
      'quantity:5': 'd0f51511',
      'samples:20': '761fd699',
      'size:linear': 'b3a63e2f',
      'size:square': 'f77f1a93',
      'size:exponential': '106b7641',
    });
  });

  test('small alpha skews the class mix; iid keeps it even', () => {
    const labels = Int32Array.from({ length: 5000 }, (_, i) => i % 10);
    expect(skew(partitionIndices(labels, 10, { kind: 'iid' }, 5, 1), labels)).toBeLessThan(0.15);
    expect(skew(partitionIndices(labels, 10, { kind: 'dirichlet', alpha: 0.1 }, 5, 1), labels)).toBeGreaterThan(0.4);
  });

  test.each(['quantity:0.5', 'samples:400', 'size:linear'])('%s keeps the class mix of every client even', (p) => {
    // 10 even classes: a client of ≥ 300 IID samples holds each at a share of 0.1 ± 0.018 (one standard
    // deviation), so 0.2 is over 5 deviations away; dirichlet:0.1 passes 0.4 (above).
    const labels = Int32Array.from({ length: 5000 }, (_, i) => i % 10);
    const parts = partitionIndices(labels, 10, parsePartition(p), 5, 1, 300);
    expect(skew(parts, labels)).toBeLessThan(0.2);
  });

  test('shards:2 gives each client at most 3 classes (2 shards, a shard may straddle a class boundary)', () => {
    const labels = Int32Array.from({ length: 5000 }, (_, i) => i % 10);
    for (const part of partitionIndices(labels, 10, parsePartition('shards:2'), 10, 4)) {
      expect(new Set(Array.from(part, (i) => labels[i])).size).toBeLessThanOrEqual(3);
      expect(part.length).toBe(500);
    }
  });

  test.each([
    ['size:linear', [100, 200, 300, 400]],
    ['size:square', [33, 133, 300, 534]],
    ['size:exponential', [32, 87, 236, 645]],
  ])('%s gives 1,000 samples to 4 clients as %j', (p, sizes) => {
    const labels = Int32Array.from({ length: 1000 }, (_, i) => i % 10);
    expect(partitionIndices(labels, 10, parsePartition(p), 4, 5).map((x) => x.length)).toEqual(sizes);
  });

  test('size sizes follow the growth: 1…M units for linear, the floors summing to the pool', () => {
    expect(sizeSkewSizes(55, 10, 'linear')).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(sizeSkewSizes(385, 10, 'square')).toEqual([1, 4, 9, 16, 25, 36, 49, 64, 81, 100]);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 100_000 }),
        fc.integer({ min: 1, max: 1000 }),
        fc.constantFrom('linear', 'square', 'exponential' as const),
        (n, clients, growth) => {
          const sizes = sizeSkewSizes(n, clients, growth);
          expect(sizes).toHaveLength(clients);
          expect(sizes.reduce((a, b) => a + b, 0)).toBe(n);
          expect(sizes.every((s, i) => Number.isInteger(s) && s >= 0 && (i === 0 || s >= sizes[i - 1]!))).toBe(true);
        },
      ),
    );
  });

  test('samples:n gives every client exactly n samples and leaves the rest of the pool unused', () => {
    const labels = Int32Array.from({ length: 1000 }, (_, i) => i % 10);
    const parts = partitionIndices(labels, 10, parsePartition('samples:150'), 6, 2);
    expect(parts.map((p) => p.length)).toEqual([150, 150, 150, 150, 150, 150]);
    expect(new Set(sorted(parts)).size).toBe(900);
  });

  test('samples:n refuses a pool smaller than n × clients, and n below the floor', () => {
    const labels = new Int32Array(1000);
    expect(() => partitionIndices(labels, 10, parsePartition('samples:200'), 6, 1)).toThrow(
      'samples:200 needs 1200 samples for 6 clients but the pool holds 1000; lower n or use fewer clients',
    );
    expect(() => partitionIndices(labels, 10, parsePartition('samples:5'), 6, 1)).toThrow(
      'samples:5 gives each client fewer than the 10 samples it needs; use samples:10 or more',
    );
    expect(partitionIndices(labels, 10, parsePartition('samples:5'), 6, 1, 5).map((p) => p.length)).toEqual([5, 5, 5, 5, 5, 5]);
  });

  test('size: refuses a growth that leaves client 0 under the floor', () => {
    // 10 clients: client 0 gets e/Σe^i ≈ 0.008 % of the pool, 0 of 10,000 samples.
    expect(() => partitionIndices(new Int32Array(10_000), 10, parsePartition('size:exponential'), 10, 1)).toThrow(
      'size:exponential gives client 0 only 0 of 10000 samples, fewer than 10; use fewer clients or a gentler growth (size:linear)',
    );
  });

  test('quantity:β redraws until every client holds minPerClient, and its sizes are unequal', () => {
    // Dir(0.2) over 10 clients leaves some client under 1 % of the pool in most draws, so without the
    // redraw most of these seeds would break the floor.
    const labels = Int32Array.from({ length: 2000 }, (_, i) => i % 10);
    for (const seed of [1, 2, 3, 4, 5]) {
      const sizes = partitionIndices(labels, 10, parsePartition('quantity:0.2'), 10, seed, 20).map((p) => p.length);
      expect(Math.min(...sizes)).toBeGreaterThanOrEqual(20);
      expect(Math.max(...sizes)).toBeGreaterThan(2 * Math.min(...sizes));
    }
  });

  test('quantity:β says so when it cannot give every client minPerClient', () => {
    // Dir(0.01) over 10 clients puts nearly the whole pool on one client: all ten get 1 % in ~10⁻¹³ of draws.
    expect(() => partitionIndices(new Int32Array(1000), 10, parsePartition('quantity:0.01'), 10, 1)).toThrow(
      'quantity:0.01 could not give each of 10 clients 10 samples in 10000 draws; raise beta or use fewer clients',
    );
  });

  test('splitIndices holds out the requested share, disjoint from the rest', () => {
    const [a, b] = splitIndices(1000, 0.15, 3);
    expect(b.length).toBe(150);
    expect(a.length).toBe(850);
    const inA = new Set(a);
    expect(Array.from(b).some((i) => inA.has(i))).toBe(false);
  });

  test('refuses more clients than the samples can feed', () => {
    expect(() => partitionIndices(new Int32Array(50), 10, { kind: 'iid' }, 6, 1)).toThrow(/50 samples cannot give 6 clients 10 samples each/);
  });
});

describe('the law of the Dirichlet partitions', () => {
  // A client's share of Dir(α) over N clients is Beta(α, (N−1)α): mean 1/N, variance (1/N)(1−1/N)/(Nα+1).
  // minPerClient is 0 so no draw is refused: any floor conditions the draw (with α = 0.1 some client gets
  // under 1/10,000 of a pool in most draws) and the shares would no longer follow Dir(α).
  //
  // Tolerance. Each statistic is a mean of i.i.d. bounded terms (one per independent Dirichlet draw), so by
  // the central limit theorem it lies within 4 standard errors of its expectation but with probability
  // ≈ 6·10⁻⁵; the standard error is the terms' sample deviation / √count (for the per-client means, the
  // known deviation √variance / √count). The partition rounds the cumulative shares to whole samples, so
  // a share is off by at most 1/m (m samples divided); that moves (s − 1/N)² by at most
  // (1/m)(2|p − 1/N| + 1/m), on average ≤ (1/m)(2√variance + 1/m) by Cauchy–Schwarz, which is added to the
  // variance's tolerance. The seeds are fixed, so the test gives the same answer on every run.
  const N = 10;
  const Z = 4;
  const expectedVariance = (alpha: number) => ((1 / N) * (1 - 1 / N)) / (N * alpha + 1);
  const roundingSlack = (alpha: number, m: number) => (1 / m) * (2 * Math.sqrt(expectedVariance(alpha)) + 1 / m);

  /** Checks shares[draw][client] against Dir(α) and returns the estimated variance. */
  function checkShares(shares: number[][], alpha: number, m: number): number {
    const variance = expectedVariance(alpha);
    for (let c = 0; c < N; c++) {
      const mine = shares.map((s) => s[c]!);
      expect(Math.abs(mean(mine) - 1 / N)).toBeLessThanOrEqual(Z * Math.sqrt(variance / mine.length));
    }
    // One term per draw: the mean square deviation of its N shares from 1/N, whose expectation is the variance.
    const terms = shares.map((s) => mean(s.map((x) => (x - 1 / N) ** 2)));
    const estimate = mean(terms);
    expect(Math.abs(estimate - variance)).toBeLessThanOrEqual((Z * sd(terms)) / Math.sqrt(terms.length) + roundingSlack(alpha, m));
    return estimate;
  }

  test('dirichlet:α gives each class to the clients with the mean and variance of Dir(α); smaller α, larger variance', () => {
    // 20 classes × 5,000 samples on 10 clients, 10 seeds: 200 independent draws of a class's shares.
    const classes = 20;
    const perClass = 5000;
    const labels = Int32Array.from({ length: classes * perClass }, (_, i) => i % classes);
    const estimates = [0.1, 1, 10].map((alpha) => {
      const shares: number[][] = [];
      for (let seed = 11; seed <= 20; seed++) {
        const counts = classCounts(partitionIndices(labels, classes, { kind: 'dirichlet', alpha }, N, seed, 0), labels, classes);
        for (let k = 0; k < classes; k++) shares.push(counts.map((row) => row[k]! / perClass));
      }
      return checkShares(shares, alpha, perClass);
    });
    expect(estimates[0]!).toBeGreaterThan(estimates[1]!);
    expect(estimates[1]!).toBeGreaterThan(estimates[2]!);
  });

  test('quantity:β gives the clients shares of the pool with the mean and variance of Dir(β); smaller β, larger variance', () => {
    // 5,000 samples on 10 clients, 400 seeds: 400 independent draws of the clients' shares.
    const n = 5000;
    const labels = Int32Array.from({ length: n }, (_, i) => i % 10);
    const estimates = [0.1, 1, 10].map((beta) => {
      const shares = Array.from({ length: 400 }, (_, seed) =>
        partitionIndices(labels, 10, { kind: 'quantity', beta }, N, 1000 + seed, 0).map((p) => p.length / n),
      );
      return checkShares(shares, beta, n);
    });
    expect(estimates[0]!).toBeGreaterThan(estimates[1]!);
    expect(estimates[1]!).toBeGreaterThan(estimates[2]!);
  });
});

describe('partition text', () => {
  const ACCEPTED =
    'partition must be "iid", "dirichlet:<alpha>" with alpha > 0 (e.g. dirichlet:0.5), "shards:<k>" with k ≥ 1 (e.g. shards:2), ' +
    '"quantity:<beta>" with beta > 0 (e.g. quantity:0.5), "samples:<n>" with n ≥ 1 (e.g. samples:200) ' +
    'or "size:linear", "size:square" or "size:exponential"';

  test.each([
    ['iid', { kind: 'iid' }],
    ['dirichlet:0.5', { kind: 'dirichlet', alpha: 0.5 }],
    ['shards:2', { kind: 'shards', perClient: 2 }],
    ['quantity:0.5', { kind: 'quantity', beta: 0.5 }],
    ['samples:200', { kind: 'samples', perClient: 200 }],
    ['size:linear', { kind: 'size', growth: 'linear' }],
    ['size:square', { kind: 'size', growth: 'square' }],
    ['size:exponential', { kind: 'size', growth: 'exponential' }],
  ] satisfies [string, PartitionSpec][])('reads %j, and describes it back the same', (text, spec) => {
    expect(parsePartition(text)).toEqual(spec);
    expect(describePartition(spec)).toBe(text);
  });

  test('parsePartition reads back what describePartition writes', () => {
    const positive = fc.double({ min: Number.MIN_VALUE, max: 1e300, noNaN: true });
    const count = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
    const spec: fc.Arbitrary<PartitionSpec> = fc.oneof(
      fc.constant({ kind: 'iid' as const }),
      positive.map((alpha) => ({ kind: 'dirichlet' as const, alpha })),
      count.map((perClient) => ({ kind: 'shards' as const, perClient })),
      positive.map((beta) => ({ kind: 'quantity' as const, beta })),
      count.map((perClient) => ({ kind: 'samples' as const, perClient })),
      fc.constantFrom('linear', 'square', 'exponential' as const).map((growth) => ({ kind: 'size' as const, growth })),
    );
    fc.assert(
      fc.property(spec, (s) => {
        expect(parsePartition(describePartition(s))).toEqual(s);
      }),
    );
  });

  test.each([
    'quantity:0',
    'quantity:-1',
    'quantity:abc',
    'quantity:',
    'samples:-1',
    'samples:0',
    'samples:1.5',
    'samples:',
    'size:cubic',
    'size:',
    'size',
    'dirichlet:',
    'dirichlet',
    'dirichlet:0',
    'dirichlet:-1',
    'dirichlet:abc',
    'shards',
    'shards:0',
    'IID',
    '',
    'iid\nshards:2',
  ])('refuses %j on one line that lists every accepted form', (text) => {
    const err = parseError(text);
    expect(err.code).toBe(ErrorCode.InvalidConfig);
    expect(err.message).toBe(`${ACCEPTED} (got ${JSON.stringify(text)})`);
    expect(err.message).not.toContain('\n');
  });
});

describe('client shards', () => {
  test('limit cuts the federation pool to that many samples before partitioning', async () => {
    const { loadClientShard } = await import('./shard.js');
    const parts = [0, 1, 2].map((index) => loadClientShard({ dataset: 'mnist', partition: { kind: 'iid' }, clients: 3, index, seed: 1, limit: 900 }));
    expect(parts.reduce((s, p) => s + p.train.n + p.val.n, 0)).toBe(900);
  });
});
