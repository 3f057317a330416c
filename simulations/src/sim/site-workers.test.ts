import { existsSync } from 'node:fs';
import { DEFAULT_BACKBONE_DIR, parseRunConfig, type RunConfig } from '@ftl/coordinator';
import { loadClientShard, type Weights } from '@ftl/shared';
import { beforeAll, describe, expect, test } from 'vitest';
import { taskDataset } from '../holdout.js';
import { runFederation } from './federation.js';
import { runningSiteWorkers } from './site-host.js';
import { buildSite, type SiteSpec } from './site-spec.js';

// Tests run the TypeScript sources, but a worker thread runs plain JavaScript: it starts from the build.
const WORKER = new URL('../../dist/sim/site-worker.js', import.meta.url);

const CLIENTS = 3;
const site = (indices: number[]): SiteSpec => ({ dataset: 'mnist', partition: { kind: 'iid' }, clients: CLIENTS, seed: 1, limit: 300, indices });
const SITES = [0, 1, 2].map((i) => site([i]));

function run(over: Partial<RunConfig> = {}): RunConfig {
  return {
    ...parseRunConfig({ rounds: 2, seed: 1, fit: { epochs: 2, batchSize: 16, learningRate: 0.002 } }),
    runId: 'site-workers',
    classes: [...taskDataset('mnist').classes],
    ...over,
  };
}

beforeAll(() => {
  if (!existsSync(WORKER)) throw new Error(`${WORKER.pathname} is missing: build first (npx tsc -b)`);
});

describe('site workers', () => {
  test('3 sites, 2 rounds on 300 images: two worker threads give the same rounds as this thread, and leave no worker running', async () => {
    const here = await runFederation({ run: run(), backboneDir: DEFAULT_BACKBONE_DIR, sites: SITES });
    const there = await runFederation({ run: run(), backboneDir: DEFAULT_BACKBONE_DIR, sites: SITES, workers: 2, workerUrl: WORKER });
    expect(runningSiteWorkers()).toBe(0);
    expect(here.rounds).toHaveLength(2);
    expect(there.rounds.map((r) => [r.round, r.accepted, r.selected])).toEqual(here.rounds.map((r) => [r.round, r.accepted, r.selected]));
    expect(there.rounds.map((r) => r.accepted)).toEqual([CLIENTS, CLIENTS]);
    there.rounds.forEach((r, i) => {
      expect(r.valAccuracy).toBeCloseTo(here.rounds[i]!.valAccuracy, 6);
      expect(r.valLoss).toBeCloseTo(here.rounds[i]!.valLoss, 6);
    });
    // Learning happened: the sites' images really reached their clients.
    expect(here.rounds[1]!.valAccuracy).toBeGreaterThan(0.3);
  });

  test('site specs build the same shards as loading each client, and the pooled site is their concatenation in order', () => {
    const task = taskDataset('mnist');
    const parts = [0, 1, 2].map((index) =>
      loadClientShard({ dataset: 'mnist', partition: { kind: 'iid' }, clients: CLIENTS, index, seed: 1, limit: 300 }, undefined, task),
    );
    const total = parts.reduce((a, p) => a + p.train.n, 0);
    expect(total).toBeGreaterThan(200);
    const pooled = buildSite(site([0, 1, 2]), task);
    expect(pooled.train.n).toBe(total);
    expect(Array.from(pooled.train.labels)).toEqual(parts.flatMap((p) => Array.from(p.train.labels)));
    expect(Array.from(buildSite(site([1]), task).val.images)).toEqual(Array.from(parts[1]!.val.images));
  });

  test.each([0, 2])(
    'with %i workers, a site that cannot be built fails the run with its own message, and no worker is left running',
    async (workers) => {
      const sites = [site([0]), site([1]), site([5])];
      await expect(runFederation({ run: run(), backboneDir: DEFAULT_BACKBONE_DIR, sites, workers, workerUrl: WORKER })).rejects.toThrow(
        /^site-2: index must be an integer in \[0, 2\] \(got 5\)$/,
      );
      expect(runningSiteWorkers()).toBe(0);
    },
  );

  test.each([
    [
      'cannot be started',
      new URL('./no-such-worker.js', WORKER),
      /site worker \d \(site-\d(, site-\d)?\) failed: Cannot find module .*no-such-worker\.js/,
    ],
    [
      'stops before its sites end',
      new URL('data:text/javascript,process.exit(3)'),
      /site worker \d \(site-\d+(, site-\d+)?\) stopped \(exit code 3\) before its sites ended/,
    ],
  ])('a worker that %s fails the run with a message saying so', async (_, workerUrl, message) => {
    await expect(runFederation({ run: run(), backboneDir: DEFAULT_BACKBONE_DIR, sites: SITES, workers: 2, workerUrl })).rejects.toThrow(message);
    expect(runningSiteWorkers()).toBe(0);
  });

  test.each([
    [
      'built shards',
      { sites: [loadClientShard({ dataset: 'mnist', partition: { kind: 'iid' }, clients: 1, index: 0, seed: 1, limit: 300 })] },
      /give the sites as site specs/,
    ],
    ['attackers', { sites: SITES, attackers: 1, attack: (trained: Weights) => trained }, /attacks run in this thread only/],
  ])('workers with %s are refused before anything starts', async (_, over, message) => {
    await expect(runFederation({ run: run(), backboneDir: '/nonexistent', workers: 2, workerUrl: WORKER, ...over })).rejects.toThrow(message);
  });
});
