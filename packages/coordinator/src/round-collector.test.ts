import { ErrorCode, FtlError, PROTOCOL_VERSION, type Envelope } from '@ftl/shared';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { MAX_KEPT_REJECTIONS, RoundCollector } from './round-collector.js';

const target = { runId: 'r1', round: 3, modelVersion: 2, expected: ['a', 'b', 'c'] };
const msg = (over: Partial<Envelope> = {}): Envelope => ({ protocol: PROTOCOL_VERSION, runId: 'r1', round: 3, modelVersion: 2, ...over });

// The clock is fake: a round settles only by its answers, or by its deadline when the test moves time on.
beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** Runs pending promise callbacks without moving the fake clock. */
const flush = () => vi.advanceTimersByTimeAsync(0);

/** Moves the fake clock past the round's deadline and returns what it collected. */
async function afterDeadline<R extends Envelope>(c: RoundCollector<R>): Promise<Awaited<RoundCollector<R>['settled']>> {
  await vi.runAllTimersAsync();
  return c.settled;
}

describe('round collection', () => {
  test('settles right after the last selected client answered, without waiting for the deadline', async () => {
    const c = new RoundCollector<Envelope>(target, 60_000);
    const events: string[] = [];
    void c.settled.then((d) => events.push(`settled (timed out: ${d.timedOut})`));
    for (const id of target.expected) {
      expect(c.submit(id, msg(), () => msg())).toEqual({ accepted: true });
      events.push(`answer ${id}`);
      await flush();
    }
    expect(events).toEqual(['answer a', 'answer b', 'answer c', 'settled (timed out: false)']);
    expect(vi.getTimerCount()).toBe(0); // the deadline was cleared, never reached
  });

  test('results come in selection order whatever order they arrived in', async () => {
    const c = new RoundCollector<Envelope & { from: string }>(target, 60_000);
    for (const id of ['c', 'a', 'b']) c.submit(id, msg(), () => ({ ...msg(), from: id }));
    const done = await c.settled;
    expect([...done.results.entries()].map(([id, r]) => [id, r.from])).toEqual([
      ['a', 'a'],
      ['b', 'b'],
      ['c', 'c'],
    ]);
  });

  test('a client that disconnects does not hold the round: the others close it', async () => {
    const c = new RoundCollector<Envelope>(target, 60_000);
    c.submit('a', msg(), () => msg());
    c.fail('b', 'disconnected (transport close)');
    c.submit('c', msg(), () => msg());
    const done = await c.settled;
    expect(done.results.size).toBe(2);
    expect(done.failures.get('b')).toBe('disconnected (transport close)');
  });

  test('the deadline closes a round that a silent client would stall, and late updates are refused', async () => {
    const c = new RoundCollector<Envelope>(target, 50);
    let settled = false;
    void c.settled.then(() => (settled = true));
    c.submit('a', msg(), () => msg());
    await vi.advanceTimersByTimeAsync(49);
    expect(settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(settled).toBe(true);
    const done = await c.settled;
    expect(done.timedOut).toBe(true);
    expect([...done.failures.keys()].sort()).toEqual(['b', 'c']);
    expect(c.submit('b', msg(), () => msg())).toMatchObject({ accepted: false, reason: 'round-closed' });
  });

  test.each<[string, string, Partial<Envelope>, string]>([
    ['another run', 'a', { runId: 'r0' }, 'unknown-run'],
    ['a stale round', 'a', { round: 2 }, 'stale-round'],
    ['a stale model version', 'a', { modelVersion: 1 }, 'stale-model'],
    ['a client not selected', 'z', {}, 'not-selected'],
  ])('rejects an update from %s with a reason and keeps it out of the results', async (_, id, over, reason) => {
    const c = new RoundCollector<Envelope>(target, 30);
    const ack = c.submit(id, msg(over), () => msg());
    expect(ack).toMatchObject({ accepted: false, reason });
    const done = await afterDeadline(c);
    expect(done.results.size).toBe(0);
    expect(done.rejected).toHaveLength(1);
  });

  test('a flood of refused submissions is counted in full but keeps only a bounded list of reasons', async () => {
    const c = new RoundCollector<Envelope>(target, 30);
    for (let i = 0; i < 5000; i++) c.submit('a', msg({ round: 2 }), () => msg());
    const done = await afterDeadline(c);
    expect(done.rejectedCount).toBe(5000);
    expect(done.rejected).toHaveLength(MAX_KEPT_REJECTIONS);
  });

  test('rejects a duplicate and a content failure, keeping the first valid update', async () => {
    const c = new RoundCollector<Envelope & { v: number }>(target, 30);
    expect(c.submit('a', msg(), () => ({ ...msg(), v: 1 }))).toEqual({ accepted: true });
    expect(c.submit('a', msg(), () => ({ ...msg(), v: 2 }))).toMatchObject({ accepted: false, reason: 'duplicate' });
    const bad = c.submit('b', msg(), () => {
      throw new FtlError(ErrorCode.NonFiniteWeights, 'value 3 of the update is NaN');
    });
    expect(bad).toEqual({ accepted: false, reason: 'non-finite', message: 'value 3 of the update is NaN' });
    const done = await afterDeadline(c);
    expect(done.results.get('a')?.v).toBe(1);
    expect(done.results.has('b')).toBe(false);
  });
});
