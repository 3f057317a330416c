import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { parsePartition, partitionIndices, splitIndices } from './partition.js';

const labelsArb = fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 200, maxLength: 600 }).map((a) => Int32Array.from(a));

describe('partitioning', () => {
  test('every sample goes to exactly one client, for iid and dirichlet', () => {
    fc.assert(
      fc.property(
        labelsArb,
        fc.integer({ min: 1, max: 8 }),
        fc.constantFrom('iid', 'dirichlet:0.5', 'dirichlet:5', 'shards:2'),
        fc.nat(),
        (labels, clients, p, seed) => {
          const parts = partitionIndices(labels, 10, parsePartition(p), clients, seed);
          expect(parts).toHaveLength(clients);
          const all = parts.flatMap((x) => Array.from(x)).sort((a, b) => a - b);
          expect(all).toEqual(Array.from({ length: labels.length }, (_, i) => i));
        },
      ),
      { numRuns: 40 },
    );
  });

  test('is reproducible from the seed and changes with it', () => {
    const labels = Int32Array.from({ length: 1000 }, (_, i) => i % 10);
    const a = partitionIndices(labels, 10, { kind: 'dirichlet', alpha: 0.5 }, 5, 7);
    expect(partitionIndices(labels, 10, { kind: 'dirichlet', alpha: 0.5 }, 5, 7)).toEqual(a);
    expect(partitionIndices(labels, 10, { kind: 'dirichlet', alpha: 0.5 }, 5, 8)).not.toEqual(a);
  });

  test('small alpha skews the class mix; iid keeps it even', () => {
    const labels = Int32Array.from({ length: 5000 }, (_, i) => i % 10);
    const skew = (parts: Int32Array[]) =>
      Math.max(
        ...parts.map((p) => {
          const counts = new Array(10).fill(0);
          p.forEach((i) => counts[labels[i]!]++);
          return Math.max(...counts) / p.length;
        }),
      );
    expect(skew(partitionIndices(labels, 10, { kind: 'iid' }, 5, 1))).toBeLessThan(0.15);
    expect(skew(partitionIndices(labels, 10, { kind: 'dirichlet', alpha: 0.1 }, 5, 1))).toBeGreaterThan(0.4);
  });

  test('shards:2 gives each client at most 3 classes (2 shards, a shard may straddle a class boundary)', () => {
    const labels = Int32Array.from({ length: 5000 }, (_, i) => i % 10);
    for (const part of partitionIndices(labels, 10, parsePartition('shards:2'), 10, 4)) {
      expect(new Set(Array.from(part, (i) => labels[i])).size).toBeLessThanOrEqual(3);
      expect(part.length).toBe(500);
    }
  });

  test('splitIndices holds out the requested share, disjoint from the rest', () => {
    const [a, b] = splitIndices(1000, 0.15, 3);
    expect(b.length).toBe(150);
    expect(a.length).toBe(850);
    const inA = new Set(a);
    expect(Array.from(b).some((i) => inA.has(i))).toBe(false);
  });

  test.each([['dirichlet'], ['dirichlet:0'], ['dirichlet:-1'], ['dirichlet:abc'], ['shards'], ['shards:0']])('rejects partition %j', (text) => {
    expect(() => parsePartition(text)).toThrow(
      `partition must be "iid", "dirichlet:<alpha>" with alpha > 0 (e.g. dirichlet:0.5) or "shards:<k>" with k ≥ 1 (got "${text}")`,
    );
  });

  test('refuses more clients than the samples can feed', () => {
    expect(() => partitionIndices(new Int32Array(50), 10, { kind: 'iid' }, 6, 1)).toThrow(/50 samples cannot give 6 clients 10 samples each/);
  });
});

describe('client shards', () => {
  test('limit cuts the federation pool to that many samples before partitioning', async () => {
    const { loadClientShard } = await import('./shard.js');
    const parts = [0, 1, 2].map((index) => loadClientShard({ dataset: 'mnist', partition: { kind: 'iid' }, clients: 3, index, seed: 1, limit: 900 }));
    expect(parts.reduce((s, p) => s + p.train.n + p.val.n, 0)).toBe(900);
  });
});
