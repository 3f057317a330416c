import type { RoundAggregator, Strategy } from '@ftl/shared';

/**
 * `strategy` as it is, except that each aggregation reports its length to `observe`: from
 * `beginAggregation` to the return of `finish` (the streaming adds in between are the work), also when
 * it throws. Everything else reaches the strategy itself, so its private state and `this` are untouched.
 *
 * @example
 * const strategy = timedAggregation(createStrategy(spec, options), (s) => metrics.aggregated(runId, s));
 */
export function timedAggregation(strategy: Strategy, observe: (seconds: number) => void): Strategy {
  const begin = (round: number, global: Float32Array): RoundAggregator => {
    const t0 = performance.now();
    const aggregator = strategy.beginAggregation(round, global);
    return {
      add: (update) => aggregator.add(update),
      finish: () => {
        try {
          return aggregator.finish();
        } finally {
          observe((performance.now() - t0) / 1000);
        }
      },
    };
  };
  return new Proxy(strategy, {
    get(target, key) {
      if (key === 'beginAggregation') return begin;
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
