import { createLogger, initBackend } from '@ftl/shared';
import { describe, expect, test } from 'vitest';
import { parseCoordinatorArgs, parseServeArgs, type CoordinatorConfig } from './config.js';
import { CoordinatorServer } from './coordinator-server.js';
import { scheduledFit } from './coordinator.js';

describe('coordinator configuration', () => {
  test('the round schedule decays the learning rate and switches local epochs', () => {
    const c = parseCoordinatorArgs(['--lr', '0.01', '--lr-decay', '0.5', '--epochs', '5', '--epochs-schedule', '3:2,5:1']) as CoordinatorConfig;
    const at = (round: number) => scheduledFit(c.fit, c.schedule, round);
    expect([1, 2, 3, 4, 5].map((r) => at(r).epochs)).toEqual([5, 5, 2, 2, 1]);
    expect([1, 2, 3].map((r) => at(r).learningRate)).toEqual([0.01, 0.005, 0.0025]);
  });

  test.each([
    [
      ['--epochs-schedule', '0:3'],
      'command line: --epochs-schedule (schedule.epochs) must be a list of {fromRound, epochs} with increasing fromRound, both positive integers (got [{"fromRound":0,"epochs":3}])',
    ],
    [
      ['--epochs-schedule', '3:2,2:1'],
      'command line: --epochs-schedule (schedule.epochs) must be a list of {fromRound, epochs} with increasing fromRound',
    ],
    [['--epochs-schedule', '3-2'], '--epochs-schedule takes "round:epochs" pairs like 1:5,4:2 (got "3-2")'],
    [['--lr-decay', '1.5'], 'command line: --lr-decay (schedule.lrDecay) must be a number in (0, 1] (got 1.5)'],
    [['--rounds', 'ten'], 'command line: --rounds (rounds) must be a positive integer (got "ten")'],
    [['--tls-cert', 'cert.pem'], '--tls-cert and --tls-key go together'],
    [['--strategy', 'krum', '--strategy-options', 'f=-1'], 'krum option f must be an integer ≥ 0 (got "-1")'],
    [['--strategy', 'fedsgd'], 'command line: --strategy (strategy.name) must be one of fedavg,'],
    [['--fine-tuning', 'full'], 'command line: --fine-tuning (fineTuning.mode) must be feature-extraction, partial, gradual or scratch (got "full")'],
    [['--fine-tuning', 'partial,layers=0'], 'command line: --fine-tuning (fineTuning.layers) must be a positive integer'],
    [['--fine-tuning', 'partial,depth=2'], 'command line: unknown field --fine-tuning (fineTuning.depth)'],
    [['--augment', 'copies=2,shift=0.9'], 'command line: --augment (augment.shift) must be a number in [0, 0.5)'],
    [['--augment', 'copies=2,flip'], '--augment takes key=value pairs after its first item (got "flip")'],
    [['--normalization', 'zscore'], 'command line: --normalization (normalization) must be none, standard or min-max'],
    [
      ['--normalization', 'standard:pixel'],
      'command line: --normalization (normalizationScope) must be channel (one statistic per image channel) or feature',
    ],
    [['--input-range', '1,0'], 'command line: --input-range (inputRange) must be [low, high]'],
    [['--trust', 'normBound=-1'], 'command line: --trust (trust.normBound) must be a number ≥ 0'],
    [['--run-id', '..'], 'command line: --run-id (runId) must be 1–64 letters, digits'],
  ])('%j is refused at start-up with a message that says how to fix it', (args, message) => {
    expect(() => parseCoordinatorArgs(args)).toThrow(message);
  });

  test('--local-layers takes any layer names when parsed; they are checked against the head when the run is built', async () => {
    // The run config's schema says only "a list of head layer names": which names the head has depends on the backbone.
    const config = parseCoordinatorArgs(['--local-layers', 'nope', '--port', '0']) as CoordinatorConfig;
    expect(config.localLayers).toEqual(['nope']);
    await initBackend();
    // The server sizes its messages by building the run, so a wrong name is refused before any port opens.
    await expect(CoordinatorServer.create(config, createLogger('test', { level: 'silent' }))).rejects.toThrow(
      /^localLayers must name some but not all head layers \(.+\); got nope$/,
    );
  });

  test('--insecure-open is the explicit opt-out for tokenless clients off loopback, in both modes', () => {
    const oneRun = (argv: string[]) => parseCoordinatorArgs(argv) as CoordinatorConfig;
    expect(oneRun(['--host', '0.0.0.0']).insecureOpen).toBe(false);
    expect(oneRun(['--host', '0.0.0.0', '--insecure-open']).insecureOpen).toBe(true);
    const serve = (argv: string[]) => (parseServeArgs(argv) as Exclude<ReturnType<typeof parseServeArgs>, 'help'>).base;
    expect(serve(['--open', '--host', '0.0.0.0'])).toMatchObject({ requireAuth: false, insecureOpen: false });
    expect(serve(['--open', '--insecure-open'])).toMatchObject({ requireAuth: false, insecureOpen: true });
  });

  test('--metrics-port and --metrics-host, in both modes; the host alone is refused', () => {
    const serve = (argv: string[]) => (parseServeArgs(argv) as Exclude<ReturnType<typeof parseServeArgs>, 'help'>).base;
    expect(serve(['--metrics-port', '9464'])).toMatchObject({ metricsPort: 9464 });
    expect(serve([])).not.toHaveProperty('metricsPort');
    expect(parseCoordinatorArgs(['--metrics-port', '0', '--metrics-host', '0.0.0.0'])).toMatchObject({ metricsPort: 0, metricsHost: '0.0.0.0' });
    expect(() => parseCoordinatorArgs(['--metrics-port', '70000'])).toThrow('--metrics-port');
    expect(() => serve(['--metrics-host', '127.0.0.1'])).toThrow('--metrics-host needs --metrics-port');
  });

  test('transfer settings from flags: fine-tuning, augmentation and normalisation, validated like a config file', () => {
    const c = parseCoordinatorArgs([
      '--fine-tuning',
      'partial,layers=1,backboneLrFactor=0.1',
      '--augment',
      'copies=2,shift=0.1,rotation=10,flip=true',
      '--normalization',
      'min-max:feature',
    ]) as CoordinatorConfig;
    expect(c.fineTuning).toEqual({ mode: 'partial', layers: 1, everyRounds: 1, backboneLrFactor: 0.1 });
    expect(c.augment).toEqual({ copies: 2, shift: 0.1, rotation: 10, flip: true });
    expect([c.normalization, c.normalizationScope]).toEqual(['min-max', 'feature']);
    const plain = parseCoordinatorArgs([]) as CoordinatorConfig;
    expect([plain.fineTuning.mode, plain.augment.copies, plain.normalization]).toEqual(['feature-extraction', 0, 'none']);
  });
});
