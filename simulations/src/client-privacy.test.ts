import { join } from 'node:path';
import type { FtlClient } from '@ftl/client';
import { type CoordinatorConfig, Store } from '@ftl/coordinator';
import { RdpAccountant } from '@ftl/shared';
import { describe, expect, test } from 'vitest';
import { createCoordinator, makeClient, runToEnd, scratch } from './test-federation.js';

// Client-level DP (DP-FedAvg) end to end: a real coordinator and four MNIST sites over socket.io, half of
// them selected each round. The run's ε in each round's record and event is checked against an accountant
// of (q = selected / ready, z) alone, and the run must stop before the round that would pass its target.

const SITES = 4;
const LIMIT = 400;
const Z = 1;
const DELTA = 1e-5;
const Q = 0.5; // fractionFit 0.5 of 4 ready sites: 2 per round

/** ε of the run after `rounds` rounds, from an accountant of its own. */
const epsilonAfter = (rounds: number) => new RdpAccountant().step({ noiseMultiplier: Z, sampleRate: Q, steps: rounds }).epsilon(DELTA).epsilon;

interface ClientEvent {
  round: number;
  sites: unknown[];
  client: {
    epsilon: number;
    sampleRate: number;
    selected: number;
    ready: number;
    updates: number;
    clipNorm: number;
    nextClipNorm: number;
    unclippedFraction?: number;
    deltaNoiseMultiplier: number;
    localEpsilon?: number;
  };
}

async function federate(runId: string, privacy: Record<string, unknown>, rounds: number) {
  const store = Store.open(':memory:');
  const home = await scratch(runId);
  const over: Partial<CoordinatorConfig> = {
    runId,
    rounds,
    minClients: SITES,
    fractionFit: Q,
    waitTimeoutMs: 60_000,
    roundDeadlineMs: 60_000,
    hidden: [],
    fit: { epochs: 2, batchSize: 16, learningRate: 0.01 },
    privacy: { mode: 'client', sampling: 'poisson', delta: DELTA, ...privacy } as CoordinatorConfig['privacy'],
  };
  const coordinator = await createCoordinator(over, { store });
  const { url } = await coordinator.listen();
  const clients: FtlClient[] = await Promise.all(
    Array.from({ length: SITES }, (_, index) => makeClient({ url, index, clients: SITES, limit: LIMIT, cacheDir: join(home, `site-${index}`) })),
  );
  const outcome = await runToEnd(coordinator, clients);
  const events = store
    .listEvents(runId)
    .filter((e) => e.type === 'round-privacy')
    .map((e) => e.data as ClientEvent);
  return { ...outcome, events, store };
}

describe('client-level DP in a federation', () => {
  test('records the run’s ε every round as the accountant of (q, z) says, moves S adaptively and stops before the round past its target', async () => {
    // The target lies between ε after 3 rounds and after 4: three rounds play, the fourth must not.
    const target = (epsilonAfter(3) + epsilonAfter(4)) / 2;
    const adaptiveClipping = { targetQuantile: 0.5, learningRate: 0.2, countNoiseMultiplier: 2 };
    const { summary, rows, ends, events, store } = await federate(
      'client-dp',
      { noiseMultiplier: Z, clipNorm: 0.05, adaptiveClipping, targetEpsilon: target },
      6,
    );
    expect(summary.reason).toBe('completed');
    expect(rows.map((r) => r.round)).toEqual([1, 2, 3]);
    expect(summary.message).toMatch(
      /^privacy budget reached: round 4 \(2 of 4 sites, q = 0\.5, z = 1\) would take the run's client-level ε from [\d.]+ to [\d.]+, past privacy\.targetEpsilon [\d.]+ at δ 0\.00001; the run ends with the global model of round 3$/,
    );
    for (const end of ends) expect(end).toMatchObject({ reason: 'completed', message: summary.message });
    expect(store.listEvents('client-dp').filter((e) => e.type === 'privacy-target-reached')).toHaveLength(1);

    expect(events.map((e) => e.round)).toEqual([1, 2, 3]);
    for (const [r, { client, sites }] of events.entries()) {
      expect(sites).toEqual([]);
      expect(client).toMatchObject({ sampleRate: Q, selected: 2, ready: SITES, updates: 2 });
      expect(client.epsilon).toBe(epsilonAfter(r + 1));
      expect(rows[r]!.epsilon).toBe(client.epsilon);
      expect(rows[r]!.status).toBe('aggregated');
      expect(client.deltaNoiseMultiplier).toBeCloseTo((1 - 1 / 16) ** -0.5, 12);
      // S moves by exp(−η(b̄ − γ)) from the round's b̄, and the next round clips at it.
      expect(client.nextClipNorm).toBeCloseTo(client.clipNorm * Math.exp(-0.2 * (client.unclippedFraction! - 0.5)), 12);
      if (r > 0) expect(client.clipNorm).toBe(events[r - 1]!.client.nextClipNorm);
    }
    expect(events[0]!.client.clipNorm).toBe(0.05);
    expect(epsilonAfter(3)).toBeLessThanOrEqual(target);
  }, 240_000);

  test('with local noise each site noises its own clipped change; the run also reports ε against the coordinator', async () => {
    const { summary, rows, events } = await federate('client-dp-local', { noiseMultiplier: 2, clipNorm: 0.5, noise: 'local' }, 2);
    expect(summary.reason).toBe('completed');
    expect(rows).toHaveLength(2);
    for (const [r, { client }] of events.entries()) {
      const unamplified = new RdpAccountant().step({ noiseMultiplier: 2, sampleRate: 1, steps: r + 1 }).epsilon(DELTA).epsilon;
      expect(client.localEpsilon).toBe(unamplified);
      expect(client.epsilon).toBe(new RdpAccountant().step({ noiseMultiplier: 2, sampleRate: Q, steps: r + 1 }).epsilon(DELTA).epsilon);
      expect(client.unclippedFraction).toBeUndefined();
      expect(client.nextClipNorm).toBe(0.5);
    }
  }, 240_000);
});
