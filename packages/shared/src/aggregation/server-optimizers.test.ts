import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { ErrorCode } from '../errors.js';
import { adaptiveStep, momentumStep, type ServerOptimizerState } from './server-optimizers.js';
import { expectFtlError } from '../../test-support/expect-ftl-error.js';

const v = (...xs: number[]) => Float32Array.from(xs);
const vector = (d: number) => fc.float32Array({ minLength: d, maxLength: d, min: -1e3, max: 1e3, noNaN: true, noDefaultInfinity: true });
const pair = fc.integer({ min: 1, max: 20 }).chain((d) => fc.record({ global: vector(d), average: vector(d) }));

function expectClose(actual: ArrayLike<number>, expected: readonly number[], digits = 6): void {
  expect(actual.length).toBe(expected.length);
  expected.forEach((e, i) => expect(actual[i]).toBeCloseTo(e, digits));
}

const hp = { eta: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-3 };

describe('adaptiveStep', () => {
  test('FedAdam: two hand-computed steps, the second from the updated state', () => {
    const state: ServerOptimizerState = {};
    // Δ = [1, 3] − [0, 1] = [1, 2]; m = 0.1·Δ = [0.1, 0.2]; v = 0.01·Δ² = [0.01, 0.04]; √v = [0.1, 0.2]
    // step = 0.1·[0.1 / 0.101, 0.2 / 0.201] = [0.0990099, 0.0995025]
    expectClose(adaptiveStep('adam', v(0, 1), v(1, 3), state, hp), [0.0990099, 1.0995025]);
    expectClose(state.m!, [0.1, 0.2]);
    expectClose(state.v!, [0.01, 0.04]);
    // Same Δ again: m = 0.9·[0.1, 0.2] + 0.1·[1, 2] = [0.19, 0.38]; v = 0.99·[0.01, 0.04] + 0.01·[1, 4] = [0.0199, 0.0796]
    // √v = [0.1410674, 0.2821347]; step = 0.1·[0.19 / 0.1420674, 0.38 / 0.2831347] = [0.1337394, 0.1342117]
    expectClose(adaptiveStep('adam', v(0, 1), v(1, 3), state, hp), [0.1337394, 1.1342117]);
    expectClose(state.m!, [0.19, 0.38]);
    expectClose(state.v!, [0.0199, 0.0796]);
  });

  test('FedYogi: v moves by (1 − β2)·Δ² towards Δ², hand-computed', () => {
    // Δ² = [1, 4]; v − Δ² = [2, −3.99] so v = [3 − 0.01·1, 0.01 + 0.01·4] = [2.99, 0.05] (Adam would give [2.98, 0.0499])
    // m = [0.1, 0.2]; step = 0.1·[0.1 / (1.7291616 + 0.001), 0.2 / (0.2236068 + 0.001)] = [0.0057798, 0.0890445]
    const state: ServerOptimizerState = { v: v(3, 0.01) };
    expectClose(adaptiveStep('yogi', v(0, 1), v(1, 3), state, hp), [0.0057798, 1.0890445]);
    expectClose(state.v!, [2.99, 0.05]);
  });

  test('FedAdagrad: v sums Δ², hand-computed', () => {
    // v = Δ² = [1, 4]; m = [0.1, 0.2]; step = 0.1·[0.1 / 1.001, 0.2 / 2.001] = [0.0099900, 0.0099950]
    const state: ServerOptimizerState = {};
    expectClose(adaptiveStep('adagrad', v(0, 1), v(1, 3), state, hp), [0.00999, 1.009995]);
    expectClose(state.v!, [1, 4]);
    // Second step: v = [2, 8], m = [0.19, 0.38]; step = 0.1·[0.19 / (1.4142136 + 0.001), 0.38 / (2.8284271 + 0.001)] = [0.0134256, 0.0134303]
    expectClose(adaptiveStep('adagrad', v(0, 1), v(1, 3), state, hp), [0.0134256, 1.0134303]);
  });

  test.each([['adam' as const], ['yogi' as const], ['adagrad' as const]])('%s: the first step moves every coordinate towards the average', (kind) => {
    fc.assert(
      fc.property(pair, ({ global, average }) => {
        const out = adaptiveStep(kind, global, average, {}, hp);
        out.forEach((x, i) => {
          const toward = Math.sign(average[i]! - global[i]!);
          expect(Math.sign(x - global[i]!) === toward || x === global[i]).toBe(true);
        });
      }),
    );
  });

  test('updates the state arrays in place, and leaves them alone when the call is refused', () => {
    const state: ServerOptimizerState = {};
    adaptiveStep('adam', v(0), v(1), state, hp);
    const { m, v: second } = state;
    adaptiveStep('adam', v(0), v(1), state, hp);
    expect(state.m).toBe(m);
    expect(state.v).toBe(second);
    const before = [Array.from(state.m!), Array.from(state.v!)];
    expect(() => adaptiveStep('adam', v(0), v(1), state, { ...hp, tau: 0 })).toThrow();
    expect([Array.from(state.m!), Array.from(state.v!)]).toEqual(before);
  });
});

describe('momentumStep', () => {
  test('with momentum 0 and lr 1 it is FedAvg: the new global is the average', () => {
    fc.assert(
      fc.property(pair, ({ global, average }) => {
        const out = momentumStep(global, average, { m: new Float32Array(global.length).fill(7) }, { lr: 1, momentum: 0 });
        out.forEach((x, i) => expect(Math.abs(x - average[i]!)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(average[i]!))));
      }),
    );
  });

  test('two hand-computed steps with momentum 0.9 and lr 0.5', () => {
    const state: ServerOptimizerState = {};
    const o = { lr: 0.5, momentum: 0.9 };
    // Δ = [1, −2]; m = Δ; global = 0.5·m = [0.5, −1]
    const first = momentumStep(v(0, 0), v(1, -2), state, o);
    expectClose(first, [0.5, -1]);
    const m = state.m;
    // Δ = [0.5, −1]; m = 0.9·[1, −2] + Δ = [1.4, −2.8]; global = [0.5, −1] + 0.5·m = [1.2, −2.4]
    expectClose(momentumStep(first, v(1, -2), state, o), [1.2, -2.4]);
    expectClose(state.m!, [1.4, -2.8]);
    expect(state.m).toBe(m);
  });
});

describe('errors', () => {
  const mo = { lr: 1, momentum: 0.9 };
  test.each([
    ['lr 0', () => momentumStep(v(0), v(1), {}, { ...mo, lr: 0 }), ErrorCode.InvalidConfig, /^lr must be > 0 and finite \(got 0\)$/],
    [
      'an infinite lr',
      () => momentumStep(v(0), v(1), {}, { ...mo, lr: Infinity }),
      ErrorCode.InvalidConfig,
      /lr must be > 0 and finite \(got Infinity\)/,
    ],
    ['momentum 1', () => momentumStep(v(0), v(1), {}, { ...mo, momentum: 1 }), ErrorCode.InvalidConfig, /^momentum must be in \[0, 1\) \(got 1\)$/],
    [
      'a negative momentum',
      () => momentumStep(v(0), v(1), {}, { ...mo, momentum: -0.1 }),
      ErrorCode.InvalidConfig,
      /momentum must be in \[0, 1\) \(got -0\.1\)/,
    ],
    [
      'a NaN momentum',
      () => momentumStep(v(0), v(1), {}, { ...mo, momentum: NaN }),
      ErrorCode.InvalidConfig,
      /momentum must be in \[0, 1\) \(got NaN\)/,
    ],
    [
      'a momentum average of another length',
      () => momentumStep(v(0), v(1, 2), {}, mo),
      ErrorCode.WeightsMismatch,
      /averaged update has 2 values but the global model has 1/,
    ],
    [
      'a momentum buffer of another model',
      () => momentumStep(v(0, 0), v(1, 2), { m: v(0, 0, 0) }, mo),
      ErrorCode.WeightsMismatch,
      /state m has 3 values but the global model has 2; reset/,
    ],
    ['eta 0', () => adaptiveStep('adam', v(0), v(1), {}, { ...hp, eta: 0 }), ErrorCode.InvalidConfig, /^eta must be > 0 and finite \(got 0\)$/],
    [
      'a negative eta',
      () => adaptiveStep('yogi', v(0), v(1), {}, { ...hp, eta: -1 }),
      ErrorCode.InvalidConfig,
      /eta must be > 0 and finite \(got -1\)/,
    ],
    ['beta1 1', () => adaptiveStep('adam', v(0), v(1), {}, { ...hp, beta1: 1 }), ErrorCode.InvalidConfig, /^beta1 must be in \[0, 1\) \(got 1\)$/],
    [
      'a negative beta2',
      () => adaptiveStep('adam', v(0), v(1), {}, { ...hp, beta2: -0.5 }),
      ErrorCode.InvalidConfig,
      /^beta2 must be in \[0, 1\) \(got -0\.5\)$/,
    ],
    ['tau 0', () => adaptiveStep('adagrad', v(0), v(1), {}, { ...hp, tau: 0 }), ErrorCode.InvalidConfig, /^tau must be > 0 and finite \(got 0\)$/],
    ['a NaN tau', () => adaptiveStep('adam', v(0), v(1), {}, { ...hp, tau: NaN }), ErrorCode.InvalidConfig, /tau must be > 0 and finite \(got NaN\)/],
    [
      'an unknown kind',
      () => adaptiveStep('sgd' as 'adam', v(0), v(1), {}, hp),
      ErrorCode.InvalidConfig,
      /kind must be 'adam', 'yogi' or 'adagrad' \(got sgd\)/,
    ],
    [
      'an adaptive average of another length',
      () => adaptiveStep('adam', v(0, 1), v(1), {}, hp),
      ErrorCode.WeightsMismatch,
      /averaged update has 1 values but the global model has 2/,
    ],
    [
      'a second moment of another model',
      () => adaptiveStep('adam', v(0), v(1), { v: v(1, 1) }, hp),
      ErrorCode.WeightsMismatch,
      /state v has 2 values but the global model has 1/,
    ],
  ])('refuses %s', (_, fn, code, message) => {
    expectFtlError(fn, code, message);
  });
});
