import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FtlClient } from '@ftl/client';
import { type CoordinatorConfig, EXPORT_META_FILE, Store } from '@ftl/coordinator';
import { initBackend, loadBuiltinDataset, loadClientShard, RdpAccountant } from '@ftl/shared';
import { beforeAll, describe, expect, test } from 'vitest';
import { echoGlobal, HostileClient } from './hostile-client.js';
import { createCoordinator, makeClient, runToEnd, scratch } from './test-federation.js';

// Record-level DP end to end: real coordinator, real sites on a few hundred MNIST images, DP-SGD in every
// round. What each site reports is checked against an accountant built here from (q, σ, steps) alone.

const SITES = 2;
const LIMIT = 300;
const BATCH = 32;
const EPOCHS = 1;
const SIGMA = 1.1;
const DELTA = 1e-5;
const privacy = { mode: 'record' as const, noiseMultiplier: SIGMA, clipNorm: 1, sampling: 'poisson' as const, delta: DELTA };

/** A DP run of `rounds` rounds among the test's sites. */
const dpRun = (runId: string, rounds: number): Partial<CoordinatorConfig> => ({
  runId,
  rounds,
  minClients: SITES,
  waitTimeoutMs: 60_000,
  roundDeadlineMs: 60_000,
  hidden: [],
  fit: { epochs: EPOCHS, batchSize: BATCH, learningRate: 0.01 },
  privacy,
});

/** Training examples of each site, read as makeClient reads its shard. */
let trainSizes: number[];
beforeAll(async () => {
  await initBackend();
  const mnist = loadBuiltinDataset('mnist');
  trainSizes = Array.from(
    { length: SITES },
    (_, index) =>
      loadClientShard({ dataset: 'mnist', partition: { kind: 'iid' }, clients: SITES, index, seed: 5, limit: LIMIT }, undefined, mnist).train.n,
  );
});

/** What one round of DP-SGD on `n` examples runs: q = b/n, ⌊n/b⌋ steps per epoch, as the analysis defines it. */
const roundOf = (n: number) => ({ noiseMultiplier: SIGMA, sampleRate: BATCH / n, steps: EPOCHS * Math.floor(n / BATCH) });

/** ε at δ after `rounds` rounds on `n` examples, from an accountant of its own. */
function expectedEpsilon(n: number, rounds: number): number {
  const accountant = new RdpAccountant();
  for (let r = 0; r < rounds; r++) accountant.step(roundOf(n));
  return accountant.epsilon(DELTA).epsilon;
}

interface PrivacyEvent {
  round: number;
  sites: Array<{ client: string; epsilon: number; delta: number; budget?: number }>;
  refused: Array<{ client: string; message: string; epsilon?: number; budget?: number }>;
}

const privacyEvents = (store: Store, runId: string): PrivacyEvent[] =>
  store
    .listEvents(runId)
    .filter((e) => e.type === 'round-privacy')
    .map((e) => e.data as PrivacyEvent);

/** Starts a DP run with one client per cache folder (and budget), runs it to its end and returns what the sites heard. */
async function federate(store: Store, over: Partial<CoordinatorConfig>, cacheDirs: string[], budgets: Array<number | undefined> = []) {
  const coordinator = await createCoordinator(over, { store });
  const { url } = await coordinator.listen();
  const clients: FtlClient[] = await Promise.all(
    cacheDirs.map((cacheDir, index) =>
      makeClient({
        url,
        index,
        clients: SITES,
        limit: LIMIT,
        cacheDir,
        ...(budgets[index] !== undefined ? { dpBudget: budgets[index] } : {}),
      }),
    ),
  );
  const outcome = await runToEnd(coordinator, clients);
  return { ...outcome, view: coordinator.server.runView(over.runId!) };
}

describe('record-level DP in a federation', () => {
  test("every update carries its site's ε, which grows each round exactly as an accountant of (q, σ, steps) says", async () => {
    const home = await scratch('dp-rounds');
    const store = Store.open(':memory:');
    const dirs = Array.from({ length: SITES }, (_, i) => join(home, `site-${i}`));
    const exportDir = join(home, 'model');
    const { summary, rows, view } = await federate(store, { ...dpRun('dp-rounds', 3), personalizeEpochs: EPOCHS, exportDir }, dirs);
    expect(summary.reason).toBe('completed');
    expect(rows).toHaveLength(3);

    const events = privacyEvents(store, 'dp-rounds');
    expect(events.map((e) => e.round)).toEqual([1, 2, 3]);
    for (const [r, event] of events.entries()) {
      expect(event.refused).toEqual([]);
      expect(event.sites.map((s) => s.client)).toEqual(['client-0', 'client-1']);
      for (const [i, site] of event.sites.entries()) {
        expect(site.delta).toBe(DELTA);
        expect(site).not.toHaveProperty('budget');
        expect(site.epsilon).toBe(expectedEpsilon(trainSizes[i]!, r + 1));
        if (r > 0) expect(site.epsilon).toBeGreaterThan(events[r - 1]!.sites[i]!.epsilon);
      }
      // The round's record carries the largest, for the round table.
      expect(rows[r]!.epsilon).toBe(Math.max(...event.sites.map((s) => s.epsilon)));
    }
    // The operator's run view shows the latest round's ε per site.
    expect(view.privacy).toEqual(events[2]);
    // The exported model says what protects the records it was trained on.
    const meta = JSON.parse(await readFile(join(exportDir, EXPORT_META_FILE), 'utf8')) as { privacy?: unknown };
    expect(meta.privacy).toMatchObject({ ...privacy, largestEpsilon: Math.max(...events.flatMap((e) => e.sites.map((s) => s.epsilon))) });
    // Personalisation trains under DP too, accounted like one more round of the same mechanism.
    expect(summary.personalization?.map((p) => [p.clientId, p.epsilon])).toEqual(trainSizes.map((n, i) => [`client-${i}`, expectedEpsilon(n, 4)]));
    store.close();
  });

  test('with an ε target instead of σ, each site sets its own noise so the run ends at the target on its own data', async () => {
    const home = await scratch('dp-target');
    const store = Store.open(':memory:');
    const dirs = Array.from({ length: SITES }, (_, i) => join(home, `site-${i}`));
    const target = 2;
    const { summary } = await federate(
      store,
      { ...dpRun('dp-target', 2), privacy: { ...privacy, noiseMultiplier: undefined, targetEpsilon: target } },
      dirs,
    );
    expect(summary.reason).toBe('completed');
    const events = privacyEvents(store, 'dp-target');
    expect(events).toHaveLength(2);
    for (const [i, site] of events[1]!.sites.entries()) {
      // The σ a site picks spends the target over the run's two rounds at its own q = b/n, to the search's tolerance.
      expect(site.epsilon).toBeLessThanOrEqual(target);
      expect(site.epsilon).toBeGreaterThan(target - 0.002);
      expect(events[0]!.sites[i]!.epsilon).toBeLessThan(site.epsilon);
    }
    store.close();
  });

  test('a site refuses the round that would pass its budget and says why; the run completes when every site has refused', async () => {
    const home = await scratch('dp-budget');
    const store = Store.open(':memory:');
    const dirs = Array.from({ length: SITES }, (_, i) => join(home, `site-${i}`));
    // Site 0 affords one round, site 1 two: round 2 trains on site 1 alone, round 3 on nobody.
    const between = (i: number, rounds: number) => (expectedEpsilon(trainSizes[i]!, rounds) + expectedEpsilon(trainSizes[i]!, rounds + 1)) / 2;
    const budgets = [between(0, 1), between(1, 2)];
    const { summary, rows, ends, view } = await federate(store, dpRun('dp-budget', 5), dirs, budgets);

    expect(summary.reason).toBe('completed');
    expect(rows.map((r) => [r.round, r.accepted, r.status])).toEqual([
      [1, 2, 'aggregated'],
      [2, 1, 'aggregated'],
    ]);
    expect(summary.message).toMatch(
      /^privacy budgets spent: every site selected for round 3 refused to train it \(client-0: privacy budget: ε would reach/,
    );
    expect(summary.message).toMatch(/the run ends with the global model of round 2$/);
    expect(store.getRun('dp-budget')?.status).toBe('completed');
    for (const end of ends) expect(end).toMatchObject({ reason: 'completed', message: summary.message });

    const events = privacyEvents(store, 'dp-budget');
    expect(events.map((e) => [e.round, e.sites.map((s) => s.client), e.refused.map((r) => r.client)])).toEqual([
      [1, ['client-0', 'client-1'], []],
      [2, ['client-1'], ['client-0']],
      [3, [], ['client-0', 'client-1']],
    ]);
    const [refusal] = events[1]!.refused;
    const spent = expectedEpsilon(trainSizes[0]!, 1);
    expect(refusal).toEqual({
      client: 'client-0',
      message: `privacy budget: ε would reach ${expectedEpsilon(trainSizes[0]!, 2).toFixed(2)} > budget ${budgets[0]} at δ 1e-5 (spent so far: ε ${spent.toFixed(2)})`,
      epsilon: spent,
      delta: DELTA,
      budget: budgets[0],
    });
    expect(events[1]!.sites[0]).toEqual({ client: 'client-1', epsilon: expectedEpsilon(trainSizes[1]!, 2), delta: DELTA, budget: budgets[1] });
    expect(store.listEvents('dp-budget').find((e) => e.type === 'privacy-budgets-spent')?.data).toEqual({
      round: 3,
      sites: ['client-0', 'client-1'],
    });
    expect(view.privacy?.round).toBe(3);
    store.close();
  });

  test('a site with a budget refuses every round of a run without DP, and the run goes on with the others', async () => {
    const home = await scratch('dp-plain');
    const store = Store.open(':memory:');
    const dirs = Array.from({ length: SITES }, (_, i) => join(home, `site-${i}`));
    const { summary, rows } = await federate(
      store,
      { ...dpRun('dp-plain', 2), privacy: { mode: 'none', sampling: 'poisson', delta: DELTA } },
      dirs,
      [8],
    );
    expect(summary.reason).toBe('completed');
    expect(rows.map((r) => [r.accepted, r.failed, r.epsilon])).toEqual([
      [1, 1, undefined],
      [1, 1, undefined],
    ]);
    const events = privacyEvents(store, 'dp-plain');
    expect(events.map((e) => [e.round, e.sites, e.refused.map((r) => r.client)])).toEqual([
      [1, [], ['client-0']],
      [2, [], ['client-0']],
    ]);
    expect(events[0]!.refused[0]!.message).toMatch(
      /^privacy budget: this round would train without record-level DP \(ε unbounded\), and this site keeps an ε budget of 8/,
    );
    store.close();
  });

  test("the coordinator refuses a DP run's update that does not report its site's ε at the run's δ", async () => {
    const home = await scratch('dp-hostile');
    const coordinator = await createCoordinator({ ...dpRun('dp-hostile', 3), minFitClients: 1 });
    const { url } = await coordinator.listen();
    const honest = await makeClient({ url, index: 0, clients: SITES, limit: LIMIT, cacheDir: join(home, 'site-0') });
    const claims = [undefined, { epsilon: 1, delta: 1e-3 }, { epsilon: 1, delta: DELTA }];
    const hostile = new HostileClient({
      serverUrl: url,
      name: 'hostile',
      declare: { numTrain: 100, numVal: 20 },
      failAfterRefusal: true,
      fit: (c) => {
        const answer = echoGlobal(100)(c);
        const claim = claims[c.round - 1];
        return answer === 'fail' || !claim ? answer : { ...answer, privacy: claim };
      },
    });
    await hostile.connect();
    const { summary } = await runToEnd(coordinator, [honest]);
    await hostile.ended;
    expect(summary.reason).toBe('completed');
    expect(hostile.acks.filter((a) => a.event === 'fit-result').map((a) => a.ack)).toEqual([
      {
        accepted: false,
        reason: 'malformed',
        message:
          'fit-result.privacy is missing: run dp-hostile trains with record-level DP, and every update reports the ε its site has spent ({epsilon, delta})',
      },
      {
        accepted: false,
        reason: 'malformed',
        message: "fit-result.privacy.delta is 1e-3 but this run reports ε at δ 1e-5; report at the δ the round's config names",
      },
      { accepted: true },
    ]);
  });

  test("a site's ledger carries its ε into the next run on the same data, and a damaged ledger is a one-line error", async () => {
    const home = await scratch('dp-ledger');
    const store = Store.open(':memory:');
    const dirs = Array.from({ length: SITES }, (_, i) => join(home, `site-${i}`));
    await federate(store, dpRun('dp-first', 2), dirs);
    await federate(store, dpRun('dp-second', 1), dirs);
    const [first] = privacyEvents(store, 'dp-second');
    for (const [i, site] of first!.sites.entries()) expect(site.epsilon).toBe(expectedEpsilon(trainSizes[i]!, 3));
    store.close();

    const [file] = await readdir(join(dirs[0]!, 'privacy'));
    const path = join(dirs[0]!, 'privacy', file!);
    await writeFile(path, '{"format": "ftl-rdp-accountant", "version": 1, "orders": [2], "ledger": [{"noiseMultiplier": -1');
    const client = await makeClient({ url: 'http://127.0.0.1:9', index: 0, clients: SITES, limit: LIMIT, cacheDir: dirs[0]! });
    const err = await client.run().then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(/^the privacy ledger .* is damaged \(privacy ledger is not JSON .*\); .* restore it from a backup/);
    expect(err?.message).toContain(path);
    expect(err?.message).not.toContain('\n');
  });
});
