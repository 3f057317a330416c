import { ftlErrorMessage } from '@ftl/shared/testing';
import { describe, expect, test } from 'vitest';
import { defaultCoordinatorConfig, type CoordinatorConfig } from './config.js';
import { parseRunConfig } from './run-config.js';
import { checkRunReuse, MODEL_EXPORTED_EVENT, runConfigChanges } from './run-reuse.js';
import { Store } from './store/store.js';

const config = (over: Partial<CoordinatorConfig> = {}): CoordinatorConfig => ({ ...defaultCoordinatorConfig(), runId: 'first', ...over });

function storeWith(status: 'created' | 'running' | 'completed' | 'stopped' | 'failed', stored = parseRunConfig({ runId: 'first' })): Store {
  const store = Store.open(':memory:');
  store.createRun('first', stored);
  store.setRunStatus('first', status);
  return store;
}

/** Commits round 1 of run `first` (a one-value model). */
function commitOneRound(store: Store): void {
  const record = {
    round: 1,
    status: 'aggregated' as const,
    selected: 1,
    accepted: 1,
    rejected: 0,
    failed: 0,
    trainLoss: 1,
    valLoss: 1,
    valAccuracy: 0.5,
    evalClients: 1,
    bytesIn: 0,
    bytesOut: 0,
    seconds: 1,
    modelVersion: 1,
  };
  store.commitRound(
    'first',
    { record, participants: ['a'], rejected: [] },
    {
      modelVersion: 1,
      specs: [{ name: 'w', shape: [1], dtype: 'float32' }],
      values: Float32Array.of(1),
      strategyState: {},
    },
  );
}

const conflict = (fn: () => unknown) => ftlErrorMessage(fn, 'CONFLICT');

describe('a one-run coordinator on a run id the database already has', () => {
  test('a new run id, or the same settings on a run that can resume, goes ahead', () => {
    const store = storeWith('running');
    expect(() => checkRunReuse(store, config({ runId: 'second', hidden: [64] }))).not.toThrow();
    expect(() => checkRunReuse(store, config())).not.toThrow();
    // How long to wait and for whom may change on a resume: they do not change what is trained.
    expect(() => checkRunReuse(store, config({ waitTimeoutMs: 5000, minClients: 3, roundDeadlineMs: 9000, quorumRetries: 0 }))).not.toThrow();
  });

  test('other settings are refused listing every one that differs, before and now', () => {
    const store = storeWith('running');
    expect(conflict(() => checkRunReuse(store, config({ hidden: [64], fit: { epochs: 2, batchSize: 32, learningRate: 0.001 } })))).toBe(
      'run first already exists in :memory: with fit.epochs 5 (now 2), hidden [] (now [64]); use another --run-id, or give its settings again to resume it',
    );
  });

  test.each([
    ['completed', 'run first already completed 1 rounds in :memory:; its model is in /models/first; use another --run-id'],
    ['stopped', 'run first was stopped after 1 rounds in :memory:; its model is in /models/first; use another --run-id'],
  ] as const)('a %s run is refused, saying where its model is', (status, message) => {
    const store = storeWith(status);
    commitOneRound(store);
    store.appendEvent('first', MODEL_EXPORTED_EVENT, { dir: '/models/first' });
    expect(conflict(() => checkRunReuse(store, config()))).toBe(message);
  });

  test('a run stopped before any round trained (Ctrl-C while waiting for sites) may start again with its settings', () => {
    const store = storeWith('stopped');
    expect(() => checkRunReuse(store, config())).not.toThrow();
    expect(conflict(() => checkRunReuse(store, config({ hidden: [64] })))).toMatch(/hidden \[\] \(now \[64\]\)/);
  });

  test('a failed run is refused with the reason it failed', () => {
    const store = storeWith('failed');
    store.appendEvent('first', 'run-failed', { message: 'only 0 of 2 clients were ready' });
    expect(conflict(() => checkRunReuse(store, config()))).toBe(
      'run first failed after 0 rounds in :memory: (only 0 of 2 clients were ready); use another --run-id',
    );
  });

  test('runConfigChanges names nested fields and missing ones', () => {
    const before = parseRunConfig({ strategy: { name: 'fedprox', options: { mu: 0.1 } } });
    const now = parseRunConfig({ strategy: { name: 'fedavg' }, featureLayer: 'fc' });
    expect(runConfigChanges(before, now)).toEqual([
      expect.stringMatching(/^strategy\.name fedprox \(now fedavg\)$/),
      'strategy.options.mu 0.1 (now unset)',
      'featureLayer unset (now fc)',
    ]);
  });
});
