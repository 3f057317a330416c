import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { thrownBy } from '@ftl/shared/testing';
import { describe, expect, test } from 'vitest';
import { parseCoordinatorArgs, type CoordinatorConfig } from './config.js';
import { flagText, MAX_DISCRIMINANT_FEATURES, parseRunConfig, resolvedHeadInit, RunConfigSchema, runConfigFlags } from './run-config.js';
import { COORDINATOR_HELP } from './config.js';

/** The message of what `fn` throws; the test fails when it returns. */
const messageOf = (fn: () => unknown): string => (thrownBy(fn) as Error).message;

describe('run configuration', () => {
  test('an empty document gives the documented defaults', () => {
    const c = parseRunConfig({});
    expect(c).toMatchObject({
      rounds: 5,
      minClients: 2,
      waitTimeoutSeconds: 120,
      fractionFit: 1,
      minFitClients: 1,
      roundDeadlineSeconds: 60,
      quorumRetries: 2,
      fit: { epochs: 5, batchSize: 32, learningRate: 0.001 },
      schedule: { lrDecay: 1, epochs: [] },
      seed: 1,
      hidden: [],
      headInit: 'auto',
      localLayers: [],
      personalizeEpochs: 0,
      strategy: { name: 'fedavg', options: {} },
    });
    expect(c.classes).toHaveLength(10);
    expect(c.fineTuning).toEqual({ mode: 'feature-extraction', layers: 1, everyRounds: 1, backboneLrFactor: 1 });
    expect(c.augment).toEqual({ copies: 0, shift: 0, flip: false, rotation: 0 });
    expect(c.trust).toEqual({ normBound: 4, maxAbsValue: 1e6, weightCap: 4 });
    expect(c.normalizationTrim).toBe(0);
    expect(c.inputRange).toBeUndefined();
  });

  test('headInit auto is the discriminant where the run allows it, and a random head where it does not', () => {
    const on = (doc: Record<string, unknown>, featureDim = 256) => resolvedHeadInit(parseRunConfig(doc), featureDim);
    expect(on({})).toBe('discriminant');
    expect(on({ hidden: [128] })).toBe('random');
    expect(on({ fineTuning: { mode: 'scratch' } })).toBe('random');
    expect(on({ fineTuning: { mode: 'partial' } })).toBe('discriminant');
    expect(on({}, MAX_DISCRIMINANT_FEATURES)).toBe('discriminant');
    expect(on({}, MAX_DISCRIMINANT_FEATURES + 1)).toBe('random');
    expect(on({ privacy: { mode: 'record', noiseMultiplier: 1, clipNorm: 1 } })).toBe('random');
    expect(on({ privacy: { mode: 'client', noiseMultiplier: 1, clipNorm: 1 } })).toBe('random');
    expect(on({ secureAggregation: { enabled: true } })).toBe('random');
    // What is asked for is done (or refused), never changed.
    expect(on({ headInit: 'random' })).toBe('random');
    expect(on({ headInit: 'class-means' }, 4096)).toBe('class-means');
    // auto is never a conflict, so a hidden layer or DP alone does not need headInit set.
    expect(() => parseRunConfig({ hidden: [64], privacy: { mode: 'record', noiseMultiplier: 1, clipNorm: 1 } })).not.toThrow();
    expect(() => parseRunConfig({ headInit: 'discriminant', hidden: [64] })).toThrow(
      /headInit: discriminant sets a linear head, but hidden is \[64\]/,
    );
    expect(() => parseRunConfig({ headInit: 'discriminant', secureAggregation: { enabled: true } })).toThrow(
      /headInit: discriminant has each site send/,
    );
  });

  test('the trust policy and the robust normalisation settings are validated like every field', () => {
    expect(parseRunConfig({ trust: { normBound: 0 } }).trust).toEqual({ normBound: 0, maxAbsValue: 1e6, weightCap: 4 });
    expect(() => parseRunConfig({ trust: { normBound: -1 } })).toThrow(/trust\.normBound must be a number ≥ 0 .* \(got -1\)/);
    expect(() => parseRunConfig({ trust: { weightcap: 2 } })).toThrow(/unknown field trust\.weightcap/);
    expect(() => parseRunConfig({ inputRange: [1, 0] })).toThrow(/inputRange must be \[low, high\].*\(got \[1,0\]\)/);
    expect(() => parseRunConfig({ normalizationTrim: 1.5 })).toThrow(/normalizationTrim must be an integer in \[0, 100\]/);
    expect(parseRunConfig({ inputRange: [0, 1], normalizationTrim: 1 })).toMatchObject({ inputRange: [0, 1], normalizationTrim: 1 });
  });

  test('early stopping watches the median validation loss unless told to watch accuracy, from a file or a flag', () => {
    expect(parseRunConfig({}).patienceMetric).toBe('loss');
    expect(parseRunConfig({ patience: 3, patienceMetric: 'accuracy' })).toMatchObject({ patience: 3, patienceMetric: 'accuracy' });
    expect(() => parseRunConfig({ patienceMetric: 'f1' })).toThrow(/patienceMetric must be loss or accuracy .* \(got "f1"\)/);
    expect((parseCoordinatorArgs(['--patience', '2', '--patience-metric', 'accuracy']) as CoordinatorConfig).patienceMetric).toBe('accuracy');
    expect(() => parseCoordinatorArgs(['--patience-metric', 'f1'])).toThrow(/--patience-metric \(patienceMetric\) must be loss or accuracy/);
  });

  test('fineTuning: given fields are kept, missing ones default', () => {
    expect(parseRunConfig({ fineTuning: { mode: 'gradual', layers: 2 } }).fineTuning).toEqual({
      mode: 'gradual',
      layers: 2,
      everyRounds: 1,
      backboneLrFactor: 1,
    });
    expect(parseRunConfig({ fineTuning: { mode: 'partial', backboneLrFactor: 0 } }).fineTuning.backboneLrFactor).toBe(0);
  });

  test.each<[string, unknown, string]>([
    ['a negative round count', { rounds: -1 }, 'rounds must be a positive integer (got -1)'],
    [
      'too many augmented copies',
      { augment: { copies: 50 } },
      'augment.copies must be an integer in [0, 20] (augmented copies of each training image; 0 = off) (got 50)',
    ],
    [
      'a shift of half the image',
      { augment: { shift: 0.5 } },
      'augment.shift must be a number in [0, 0.5) (largest shift as a fraction of the side) (got 0.5)',
    ],
    ['a fractional epoch count', { fit: { epochs: 1.5 } }, 'fit.epochs must be a positive integer (got 1.5)'],
    ['a string where a number goes', { fit: { learningRate: '0.1' } }, 'fit.learningRate must be a number > 0 (got "0.1")'],
    ['a fraction above 1', { fractionFit: 1.2 }, 'fractionFit must be a number in (0, 1] (got 1.2)'],
    ['duplicate classes', { classes: ['a', 'a'] }, 'classes must be a list of at least two distinct non-empty labels (got ["a","a"])'],
    ['an unknown strategy', { strategy: { name: 'fedsgd' } }, 'strategy.name must be one of fedavg,'],
    ['a bad strategy option', { strategy: { name: 'krum', options: { f: -1 } } }, 'krum option f must be an integer ≥ 0 (got "-1")'],
    ['a typo in a field name', { round: 3 }, 'unknown field round (see docs/run-config.md)'],
    [
      'an unknown fine-tuning mode',
      { fineTuning: { mode: 'full' } },
      'fineTuning.mode must be feature-extraction, partial, gradual or scratch (got "full")',
    ],
    [
      'zero layers to unfreeze',
      { fineTuning: { mode: 'partial', layers: 0 } },
      'fineTuning.layers must be a positive integer (backbone layers with weights to unfreeze, counted down from the cut) (got 0)',
    ],
    ['a fractional unfreezing interval', { fineTuning: { everyRounds: 1.5 } }, 'fineTuning.everyRounds must be a positive integer (got 1.5)'],
    [
      'a negative backbone learning-rate factor',
      { fineTuning: { backboneLrFactor: -1 } },
      'fineTuning.backboneLrFactor must be a number ≥ 0 (got -1)',
    ],
    ['a typo inside fineTuning', { fineTuning: { layer: 1 } }, 'unknown field fineTuning.layer (see docs/run-config.md)'],
    [
      'a schedule going backwards',
      {
        schedule: {
          epochs: [
            { fromRound: 3, epochs: 2 },
            { fromRound: 2, epochs: 1 },
          ],
        },
      },
      'schedule.epochs must be a list of {fromRound, epochs} with increasing fromRound',
    ],
    [
      'a run id that is the parent folder',
      { runId: '..' },
      'runId must be 1–64 letters, digits, ".", "_" or "-", starting with a letter or digit (got "..")',
    ],
    [
      'a run id that is the current folder',
      { runId: '.' },
      'runId must be 1–64 letters, digits, ".", "_" or "-", starting with a letter or digit (got ".")',
    ],
    [
      'a run id starting with a dot',
      { runId: '.hidden' },
      'runId must be 1–64 letters, digits, ".", "_" or "-", starting with a letter or digit (got ".hidden")',
    ],
    ['a run id with a path separator', { runId: 'a/../../b' }, 'runId must be'],
    ['a billion rounds', { rounds: 1e9 }, 'rounds must be ≤ 100000 (got 1000000000)'],
    ['a hidden layer of 200,000 units', { hidden: [200000] }, 'each entry of hidden must be ≤ 65536 (got 200000)'],
    ['17 hidden layers', { hidden: Array(17).fill(8) }, 'hidden must have at most 16 entries (got [8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8])'],
    ['a wait beyond what a timer can hold', { waitTimeoutSeconds: 1e9 }, 'waitTimeoutSeconds must be ≤ 604800 (got 1000000000)'],
    ['a round deadline of years', { roundDeadlineSeconds: 1e8 }, 'roundDeadlineSeconds must be ≤ 86400 (got 100000000)'],
    ['a million local epochs', { fit: { epochs: 1e6 } }, 'fit.epochs must be ≤ 10000 (got 1000000)'],
    [
      'a schedule beyond the last possible round',
      { schedule: { epochs: [{ fromRound: 1e6, epochs: 1 }] } },
      'schedule.epochs.fromRound must be ≤ 100000 (got 1000000)',
    ],
    ['a seed beyond 32 bits', { seed: 2 ** 40 }, 'seed must be ≤ 4294967295 (got 1099511627776)'],
    [
      'a label of 300 characters',
      { classes: ['a', 'b'.repeat(300)] },
      `each entry of classes must have at most 256 characters (got "${'b'.repeat(99)}… (302 characters)`,
    ],
  ])('refuses %s with a message naming the field', (_, doc, message) => {
    expect(() => parseRunConfig(doc)).toThrow(message);
  });

  test('the largest accepted counts are the documented limits', () => {
    const c = parseRunConfig({ runId: '0.a_b-c', rounds: 100_000, hidden: Array(16).fill(65_536), waitTimeoutSeconds: 604_800, seed: 2 ** 32 - 1 });
    expect([c.runId, c.rounds, c.hidden.length, c.waitTimeoutSeconds, c.seed]).toEqual(['0.a_b-c', 100_000, 16, 604_800, 2 ** 32 - 1]);
  });

  test('every problem is listed at once', () => {
    expect(() => parseRunConfig({ rounds: 0, seed: -2 })).toThrow(
      /rounds must be a positive integer \(got 0\); seed must be an integer ≥ 0 \(got -2\)/,
    );
  });

  test('the coordinator reads a config file and flags override it', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'ftl-rc-')), 'run.json');
    writeFileSync(
      file,
      JSON.stringify({ runId: 'from-file', rounds: 9, strategy: { name: 'fedtrimmedavg', options: { beta: 0.1 } }, fit: { epochs: 2 } }),
    );
    const c = parseCoordinatorArgs(['--config', file, '--rounds', '3']) as CoordinatorConfig;
    expect(c).toMatchObject({ runId: 'from-file', rounds: 3, strategy: { name: 'fedtrimmedavg', options: { beta: 0.1 } } });
    expect(c.fit).toEqual({ epochs: 2, batchSize: 32, learningRate: 0.001 });
    writeFileSync(file, '{"rounds": -1}');
    expect(() => parseCoordinatorArgs(['--config', file])).toThrow(`${file}: rounds must be a positive integer (got -1)`);
  });
});

describe('record-level privacy', () => {
  const record = { mode: 'record', noiseMultiplier: 1.1, clipNorm: 1 };

  test('is off by default; record takes σ and C, with Poisson sampling and δ 1e-5 unless told otherwise', () => {
    expect(parseRunConfig({}).privacy).toEqual({ mode: 'none', sampling: 'poisson', delta: 1e-5 });
    expect(parseRunConfig({ privacy: record }).privacy).toEqual({ ...record, sampling: 'poisson', delta: 1e-5 });
    expect(parseRunConfig({ privacy: { ...record, sampling: 'shuffle', delta: 1e-6 } }).privacy).toMatchObject({ sampling: 'shuffle', delta: 1e-6 });
  });

  test('record takes an ε target instead of σ, which each site turns into its own σ', () => {
    const target = { mode: 'record', targetEpsilon: 8, clipNorm: 1 };
    expect(parseRunConfig({ privacy: target }).privacy).toEqual({ ...target, sampling: 'poisson', delta: 1e-5 });
    const c = parseCoordinatorArgs(['--dp', 'record,targetEpsilon=3,clipNorm=1']) as CoordinatorConfig;
    expect(c.privacy).toMatchObject({ mode: 'record', targetEpsilon: 3, clipNorm: 1 });
  });

  test('--dp sets the same fields as a file, and --dp none clears what a file set', () => {
    const c = parseCoordinatorArgs(['--dp', 'record,noiseMultiplier=1.1,clipNorm=1,sampling=shuffle,delta=1e-6']) as CoordinatorConfig;
    expect(c.privacy).toEqual({ mode: 'record', noiseMultiplier: 1.1, clipNorm: 1, sampling: 'shuffle', delta: 1e-6 });
    const file = join(mkdtempSync(join(tmpdir(), 'ftl-dp-')), 'run.json');
    writeFileSync(file, JSON.stringify({ privacy: record }));
    expect((parseCoordinatorArgs(['--config', file, '--dp', 'noiseMultiplier=2']) as CoordinatorConfig).privacy).toMatchObject({
      mode: 'record',
      noiseMultiplier: 2,
      clipNorm: 1,
    });
    expect((parseCoordinatorArgs(['--config', file, '--dp', 'none']) as CoordinatorConfig).privacy).toEqual({
      mode: 'none',
      sampling: 'poisson',
      delta: 1e-5,
    });
  });

  test.each<[string, Record<string, unknown>, string]>([
    [
      'an unknown mode',
      { mode: 'user' },
      'privacy.mode must be none, record or client (record: every site trains with DP-SGD and reports its ε; client: DP-FedAvg, each site’s change clipped and the round’s mean noised) (got "user")',
    ],
    [
      'σ 0',
      { ...record, noiseMultiplier: 0 },
      "privacy.noiseMultiplier must be a number > 0 (σ: the noise's standard deviation as a multiple of clipNorm) (got 0)",
    ],
    ['σ beyond any use', { ...record, noiseMultiplier: 1e9 }, 'privacy.noiseMultiplier must be ≤ 1000000 (got 1000000000)'],
    ['C −1', { ...record, clipNorm: -1 }, "privacy.clipNorm must be a number > 0 (C: each example's gradient is clipped to this L2 norm) (got -1)"],
    [
      'an unknown sampling',
      { ...record, sampling: 'fixed' },
      'privacy.sampling must be poisson or shuffle (how each DP-SGD step draws its examples; the ε reported is the Poisson analysis) (got "fixed")',
    ],
    ['δ 1', { ...record, delta: 1 }, 'privacy.delta must be a number in (0, 1) (the δ each site reports its ε at) (got 1)'],
    ['δ 0', { ...record, delta: 0 }, 'privacy.delta must be a number in (0, 1) (the δ each site reports its ε at) (got 0)'],
    ['a seed, which must stay the site’s secret', { ...record, seed: 3 }, 'unknown field privacy.seed (see docs/run-config.md)'],
    [
      'record without σ or a target ε',
      { mode: 'record', clipNorm: 1 },
      'privacy.noiseMultiplier: or privacy.targetEpsilon is needed with privacy.mode record',
    ],
    [
      'record with both σ and a target ε',
      { ...record, targetEpsilon: 8 },
      'privacy.targetEpsilon: and privacy.noiseMultiplier are both set: with targetEpsilon each site sets its own σ',
    ],
    ['record without C', { mode: 'record', noiseMultiplier: 1 }, 'privacy.clipNorm: is needed with privacy.mode record'],
    ['σ without record', { noiseMultiplier: 1.1 }, 'privacy.noiseMultiplier: is set but privacy.mode is none, so no site would add noise or clip'],
  ])('refuses %s with a message naming the field', (_, privacy, message) => {
    expect(() => parseRunConfig({ privacy })).toThrow(message);
  });

  test.each<[string, Record<string, unknown>, RegExp]>([
    [
      'the class-means head (exact feature sums)',
      { hidden: [], headInit: 'class-means' },
      /privacy\.mode: .*headInit class-means sends each site's exact per-class feature sums/,
    ],
    ['the discriminant head (sums and scatter)', { hidden: [], headInit: 'discriminant' }, /headInit discriminant sends .* sums and scatter/],
    [
      'federated normalisation (exact statistics)',
      { normalization: 'standard' },
      /normalization standard has each site send the exact sums, minima and maxima/,
    ],
    [
      'augmented copies (a record counted several times)',
      { augment: { copies: 2 } },
      /augment\.copies 2 puts every record in the training set 3 times/,
    ],
  ])('refuses record-level DP with %s, which DP-SGD cannot honour', (_, other, message) => {
    expect(() => parseRunConfig({ ...other, privacy: record })).toThrow(message);
    expect(() => parseRunConfig(other)).not.toThrow();
  });

  test('a flag gets the file’s message for the same value, naming the flag', () => {
    for (const [flag, doc] of [
      ['record,noiseMultiplier=0,clipNorm=1', { ...record, noiseMultiplier: 0 }],
      ['record,noiseMultiplier=1.1,clipNorm=-1', { ...record, clipNorm: -1 }],
      ['record,noiseMultiplier=1.1,clipNorm=1,delta=2', { ...record, delta: 2 }],
      ['record,noiseMultiplier=1.1,clipNorm=1,sampling=fixed', { ...record, sampling: 'fixed' }],
      ['record,clipNorm=1', { mode: 'record', clipNorm: 1 }],
    ] as const) {
      const fromFlag = messageOf(() => parseCoordinatorArgs(['--dp', flag]));
      const fromFile = messageOf(() => parseRunConfig({ privacy: doc }));
      expect(fromFlag).toBe(fromFile.replace(/^run config: /, 'command line: ').replace(/privacy\.(\w+)/, '--dp (privacy.$1)'));
    }
    expect(messageOf(() => parseCoordinatorArgs(['--dp', 'record,noiseMultiplier=1,clipNorm=1', '--augment', 'copies=1']))).toMatch(
      /^command line: --dp \(privacy\.mode\): DP-SGD clips each example, but augment\.copies 1/,
    );
  });
});

describe('client-level privacy', () => {
  const client = { mode: 'client', noiseMultiplier: 1, clipNorm: 0.5 };
  const adaptiveClipping = { targetQuantile: 0.5, learningRate: 0.2, countNoiseMultiplier: 5 };

  test('client takes z and S; noise, adaptive clipping and a target ε are its own optional settings', () => {
    expect(parseRunConfig({ privacy: client }).privacy).toEqual({ ...client, sampling: 'poisson', delta: 1e-5 });
    const full = { ...client, noise: 'central', adaptiveClipping, targetEpsilon: 3, delta: 1e-6 };
    expect(parseRunConfig({ privacy: full }).privacy).toEqual({ ...full, sampling: 'poisson' });
    expect(parseRunConfig({ privacy: { ...client, noise: 'local' }, strategy: { name: 'fedadam' } }).privacy).toMatchObject({ noise: 'local' });
    const c = parseCoordinatorArgs(['--dp', 'client,noiseMultiplier=1.2,clipNorm=0.3,noise=local,targetEpsilon=4']) as CoordinatorConfig;
    expect(c.privacy).toMatchObject({ mode: 'client', noiseMultiplier: 1.2, clipNorm: 0.3, noise: 'local', targetEpsilon: 4 });
  });

  test.each<[string, Record<string, unknown>, Record<string, unknown>, string | RegExp]>([
    ['client without z', { mode: 'client', clipNorm: 1 }, {}, 'privacy.noiseMultiplier: is needed with privacy.mode client'],
    ['client without S', { mode: 'client', noiseMultiplier: 1 }, {}, 'privacy.clipNorm: is needed with privacy.mode client'],
    ['an unknown noise', { ...client, noise: 'both' }, {}, /privacy\.noise must be central or local .*\(got "both"\)/],
    [
      'γ 1',
      { ...client, adaptiveClipping: { ...adaptiveClipping, targetQuantile: 1 } },
      {},
      /privacy\.adaptiveClipping\.targetQuantile must be a number in \(0, 1\)/,
    ],
    [
      'η_C 0',
      { ...client, adaptiveClipping: { ...adaptiveClipping, learningRate: 0 } },
      {},
      /privacy\.adaptiveClipping\.learningRate must be a number > 0/,
    ],
    [
      'σ_b at most z/2',
      { ...client, noiseMultiplier: 2, adaptiveClipping: { ...adaptiveClipping, countNoiseMultiplier: 1 } },
      {},
      'privacy.adaptiveClipping.countNoiseMultiplier: must be more than half of privacy.noiseMultiplier (2)',
    ],
    [
      'adaptive clipping with local noise',
      { ...client, noise: 'local', adaptiveClipping },
      {},
      /privacy\.adaptiveClipping: needs privacy\.noise central: with local noise the coordinator would see each site’s clipped-or-not bit exactly/,
    ],
    ['a target ε of 0', { ...client, targetEpsilon: 0 }, {}, /privacy\.targetEpsilon must be a number > 0/],
    [
      'noise without client',
      { mode: 'record', noiseMultiplier: 1, clipNorm: 1, noise: 'central' },
      {},
      'privacy.noise: is a setting of client-level DP but privacy.mode is record',
    ],
    ['a target ε without DP', { targetEpsilon: 3 }, {}, 'privacy.targetEpsilon: is set but privacy.mode is none, so no site would add noise or clip'],
    [
      'the median (not a mean)',
      client,
      { strategy: { name: 'fedmedian' } },
      /strategy\.name: fedmedian does not average the updates, .*sensitivity S\/m/,
    ],
    ['Krum', client, { strategy: { name: 'krum' } }, /strategy\.name: krum does not average the updates/],
    ['the trimmed mean', client, { strategy: { name: 'fedtrimmedavg' } }, /fedtrimmedavg does not average the updates/],
    ['norm bounding weighted by samples', client, { strategy: { name: 'normbounded' } }, /normbounded weights the updates by sample count/],
    ['the class-means head', client, { hidden: [], headInit: 'class-means' }, /headInit class-means sends each site's exact per-class feature sums/],
    ['federated normalisation', client, { normalization: 'min-max' }, /normalization min-max has each site send the exact statistics/],
  ])('refuses %s with a message naming the field and the fix', (_, privacy, other, message) => {
    expect(() => parseRunConfig({ ...other, privacy })).toThrow(message);
  });

  test.each(['fedavg', 'fedprox', 'fedavgm', 'fedadam', 'fedyogi', 'fedadagrad'])(
    'takes %s, whose server step only post-processes the noised mean',
    (name) => {
      expect(parseRunConfig({ privacy: client, strategy: { name } }).strategy.name).toBe(name);
    },
  );

  test('takes augmentation, which record-level DP refuses: the unit protected is the whole site', () => {
    expect(parseRunConfig({ privacy: client, augment: { copies: 2 } }).augment.copies).toBe(2);
  });
});

describe('a tabular run from the command line', () => {
  test('--table-schema reads the table block from its own file, checked by the same schema', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ftl-table-'));
    const file = join(dir, 'table.json');
    writeFileSync(
      file,
      JSON.stringify({
        columns: [
          { name: 'age', type: 'numeric' },
          { name: 'y', type: 'categorical', role: 'label' },
        ],
      }),
    );
    const c = parseCoordinatorArgs(['--table-schema', file]) as CoordinatorConfig;
    expect(c.table?.columns.map((col) => [col.name, col.role])).toEqual([
      ['age', 'feature'],
      ['y', 'label'],
    ]);
    expect(c.table?.scaling).toBe('standard');
    expect(() => parseCoordinatorArgs(['--table-schema', join(dir, 'none.json')])).toThrow(
      /^--table-schema .*none\.json: cannot read it as JSON \(ENOENT[^\n]*\); give a file holding the table block/,
    );
    writeFileSync(file, JSON.stringify({ columns: [{ name: 'age', type: 'integer' }] }));
    expect(() => parseCoordinatorArgs(['--table-schema', file])).toThrow(/table\.columns\.type/);
  });
});

describe('the command line comes from the run config schema', () => {
  /** `doc` with `value` at `path`. */
  const withValue = (path: string, value: unknown): Record<string, unknown> => {
    const keys = path.split('.');
    const doc: Record<string, unknown> = {};
    let o = doc;
    for (const k of keys.slice(0, -1)) o = (o[k] = {}) as Record<string, unknown>;
    o[keys.at(-1)!] = value;
    return doc;
  };

  test("every field of the schema can be set by a flag, and --help lists each flag with the schema's default", () => {
    const flags = runConfigFlags();
    const covered = (path: string) => flags.some((f) => f.path === path || f.alsoPaths?.includes(path) || path.startsWith(`${f.path}.`));
    for (const [key, field] of Object.entries(RunConfigSchema.shape)) {
      const inner = (field as { def?: { innerType?: { shape?: Record<string, unknown> } } }).def?.innerType?.shape;
      const paths = inner && !covered(key) ? Object.keys(inner).map((k) => `${key}.${k}`) : [key];
      for (const path of paths) expect(covered(path), `${path} has no flag`).toBe(true);
    }
    for (const f of flags) expect(COORDINATOR_HELP).toContain(`  --${f.name} ${f.arg}`);
    expect(COORDINATOR_HELP).toMatch(/--rounds N\s+rounds to train \(default 5\)/);
    expect(COORDINATOR_HELP).toMatch(/--lr X\s+client learning rate \(Adam\) \(default 0\.001\)/);
  });

  test("a numeric flag out of bounds gets the config file's message for the same value, naming the flag", () => {
    const numeric = runConfigFlags().filter((f) => f.read === flagText.number);
    expect(numeric.length).toBeGreaterThan(15);
    for (const f of numeric) {
      const fromFlag = messageOf(() => parseCoordinatorArgs([`--${f.name}`, '-1000000000']));
      const fromFile = messageOf(() => parseRunConfig(withValue(f.path, -1e9)));
      expect(fromFlag).toBe(fromFile.replace(/^run config: /, 'command line: ').replace(`${f.path} must`, `--${f.name} (${f.path}) must`));
    }
  });

  test('flags over a config file change only what they name', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ftl-flags-'));
    const file = join(dir, 'run.json');
    writeFileSync(
      file,
      JSON.stringify({
        rounds: 7,
        fit: { epochs: 3, learningRate: 0.01 },
        fineTuning: { mode: 'partial', layers: 2 },
        strategy: { name: 'fedtrimmedavg', options: { beta: 0.2 } },
      }),
    );
    const c = parseCoordinatorArgs([
      '--config',
      file,
      '--lr',
      '0.02',
      '--fine-tuning',
      'layers=3',
      '--strategy-options',
      'beta=0.3',
    ]) as CoordinatorConfig;
    expect(c.rounds).toBe(7);
    expect(c.fit).toEqual({ epochs: 3, batchSize: 32, learningRate: 0.02 });
    expect(c.fineTuning).toMatchObject({ mode: 'partial', layers: 3 });
    expect(c.strategy).toMatchObject({ name: 'fedtrimmedavg', options: { beta: 0.3 } });
  });
});
