import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Coordinator, DEFAULT_BACKBONE, DEFAULT_BACKBONE_DIR, defaultCoordinatorConfig, Store, type CoordinatorConfig } from '@ftl/coordinator';
import { createLogger, initBackend } from '@ftl/shared';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { heldOutAccuracy, heldOutSet } from './holdout.js';
import { makeClient, runToEnd, scratch, type RunOutcome } from './test-federation.js';

// The run config's defaults exactly as an operator gets them: nothing below sets the backbone, the head or
// its initialisation.
const SITES = 3;
const LIMIT = 450;

/**
 * A run on the defaults, with only what a test needs on top: its id, its sites, an export folder and a
 * store; the sites in `declining` decline to send their class statistics.
 */
async function defaultRun(
  runId: string,
  over: Partial<CoordinatorConfig>,
  dir: string,
  declining: number[] = [],
): Promise<RunOutcome & { store: Store }> {
  await initBackend();
  const store = Store.open(join(dir, `${runId}.db`));
  const coordinator = await Coordinator.create(
    { ...defaultCoordinatorConfig(), port: 0, runId, minClients: SITES, rounds: 2, exportDir: join(dir, runId), ...over },
    createLogger('coordinator', { level: 'warn' }),
    store,
  );
  const { url } = await coordinator.listen();
  const clients = await Promise.all(
    Array.from({ length: SITES }, (_, index) =>
      makeClient({
        url,
        index,
        clients: SITES,
        limit: LIMIT,
        partition: { kind: 'dirichlet', alpha: 0.5 },
        cacheDir: join(dir, `cache-${index}`),
        ...(declining.includes(index) ? { classSums: false } : {}),
      }),
    ),
  );
  return { ...(await runToEnd(coordinator, clients)), store };
}

let dir: string;
beforeAll(async () => {
  dir = await scratch('default-run');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('the run config defaults', () => {
  test('serve the pretrained encoder under a linear head that starts as the pooled discriminant: a small update, and digits recognised', async () => {
    const meta = JSON.parse(await readFile(join(DEFAULT_BACKBONE_DIR, 'ftl-backbone.json'), 'utf8')) as {
      architecture: { featureDim: number };
      parameters: { encoder: number };
    };
    expect(DEFAULT_BACKBONE).toBe('encoder-spatial-fmnist');
    const { summary, rows, store } = await defaultRun('defaults', {}, dir);
    expect(rows.map((r) => [r.status, r.accepted])).toEqual([
      ['aggregated', SITES],
      ['aggregated', SITES],
    ]);
    // The head is linear: featureDim × 10 + 10 values, and nothing of the encoder travels.
    const headValues = meta.architecture.featureDim * 10 + 10;
    expect(summary.weights.values.length).toBe(headValues);
    // auto chose the discriminant: the sites' class sums and scatters set the head before round 1.
    const init = store.listEvents('defaults').filter((e) => e.type === 'head-init');
    expect(init.map((e) => (e.data as { method: string }).method)).toEqual(['discriminant']);
    // An update (with its envelope) is at least 10× smaller than the same update carrying the encoder too.
    const perUpdate = rows[0]!.bytesIn / SITES;
    expect((perUpdate + 4 * meta.parameters.encoder) / perUpdate).toBeGreaterThanOrEqual(10);
    // 450 digits over three skewed sites; chance is 10%, and the pooled discriminant is far above it.
    expect(await heldOutAccuracy(join(dir, 'defaults'), heldOutSet('mnist'))).toBeGreaterThan(0.7);
    store.close();
  });

  test('a site that declines to send its class statistics is left out of the discriminant and still trains every round', async () => {
    const { rows, store } = await defaultRun('declined', {}, dir, [1]);
    expect(rows.map((r) => [r.status, r.accepted])).toEqual([
      ['aggregated', SITES],
      ['aggregated', SITES],
    ]);
    const init = store.listEvents('declined').filter((e) => e.type === 'head-init');
    expect(init.map((e) => e.data)).toEqual([
      expect.objectContaining({
        method: 'discriminant',
        clients: ['client-0', 'client-2'],
        // The run's record says which site sent nothing, and why.
        missed: [{ client: 'client-1', why: expect.stringContaining('does not send class statistics (--no-class-sums)') }],
      }),
    ]);
    store.close();
  });

  test('with a hidden layer, auto starts the head at random and asks the sites for no statistics', async () => {
    const { summary, rows, store } = await defaultRun('hidden', { hidden: [32] }, dir);
    expect(rows.map((r) => r.status)).toEqual(['aggregated', 'aggregated']);
    expect(store.listEvents('hidden').filter((e) => e.type === 'head-init')).toEqual([]);
    expect(summary.weights.values.length).toBe(256 * 32 + 32 + 32 * 10 + 10);
    store.close();
  });
});
