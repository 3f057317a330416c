import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { WeightSpec } from '../codec/weights.js';
import { carryOver, remapByName, remapStrategyState, unfrozenLayerCount, type FineTuning } from './fine-tuning.js';

const ft = (over: Partial<FineTuning>): FineTuning => ({ mode: 'feature-extraction', layers: 1, everyRounds: 1, backboneLrFactor: 1, ...over });
const spec = (name: string, ...shape: number[]): WeightSpec => ({ name, shape, dtype: 'float32' });

describe('fine-tuning schedule', () => {
  test.each([
    ['feature-extraction trains no backbone layer, whatever the round', ft({ layers: 3 }), [0, 0, 0, 0, 0, 0]],
    ['partial trains its layers from round 1 on', ft({ mode: 'partial', layers: 2 }), [2, 2, 2, 2, 2, 2]],
    ['gradual every round: head only, then one more layer per round up to the cap', ft({ mode: 'gradual', layers: 2 }), [0, 1, 2, 2, 2, 2]],
    ['gradual every 2 rounds', ft({ mode: 'gradual', layers: 3, everyRounds: 2 }), [0, 0, 1, 1, 2, 2]],
    ['gradual with a cap of 1', ft({ mode: 'gradual', layers: 1, everyRounds: 3 }), [0, 0, 0, 1, 1, 1]],
  ])('%s', (_, settings, expected) => {
    expect([1, 2, 3, 4, 5, 6].map((r) => unfrozenLayerCount(settings, r))).toEqual(expected);
  });

  test('gradual never shrinks, never exceeds its cap, and adds at most one layer per change', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 40 }), (layers, everyRounds, round) => {
        const s = ft({ mode: 'gradual', layers, everyRounds });
        const now = unfrozenLayerCount(s, round);
        const next = unfrozenLayerCount(s, round + 1);
        expect(now).toBeGreaterThanOrEqual(0);
        expect(next - now).toBeGreaterThanOrEqual(0);
        expect(next - now).toBeLessThanOrEqual(1);
        expect(next).toBeLessThanOrEqual(layers);
      }),
    );
  });
});

describe('remapping weights to a new trainable set', () => {
  const head = [spec('head_hidden_1/kernel', 2, 2), spec('head_output/bias', 1)];
  const wider = [spec('conv2/kernel', 3), spec('conv2/bias', 1), ...head];

  test('the global model keeps its values by name; new tensors start from the fresh (pretrained) ones', () => {
    const previous = { specs: head, values: Float32Array.from([1, 2, 3, 4, 5]) };
    const fresh = { specs: wider, values: Float32Array.from([10, 11, 12, 13, 0, 0, 0, 0, 0]) };
    const next = carryOver(previous, fresh);
    expect(next.specs).toEqual(wider);
    expect(Array.from(next.values)).toEqual([10, 11, 12, 13, 1, 2, 3, 4, 5]);
  });

  test('a tensor whose shape changed is not carried over', () => {
    const out = remapByName(Float32Array.from([1, 2]), [spec('a', 2)], [spec('a', 3)]);
    expect(Array.from(out)).toEqual([0, 0, 0]);
  });

  test('server optimizer moments are extended with zeros for new tensors; state of another size is reset', () => {
    const state = { m: Float32Array.from([1, 2, 3, 4, 5]), v: Float32Array.from([9, 9, 9, 9, 9]), odd: Float32Array.from([7]) };
    const next = remapStrategyState(state, head, wider);
    expect(Object.keys(next).sort()).toEqual(['m', 'v']);
    expect(Array.from(next['m']!)).toEqual([0, 0, 0, 0, 1, 2, 3, 4, 5]);
    expect(Array.from(next['v']!)).toEqual([0, 0, 0, 0, 9, 9, 9, 9, 9]);
  });
});
