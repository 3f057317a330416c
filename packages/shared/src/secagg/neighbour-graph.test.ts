import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { expectFtlError } from '../../test-support/expect-ftl-error.js';
import { ErrorCode } from '../errors.js';
import { graphDegree, neighbourGraph } from './neighbour-graph.js';
import { checkThreshold, defaultThreshold } from './threshold.js';

const ids = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

describe('the SecAgg+ neighbour graph', () => {
  test('is k-regular (k + 1 when k and n are both odd), symmetric and without self-links', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 60 }), fc.integer({ min: 2, max: 64 }), fc.integer(), (n, k, seed) => {
        const graph = neighbourGraph(ids(n), k, seed);
        const degree = graphDegree(n, k);
        expect(degree).toBe(k >= n - 1 ? n - 1 : k % 2 === 1 && n % 2 === 1 ? k + 1 : k);
        expect(graph.size).toBe(n);
        for (const [id, neighbours] of graph) {
          expect(neighbours).toHaveLength(degree);
          expect(neighbours).not.toContain(id);
          expect(new Set(neighbours).size).toBe(neighbours.length);
          for (const v of neighbours) expect(graph.get(v)).toContain(id);
        }
      }),
      { numRuns: 60 },
    );
  });

  test('is the complete graph when k ≥ n − 1 (plain SecAgg)', () => {
    const graph = neighbourGraph(ids(6), 9, 1);
    for (const [id, neighbours] of graph) expect(neighbours).toEqual(ids(6).filter((v) => v !== id));
  });

  test('repeats with its seed, and another round’s seed gives another graph', () => {
    const a = neighbourGraph(ids(40), 6, 11);
    expect(neighbourGraph(ids(40), 6, 11)).toEqual(a);
    expect(neighbourGraph(ids(40), 6, 12)).not.toEqual(a);
  });

  test('refuses k < 2 and fewer than 2 sites', () => {
    expectFtlError(() => graphDegree(10, 1), ErrorCode.InvalidConfig, /neighbours must be an integer ≥ 2/);
    expectFtlError(() => graphDegree(1, 2), ErrorCode.InvalidConfig, /at least 2 sites/);
  });
});

describe('the threshold', () => {
  test.each([
    [2, 2],
    [3, 2],
    [10, 7],
    [11, 8],
    [50, 34],
  ])('defaults to ⌈2m/3⌉, at least a majority, for m = %i holders: %i', (m, t) => {
    expect(defaultThreshold(m)).toBe(t);
    expect(() => checkThreshold(t, m)).not.toThrow();
  });

  test('must be a majority of the holders and at most all of them', () => {
    expectFtlError(
      () => checkThreshold(5, 10),
      ErrorCode.InvalidConfig,
      /secureAggregation.threshold must be an integer in \[6, 10\] for 10 holders/,
    );
    expectFtlError(() => checkThreshold(11, 10), ErrorCode.InvalidConfig, /in \[6, 10\]/);
  });
});
