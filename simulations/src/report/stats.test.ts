import { describe, expect, test } from 'vitest';
import { fixtureRun, fixtureStudy } from './study-fixture.js';
import {
  heldOutSentence,
  intervalsOverlap,
  negativeTransfer,
  proportionStandardError,
  studyMethods,
  studySettings,
  summarizeStudy,
} from './stats.js';

const transfer = [
  fixtureRun({ method: 'transfer', seed: 1, accuracies: [0.7, 0.8, 0.8] }),
  fixtureRun({ method: 'transfer', seed: 2, accuracies: [0.72, 0.86, 0.84] }),
  fixtureRun({ method: 'transfer', seed: 3, accuracies: [0.74, 0.84, 0.88] }),
];
const failed = fixtureRun({ method: 'transfer', seed: 4, accuracies: [0.1], failed: 'out of memory in round 2' });
const scratch = (finals: number[]) => finals.map((f, i) => fixtureRun({ method: 'scratch', seed: i + 1, accuracies: [0.5, 0.6, f] }));

describe('summaries across seeds', () => {
  test('the held-out mean and its 95% t-interval match the hand computation', () => {
    const [s] = summarizeStudy(fixtureStudy(transfer));
    // Finals 0.80, 0.84, 0.88: s = 0.04, half = t(0.975, 2) · s / √3 = 4.303 · 0.04 / 1.7320508 = 0.0993735.
    expect(s!.heldOut.mean).toBeCloseTo(0.84, 12);
    expect(s!.heldOut.half).toBeCloseTo(0.0993735, 6);
    expect(s!.heldOut.n).toBe(3);
  });

  test('each round has its mean and interval across seeds, and the mean bytes moved so far', () => {
    const [s] = summarizeStudy(fixtureStudy(transfer));
    expect(s!.metric).toBe('heldOut');
    expect(s!.curve.map((p) => p.round)).toEqual([1, 2, 3]);
    // Round 2: 0.80, 0.86, 0.84 → mean 0.83333, s = 0.0305505, half = 4.303 · s / √3 = 0.0758978.
    expect(s!.curve[1]!.mean).toBeCloseTo(0.833333, 6);
    expect(s!.curve[1]!.half).toBeCloseTo(0.0758978, 6);
    expect(s!.curve.map((p) => p.bytes)).toEqual([3000, 6000, 9000]);
    expect(s!.bytesPerRound.mean).toBe(3000);
  });

  test('rounds and seconds to target count only the runs that reached it', () => {
    const [s] = summarizeStudy(fixtureStudy(transfer, { target: 0.85 }));
    // Seed 1 never reaches 0.85; seed 2 does in round 2 (4 s), seed 3 in round 3 (6 s).
    expect(s!.target).toMatchObject({ reached: 2, of: 3 });
    expect(s!.target!.rounds.mean).toBe(2.5);
    expect(s!.target!.seconds.mean).toBe(5);
    expect(summarizeStudy(fixtureStudy(transfer))[0]!.target).toBeUndefined();
  });

  test('a failed run is counted with its reason and averaged nowhere', () => {
    const [s] = summarizeStudy(fixtureStudy([...transfer, failed]));
    expect(s!.runs).toBe(4);
    expect(s!.failures).toEqual([{ seed: 4, reason: 'out of memory in round 2' }]);
    expect(s!.seeds).toEqual([1, 2, 3]);
    expect(s!.heldOut.mean).toBeCloseTo(0.84, 12);
    expect(s!.curve[0]!.n).toBe(3);
  });

  test('a group whose every run failed still appears, with no mean', () => {
    const [s] = summarizeStudy(fixtureStudy([failed]));
    expect(s!.failures).toHaveLength(1);
    expect(s!.heldOut.n).toBe(0);
    expect(s!.heldOut.mean).toBeNaN();
  });

  test('runs without a held-out figure per round are drawn from the validation accuracy', () => {
    const noHeldOut = transfer.map((r) => ({ ...r, rounds: r.rounds.map(({ heldOut: _, ...p }) => p) }));
    const [s] = summarizeStudy(fixtureStudy(noHeldOut));
    expect(s!.metric).toBe('valAccuracy');
    expect(s!.curve[0]!.mean).toBeCloseTo(0.71, 12);
  });

  test('settings sort by value, transfer leads the methods, and groups follow that order', () => {
    const runs = [100, 10, 50].flatMap((value) => [
      fixtureRun({ method: 'scratch', seed: 1, accuracies: [0.5], setting: { name: 'samples per site', value } }),
      fixtureRun({ method: 'transfer', seed: 1, accuracies: [0.9], setting: { name: 'samples per site', value } }),
    ]);
    expect(studySettings(runs).map((s) => s?.value)).toEqual([10, 50, 100]);
    expect(studyMethods(runs)).toEqual(['transfer', 'scratch']);
    expect(summarizeStudy(fixtureStudy(runs)).map((s) => `${s.setting?.value} ${s.method}`)).toEqual([
      '10 transfer',
      '10 scratch',
      '50 transfer',
      '50 scratch',
      '100 transfer',
      '100 scratch',
    ]);
  });

  test('final per-site accuracies pool over seeds, from the last round when the run gives none', () => {
    const withSites = fixtureRun({ method: 'local', seed: 1, accuracies: [0.6], perClientAccuracy: [0.5, 0.7] });
    const fromRound = fixtureRun({ method: 'local', seed: 2, accuracies: [0.6] });
    fromRound.rounds[0]!.perClient = [{ client: 'a', samples: 10, valAccuracy: 0.4, valLoss: 1 }];
    expect(summarizeStudy(fixtureStudy([withSites, fromRound]))[0]!.finalClientAccuracy).toEqual([0.5, 0.7, 0.4]);
  });
});

describe('negative transfer', () => {
  test('transfer below scratch is one sentence with both figures and whether the intervals overlap', () => {
    const findings = negativeTransfer(summarizeStudy(fixtureStudy([...transfer, ...scratch([0.86, 0.9, 0.94])])));
    expect(findings.map((f) => f.sentence)).toEqual([
      "Transfer's mean held-out accuracy (84.00% ± 9.94, 3 seeds) is below scratch's (90.00% ± 9.94, 3 seeds); " +
        'the 95% intervals overlap, so seed-to-seed variation may explain the gap.',
    ]);
    expect(findings[0]!.overlap).toBe(true);
  });

  test('separate intervals are said to be separate, and the setting is named', () => {
    const at = { name: 'samples per site', value: 10 };
    const runs = [...transfer, ...scratch([0.95, 0.951, 0.952])].map((r) => ({ ...r, setting: at }));
    const [finding] = negativeTransfer(summarizeStudy(fixtureStudy(runs)));
    expect(finding!.overlap).toBe(false);
    expect(finding!.sentence).toMatch(/^At samples per site = 10, transfer's .* the 95% intervals do not overlap\.$/);
  });

  test.each([
    ['scratch below transfer', 'scratch', [0.5, 0.6, 0.7], 0],
    ['linear above transfer', 'linear', [0.9, 0.92, 0.94], 1],
    ['another baseline above transfer', 'centralized', [0.9, 0.92, 0.94], 0],
  ])('%s: %i sentences', (_, method, finals, count) => {
    const other = finals.map((f, i) => fixtureRun({ method, seed: i + 1, accuracies: [f] }));
    expect(negativeTransfer(summarizeStudy(fixtureStudy([...transfer, ...other])))).toHaveLength(count);
  });

  test('one seed on a side leaves the overlap unknown', () => {
    const findings = negativeTransfer(summarizeStudy(fixtureStudy([transfer[0]!, ...scratch([0.9])])));
    expect(findings[0]!.overlap).toBeUndefined();
    expect(findings[0]!.sentence).toContain('(80.00%, 1 seed)');
  });

  test.each([
    [0.5, 0.1, 0.7, 0.1, true],
    [0.5, 0.1, 0.71, 0.1, false],
    [0.5, Number.NaN, 0.6, 0.1, undefined],
  ])('[%d ± %d] and [%d ± %d] overlap: %s', (m1, h1, m2, h2, expected) => {
    expect(intervalsOverlap({ mean: m1, half: h1, n: 3 }, { mean: m2, half: h2, n: 3 })).toBe(expected);
  });
});

describe('the held-out set', () => {
  test('one standard error of a proportion is √(p(1−p)/n)', () => {
    expect(proportionStandardError(0.9, 10_000)).toBeCloseTo(0.003, 12);
  });

  test('the sentence names the set and the standard error near the observed accuracy', () => {
    const runs = [fixtureRun({ method: 'transfer', seed: 1, accuracies: [0.9] }), { ...failed, heldOut: 0.1 }];
    expect(heldOutSentence(fixtureStudy(runs))).toBe(
      'Held-out set: MNIST test, 10,000 images. Near the observed accuracy of 90.0%, one standard error of an accuracy ' +
        "measured on it is √(p(1−p)/n) = 0.30 percentage points: a single run's accuracy cannot be read more finely than that.",
    );
  });
});
