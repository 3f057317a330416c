import { readdirSync, readFileSync } from 'node:fs';
import { parseCoordinatorArgs, parseRunConfig, runConfigFlags } from '@ftl/coordinator';
import { ftlErrorMessage } from '@ftl/shared/testing';
import { describe, expect, test } from 'vitest';
import { expandStudy, parseSimConfig, SIM_HELP, simConfigFromArgs } from './config.js';

const SCENARIOS = new URL('../../scenarios/', import.meta.url);

const refusal = (fn: () => unknown) => ftlErrorMessage(fn, 'INVALID_CONFIG');

describe('study config', () => {
  test.each(readdirSync(SCENARIOS).filter((f) => f.endsWith('.json')))('the scenario file %s is a valid study', (file) => {
    const doc = JSON.parse(readFileSync(new URL(file, SCENARIOS), 'utf8')) as Record<string, unknown>;
    const { base, settings } = expandStudy(doc, file);
    expect(base.seeds.length).toBeGreaterThan(0);
    const sweep = doc['sweep'] as Record<string, unknown[]> | { settings: unknown[] } | undefined;
    const expected = sweep === undefined ? 1 : 'settings' in sweep ? sweep.settings.length : Object.values(sweep)[0]!.length;
    expect(settings).toHaveLength(expected);
  });

  test("a bad run field gets the coordinator's own message, from a file and from a flag", () => {
    const fromFile = refusal(() => parseSimConfig({ run: { rounds: -1 } }, 'study.json'));
    const coordinatorFile = refusal(() => parseRunConfig({ rounds: -1 }, 'study.json: run'));
    expect(fromFile).toBe(coordinatorFile);
    expect(fromFile).toBe('study.json: run: rounds must be a positive integer (got -1)');
    const fromFlag = refusal(() => simConfigFromArgs({ rounds: '-1', workers: '0' }));
    const coordinatorFlag = refusal(() => parseCoordinatorArgs(['--rounds', '-1']));
    expect(fromFlag).toBe(coordinatorFlag);
    expect(fromFlag).toBe('command line: --rounds (rounds) must be a positive integer (got -1)');
  });

  test('--help lists every study flag and every run config flag', () => {
    for (const f of runConfigFlags()) expect(SIM_HELP).toContain(`--${f.name} `);
    for (const name of ['clients', 'partition', 'per-site', 'seeds', 'transport', 'workers', 'baselines', 'sweep-per-site', 'config']) {
      expect(SIM_HELP).toContain(`--${name} `);
    }
  });

  test.each<[string, Record<string, unknown>, RegExp]>([
    ['an unknown field', { clinets: 3 }, /^s: unknown field clinets$/],
    ['a bad partition', { data: { partition: 'dirichlet:0' } }, /^s: data\.partition: partition must be .*dirichlet/],
    ['an unknown baseline', { baselines: ['oracle'] }, /^s: baselines\.0: /],
    ['inproc with workers', { transport: 'inproc', workers: 2 }, /^s: transport inproc runs every site in this thread; set workers to 0/],
    ['a sweep of two fields', { sweep: { 'data.perSite': [10], seeds: [[1]] } }, /^s: sweep: one field and its values/],
    ['a bad value in a sweep', { sweep: { 'data.perSite': [10, -5] } }, /^s: sweep setting -5: data\.perSite: /],
  ])('%s is refused in one line naming the field', (_, doc, message) => {
    const text = refusal(() => expandStudy(doc, 's'));
    expect(text).toMatch(message);
    expect(text).not.toContain('\n');
  });

  test('a sweep may not set what a run config flag sets', () => {
    expect(refusal(() => expandStudy({ workers: 0, sweep: { 'run.rounds': [1, 2] } }, 's', { rounds: '3' }))).toBe(
      's: the sweep sets run.rounds, which a command-line flag also sets; drop one',
    );
  });

  test('each setting is the study with its fields written over it; flags apply to every setting', () => {
    const { settings } = expandStudy(
      {
        workers: 0,
        sweep: {
          name: 'rule',
          settings: [
            { label: 'median', set: { 'run.strategy': { name: 'fedmedian' }, 'attack.sites': 2 } },
            { label: 'plain', set: {} },
          ],
        },
      },
      's',
      { epochs: '3' },
    );
    expect(settings.map((s) => [s.setting, s.config.run.strategy.name, s.config.attack?.sites, s.config.run.fit.epochs])).toEqual([
      [{ name: 'rule', value: 'median' }, 'fedmedian', 2, 3],
      [{ name: 'rule', value: 'plain' }, 'fedavg', undefined, 3],
    ]);
  });
});
