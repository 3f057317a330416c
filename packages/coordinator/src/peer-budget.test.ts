import { describe, expect, test } from 'vitest';
import { PeerBudget } from './peer-budget.js';

describe('PeerBudget', () => {
  test('a burst is allowed, then messages pass at the configured rate', () => {
    let t = 0;
    const budget = new PeerBudget({ perSecond: 10, burst: 5, maxRefusals: 3 }, () => t);
    const burst = Array.from({ length: 8 }, () => budget.take());
    expect(burst).toEqual([true, true, true, true, true, false, false, false]);
    t += 100; // one message's worth at 10 per second
    expect(budget.take()).toBe(true);
    expect(budget.take()).toBe(false);
    t += 10_000; // refills to the burst, never beyond
    expect(Array.from({ length: 6 }, () => budget.take()).filter(Boolean)).toHaveLength(5);
  });

  test('refusals in a row close the connection; an accepted message starts the count again', () => {
    const budget = new PeerBudget({ perSecond: 10, burst: 5, maxRefusals: 3 }, () => 0);
    expect([budget.refused(), budget.refused()]).toEqual([false, false]);
    budget.accepted();
    expect([budget.refused(), budget.refused(), budget.refused()]).toEqual([false, false, true]);
  });
});
