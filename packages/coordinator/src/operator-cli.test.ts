import { describe, expect, test } from 'vitest';
import { progressLine, summary } from './operator-cli.js';
import { parseRunConfig } from './run-config.js';
import type { RoundRecord } from './round-table.js';

const round = (n: number, modelVersion: number): RoundRecord => ({
  round: n,
  status: modelVersion > 0 ? 'aggregated' : 'no-quorum',
  selected: 3,
  accepted: 3,
  rejected: 0,
  failed: 0,
  trainLoss: 0.3,
  valLoss: 0.3,
  valAccuracy: 0.9,
  evalClients: 3,
  bytesIn: 0,
  bytesOut: 0,
  seconds: 1,
  modelVersion,
});
const run = (over: Partial<Parameters<typeof summary>[0]>) => ({
  id: 'r1',
  status: 'completed' as const,
  config: parseRunConfig({ rounds: 2 }),
  rounds: [],
  exclusions: [],
  sites: [],
  ...over,
});

describe('runs status', () => {
  test('offers the model only when some round trained it', () => {
    expect(summary(run({ rounds: [round(1, 1), round(2, 2)] }))).toContain('download the model with: ftl-coordinator runs export r1');
    expect(summary(run({ status: 'stopped', rounds: [] }))).toContain('no round trained the model, so there is none to download');
    expect(summary(run({ status: 'stopped', rounds: [] }))).not.toContain('runs export');
    expect(summary(run({ status: 'failed', rounds: [round(1, 1), round(2, 1)] }))).toContain('runs export r1');
    expect(summary(run({ status: 'running', rounds: [round(1, 1)] }))).not.toMatch(/download|none to download/);
  });

  test('lists what the trust policy left out, with round, site and reason', () => {
    const exclusions = Array.from({ length: 12 }, (_, i) => ({
      type: 'update-excluded' as const,
      round: i + 1,
      client: 'site-x',
      reason: 'outlier-update',
      message: 'the update moves the model by 31.99, …',
    }));
    const text = summary(run({ rounds: [round(1, 1)], exclusions }));
    expect(text).toContain('12 contributions left out by the trust policy:');
    expect(text).toContain('\n  round 1 site-x: outlier-update: the update moves the model by 31.99, …');
    expect(text).toContain('\n  … and 2 more (GET /api/runs/r1)');
    expect(text.match(/round \d+ site-x/g)).toHaveLength(10);
  });

  test("shows each site's ε after the latest round of a run with record-level DP, and who refused it", () => {
    const privacy = {
      round: 3,
      sites: [{ client: 'site-a', epsilon: 2.345, delta: 1e-5, budget: 8 }],
      refused: [{ client: 'site-b', message: 'privacy budget: ε would reach 4.10 > budget 4 at δ 1e-5', epsilon: 3.2, delta: 1e-5, budget: 4 }],
    };
    const text = summary(run({ rounds: [round(1, 1)], privacy }));
    expect(text).toContain(
      '\nprivacy spent by each site after round 3:\n  site-a: ε 2.35 at δ 1e-5 (budget 8)\n  site-b: refused the round: privacy budget: ε would reach 4.10',
    );
    expect(summary(run({ rounds: [round(1, 1)] }))).not.toContain('privacy');
  });

  test('says why a run failed, stopped or paused, and where each site stands, its own error included', () => {
    const reason = { message: 'round 2 got 0 accepted updates, below minFitClients 1', phase: 'evaluate' as const, round: 2, code: 'QUORUM' };
    const sites = [
      { client: 'a', state: 'training' as const, round: 3, at: 't' },
      { client: 'b', state: 'failed' as const, round: 0, message: 'prepare: the image folder is empty\nsecond line', at: 't' },
      { client: 'c', state: 'disconnected' as const, round: 2, message: 'transport close', at: 't' },
    ];
    const text = summary(run({ status: 'failed', rounds: [round(1, 1)], reason, sites }));
    expect(text).toContain('\nwhy failed: round 2 got 0 accepted updates, below minFitClients 1 (QUORUM; in phase evaluate of round 2)\n');
    expect(text).toContain(
      '\nsites (3):\n  a: training round 3\n  b: failed: prepare: the image folder is empty second line\n  c: disconnected in round 2: transport close',
    );
    expect(summary(run({ rounds: [round(1, 1)] }))).not.toMatch(/why|sites/);
  });

  test('the live line names the class-means phase before round 1', () => {
    const live = { runId: 'r1', phase: 'class-means' as const, round: 0, rounds: 2, received: 1, expected: 3, readyClients: 3, minClients: 3 };
    expect(progressLine({ id: 'r1', status: 'running', rounds: [], live }, 5)).toContain('class sums for the head 1/3');
  });
});
