import { ErrorCode, FtlError, PROTOCOL_VERSION, type Envelope } from '@ftl/shared';
import { describe, expect, test } from 'vitest';
import { MAX_KEPT_REJECTIONS, RoundCollector } from './round-collector.js';

const target = { runId: 'r1', round: 3, modelVersion: 2, expected: ['a', 'b', 'c'] };
const msg = (over: Partial<Envelope> = {}): Envelope => ({ protocol: PROTOCOL_VERSION, runId: 'r1', round: 3, modelVersion: 2, ...over });

describe('round collection', () => {
  test('settles as soon as every selected client answered, without waiting for the deadline', async () => {
    const c = new RoundCollector<Envelope>(target, 60_000);
    let settled = false;
    void c.settled.then(() => (settled = true));
    for (const id of target.expected) expect(c.submit(id, msg(), () => msg())).toEqual({ accepted: true });
    await Promise.resolve();
    expect(settled).toBe(true); // within the same turn of the event loop, long before any deadline
    const done = await c.settled;
    expect([...done.results.keys()]).toEqual(['a', 'b', 'c']);
    expect(done.timedOut).toBe(false);
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
    c.submit('a', msg(), () => msg());
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
    const done = await c.settled;
    expect(done.results.size).toBe(0);
    expect(done.rejected).toHaveLength(1);
  });

  test('a flood of refused submissions is counted in full but keeps only a bounded list of reasons', async () => {
    const c = new RoundCollector<Envelope>(target, 30);
    for (let i = 0; i < 5000; i++) c.submit('a', msg({ round: 2 }), () => msg());
    const done = await c.settled;
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
    const done = await c.settled;
    expect(done.results.get('a')?.v).toBe(1);
    expect(done.results.has('b')).toBe(false);
  });
});
