import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { capCounts, DEFAULT_TRUST, lowerMedian, screenUpdates, type ScreenedUpdate } from './update-screen.js';

const global = Float32Array.from({ length: 50 }, (_, i) => Math.sin(i));
/** An honest-looking update: the global model moved by a small step of size about `step`. */
function honest(id: string, step: number, n = 100, seed = 1): ScreenedUpdate {
  return { clientId: id, values: global.map((v, i) => v + step * Math.cos(i * seed)), numExamples: n, loss: 0.5 };
}

describe('screening a round’s updates', () => {
  test('a −10× update with a huge sample claim is excluded among honest ones; the claim cannot buy weight', () => {
    const updates = [
      honest('a', 0.05, 120, 1),
      honest('b', 0.04, 80, 2),
      honest('c', 0.06, 100, 3),
      { clientId: 'x', values: global.map((v) => -10 * v), numExamples: 1_000_000, loss: 0 },
    ];
    const { kept, excluded } = screenUpdates(global, updates, DEFAULT_TRUST);
    expect(kept.map((u) => u.clientId)).toEqual(['a', 'b', 'c']);
    expect(excluded).toEqual([expect.objectContaining({ clientId: 'x', reason: 'outlier-update' })]);
    expect(excluded[0]!.message).toMatch(/moves the model by .* more than 4 × the round's median move/);
  });

  test('a ×1e30 update is excluded for its values even when it is the only one in the round', () => {
    const attack = { clientId: 'x', values: global.map((v) => v * 1e30), numExamples: 1, loss: 0 };
    const { kept, excluded } = screenUpdates(global, [attack], DEFAULT_TRUST);
    expect(kept).toEqual([]);
    expect(excluded[0]).toMatchObject({ clientId: 'x', reason: 'extreme-value' });
  });

  test('with two updates the smaller move is the reference, so a far-off one cannot hide in the average', () => {
    const far = { clientId: 'x', values: global.map((v) => v * 3), numExamples: 10, loss: 0 };
    expect(screenUpdates(global, [honest('a', 0.05), far], DEFAULT_TRUST).excluded.map((e) => e.clientId)).toEqual(['x']);
  });

  test('a single update is compared with the previous round’s reference when there is one', () => {
    const big = honest('a', 1);
    expect(screenUpdates(global, [big], DEFAULT_TRUST).kept).toHaveLength(1);
    expect(screenUpdates(global, [big], DEFAULT_TRUST, 0.01).excluded.map((e) => e.clientId)).toEqual(['a']);
  });

  test('honest rounds with moves within the bound keep every update (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.double({ min: 0.01, max: 0.035, noNaN: true }), fc.integer({ min: 1, max: 500 })), { minLength: 1, maxLength: 12 }),
        (raw) => {
          const updates = raw.map(([step, n], i) => honest(`c${i}`, step, n, i + 1));
          const { kept, excluded } = screenUpdates(global, updates, DEFAULT_TRUST);
          expect(excluded).toEqual([]);
          expect(kept.map((u) => u.clientId)).toEqual(updates.map((u) => u.clientId));
        },
      ),
      { numRuns: 50 },
    );
  });

  test('a policy of zeros screens nothing', () => {
    const off = { normBound: 0, maxAbsValue: 0, weightCap: 0 };
    const updates = [honest('a', 0.05, 10), { clientId: 'x', values: global.map((v) => v * 1e30), numExamples: 1e6, loss: 0 }];
    expect(screenUpdates(global, updates, off).kept.map((u) => [u.clientId, u.numExamples])).toEqual([
      ['a', 10],
      ['x', 1e6],
    ]);
  });
});

describe('capping sample counts', () => {
  test('counts above cap × the median are cut to it; the others are kept as they are', () => {
    expect(capCounts([100, 120, 80, 1_000_000], 4)).toEqual([100, 120, 80, 400]);
    expect(capCounts([100, 120, 80, 1_000_000], 0)).toEqual([100, 120, 80, 1_000_000]);
    expect(lowerMedian([5, 1])).toBe(1);
  });
});
