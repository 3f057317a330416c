import { formatPercentInterval, type MeanInterval, meanInterval } from '../confidence.js';
import type { MethodRun, RoundPoint, StudyReport } from './types.js';

/**
 * The accuracy a group's curve is drawn from: the held-out set's when every finished run of the group
 * measured it in some round, otherwise the sites' validation splits'. One group never mixes the two, so a
 * curve does not jump between test sets from one round to the next.
 */
export type CurveMetric = 'heldOut' | 'valAccuracy';

/** One round of a group's curve: the accuracy across seeds, and the mean traffic up to and including that round. */
export interface CurvePoint extends MeanInterval {
  round: number;
  /** Mean cumulative bytes (in + out, all sites) through this round, over the same runs as the accuracy. */
  bytes: number;
}

/** How the finished runs of a group reached the study's target accuracy. */
export interface TargetReach {
  /** Runs whose accuracy reached the target in some round, of the finished runs. */
  reached: number;
  of: number;
  /** First round at or above the target, over the runs that reached it. */
  rounds: MeanInterval;
  /** Seconds of training up to and including that round (the rounds' own `seconds` summed). */
  seconds: MeanInterval;
}

/** A setting a study sweeps, as one run records it. */
export type Setting = NonNullable<MethodRun['setting']>;

/** One (setting, method) group summarised across its seeds. Failed runs are counted here and averaged nowhere. */
export interface MethodSummary {
  setting?: Setting;
  method: string;
  /** Runs in the group, failed ones included. */
  runs: number;
  failures: { seed: number; reason: string }[];
  /** Seeds of the finished runs. */
  seeds: number[];
  /** Final held-out accuracy across seeds. */
  heldOut: MeanInterval;
  /** Worst site's held-out accuracy across seeds, when the runs report one (`local`). */
  worstHeldOut?: MeanInterval;
  metric: CurveMetric;
  curve: CurvePoint[];
  /** Absent when the study sets no target. */
  target?: TargetReach;
  /** Mean bytes (in + out) per round of each run, across seeds. */
  bytesPerRound: MeanInterval;
  bytesTotal: MeanInterval;
  updateValues: MeanInterval;
  seconds: MeanInterval;
  /** Final per-site accuracies of every finished run, pooled over seeds. */
  finalClientAccuracy: number[];
}

/** A setting where transfer ended below a from-scratch or linear baseline. */
export interface NegativeTransfer {
  setting?: Setting;
  baseline: string;
  transfer: MeanInterval;
  other: MeanInterval;
  /** Whether the two 95% intervals overlap; undefined when either has one seed and so no interval. */
  overlap: boolean | undefined;
  /** The finding as one plain sentence, with both figures. */
  sentence: string;
}

/** The baselines transfer must beat: a model trained from nothing on the same sites, and a linear model. */
const NEGATIVE_TRANSFER_BASELINES = ['scratch', 'linear'] as const;

/** `samples per site = 50`, or undefined for a study that sweeps nothing. */
export function settingLabel(setting: Setting | undefined): string | undefined {
  return setting === undefined ? undefined : `${setting.name} = ${setting.value}`;
}

function settingKey(setting: Setting | undefined): string {
  return setting === undefined ? '' : `${setting.name}\u0000${typeof setting.value}\u0000${setting.value}`;
}

/** Whether two runs or groups belong to the same setting (both to none, in a study that sweeps nothing). */
export function sameSetting(a: Setting | undefined, b: Setting | undefined): boolean {
  return settingKey(a) === settingKey(b);
}

/**
 * The settings of a study in display order: ascending when every value is a number, as first seen
 * otherwise. A study without a sweep has the one setting `undefined`.
 */
export function studySettings(runs: readonly MethodRun[]): (Setting | undefined)[] {
  const seen = new Map<string, Setting | undefined>();
  for (const run of runs) if (!seen.has(settingKey(run.setting))) seen.set(settingKey(run.setting), run.setting);
  const settings = [...seen.values()];
  if (settings.every((s) => typeof s?.value === 'number')) settings.sort((a, b) => (a!.value as number) - (b!.value as number));
  return settings;
}

/** The methods of a study in display order: `transfer` first, the baselines as first seen. */
export function studyMethods(runs: readonly MethodRun[]): string[] {
  const methods = [...new Set(runs.map((r) => r.method))];
  return methods.includes('transfer') ? ['transfer', ...methods.filter((m) => m !== 'transfer')] : methods;
}

/** Whether the study sweeps a setting: two or more distinct values. */
export function sweepsSetting(runs: readonly MethodRun[]): boolean {
  return studySettings(runs).length > 1;
}

function accuracyOf(point: RoundPoint, metric: CurveMetric): number | undefined {
  const value = metric === 'heldOut' ? point.heldOut : point.valAccuracy;
  return value !== undefined && Number.isFinite(value) ? value : undefined;
}

function finite(values: readonly number[]): number[] {
  return values.filter((v) => Number.isFinite(v));
}

/** Per round: the accuracy across the runs that measured it, and those runs' mean cumulative bytes. */
function curveOf(runs: readonly MethodRun[], metric: CurveMetric): CurvePoint[] {
  const byRound = new Map<number, { accuracy: number[]; bytes: number[] }>();
  for (const run of runs) {
    let bytes = 0;
    for (const point of [...run.rounds].sort((a, b) => a.round - b.round)) {
      bytes += point.bytesIn + point.bytesOut;
      const accuracy = accuracyOf(point, metric);
      if (accuracy === undefined) continue;
      const at = byRound.get(point.round) ?? { accuracy: [], bytes: [] };
      at.accuracy.push(accuracy);
      at.bytes.push(bytes);
      byRound.set(point.round, at);
    }
  }
  return [...byRound.entries()]
    .sort(([a], [b]) => a - b)
    .map(([round, at]) => ({ round, ...meanInterval(at.accuracy), bytes: at.bytes.reduce((a, b) => a + b, 0) / at.bytes.length }));
}

/** The first round whose accuracy is at or above `target`, and the seconds spent up to and including it. */
function reachOf(run: MethodRun, metric: CurveMetric, target: number): { round: number; seconds: number } | undefined {
  let seconds = 0;
  for (const point of [...run.rounds].sort((a, b) => a.round - b.round)) {
    seconds += point.seconds;
    const accuracy = accuracyOf(point, metric);
    if (accuracy !== undefined && accuracy >= target) return { round: point.round, seconds };
  }
  return undefined;
}

function finalClientAccuracy(run: MethodRun): number[] {
  if (run.perClientAccuracy !== undefined) return finite(run.perClientAccuracy);
  const last = run.rounds.reduce<RoundPoint | undefined>((a, p) => (a === undefined || p.round > a.round ? p : a), undefined);
  return finite((last?.perClient ?? []).map((c) => c.valAccuracy));
}

function summarizeGroup(setting: Setting | undefined, method: string, runs: readonly MethodRun[], target: number | undefined): MethodSummary {
  const done = runs.filter((r) => r.failed === undefined);
  const metric: CurveMetric =
    done.length > 0 && done.every((r) => r.rounds.some((p) => accuracyOf(p, 'heldOut') !== undefined)) ? 'heldOut' : 'valAccuracy';
  const worst = done.filter((r) => r.worstHeldOut !== undefined).map((r) => r.worstHeldOut!);
  const summary: MethodSummary = {
    ...(setting !== undefined ? { setting } : {}),
    method,
    runs: runs.length,
    failures: runs.filter((r) => r.failed !== undefined).map((r) => ({ seed: r.seed, reason: r.failed! })),
    seeds: done.map((r) => r.seed),
    heldOut: meanInterval(finite(done.map((r) => r.heldOut))),
    ...(worst.length > 0 ? { worstHeldOut: meanInterval(finite(worst)) } : {}),
    metric,
    curve: curveOf(done, metric),
    bytesPerRound: meanInterval(
      done.filter((r) => r.rounds.length > 0).map((r) => r.rounds.reduce((a, p) => a + p.bytesIn + p.bytesOut, 0) / r.rounds.length),
    ),
    bytesTotal: meanInterval(finite(done.map((r) => r.bytesTotal))),
    updateValues: meanInterval(finite(done.map((r) => r.updateValues))),
    seconds: meanInterval(finite(done.map((r) => r.seconds))),
    finalClientAccuracy: done.flatMap(finalClientAccuracy),
  };
  if (target !== undefined) {
    const reaches = done.map((r) => reachOf(r, metric, target)).filter((r) => r !== undefined);
    summary.target = {
      reached: reaches.length,
      of: done.length,
      rounds: meanInterval(reaches.map((r) => r.round)),
      seconds: meanInterval(reaches.map((r) => r.seconds)),
    };
  }
  return summary;
}

/**
 * Every (setting, method) group of a study summarised across seeds, settings in `studySettings` order and
 * methods in `studyMethods` order within each. A group whose runs all failed still appears, with no mean.
 *
 * @example
 * for (const s of summarizeStudy(report)) console.log(s.method, formatPercentInterval(s.heldOut), `${s.failures.length} failed`);
 */
export function summarizeStudy(report: Pick<StudyReport, 'runs' | 'target'>): MethodSummary[] {
  const methods = studyMethods(report.runs);
  return studySettings(report.runs).flatMap((setting) =>
    methods.flatMap((method) => {
      const runs = report.runs.filter((r) => r.method === method && sameSetting(r.setting, setting));
      return runs.length > 0 ? [summarizeGroup(setting, method, runs, report.target)] : [];
    }),
  );
}

/** Whether two 95% intervals share a point; undefined when either is missing (one seed). */
export function intervalsOverlap(a: MeanInterval, b: MeanInterval): boolean | undefined {
  if (!Number.isFinite(a.half) || !Number.isFinite(b.half)) return undefined;
  return Math.abs(a.mean - b.mean) <= a.half + b.half;
}

function seedsText(m: MeanInterval): string {
  return `${m.n} seed${m.n === 1 ? '' : 's'}`;
}

/**
 * For each setting, each baseline (`scratch`, `linear`) whose mean held-out accuracy is above transfer's:
 * transfer did worse than not transferring. Groups with no finished run compare nothing.
 *
 * @example
 * negativeTransfer(summarizeStudy(report)).map((f) => f.sentence);
 * // ['At samples per site = 10, transfer's mean held-out accuracy (61.00% ± 4.10, 3 seeds) is below scratch's (66.00% ± 2.00, 3 seeds); the 95% intervals overlap, so seed-to-seed variation may explain the gap.']
 */
export function negativeTransfer(summaries: readonly MethodSummary[]): NegativeTransfer[] {
  const findings: NegativeTransfer[] = [];
  for (const transfer of summaries.filter((s) => s.method === 'transfer' && Number.isFinite(s.heldOut.mean))) {
    const here = summaries.filter((s) => sameSetting(s.setting, transfer.setting));
    for (const baseline of NEGATIVE_TRANSFER_BASELINES) {
      const other = here.find((s) => s.method === baseline);
      if (other === undefined || !Number.isFinite(other.heldOut.mean) || !(transfer.heldOut.mean < other.heldOut.mean)) continue;
      const overlap = intervalsOverlap(transfer.heldOut, other.heldOut);
      const where = settingLabel(transfer.setting);
      const verdict =
        overlap === undefined
          ? 'with a single seed on one side there is no interval, so this may be seed-to-seed variation.'
          : overlap
            ? 'the 95% intervals overlap, so seed-to-seed variation may explain the gap.'
            : 'the 95% intervals do not overlap.';
      findings.push({
        ...(transfer.setting !== undefined ? { setting: transfer.setting } : {}),
        baseline,
        transfer: transfer.heldOut,
        other: other.heldOut,
        overlap,
        sentence:
          `${where !== undefined ? `At ${where}, transfer's` : "Transfer's"} mean held-out accuracy ` +
          `(${formatPercentInterval(transfer.heldOut)}, ${seedsText(transfer.heldOut)}) is below ${baseline}'s ` +
          `(${formatPercentInterval(other.heldOut)}, ${seedsText(other.heldOut)}); ${verdict}`,
      });
    }
  }
  return findings;
}

/** One standard error of an accuracy `p` measured on `n` independent examples: √(p(1−p)/n). */
export function proportionStandardError(p: number, n: number): number {
  return Math.sqrt((p * (1 - p)) / n);
}

/**
 * What the held-out set's size alone allows one to read from an accuracy: its name and size, and one
 * standard error near the accuracy the study observed (the mean over every finished run).
 */
export function heldOutSentence(report: Pick<StudyReport, 'heldOut' | 'runs'>): string {
  const { dataset, images } = report.heldOut;
  const observed = finite(report.runs.filter((r) => r.failed === undefined).map((r) => r.heldOut));
  const base = `Held-out set: ${dataset}, ${images.toLocaleString('en-US')} images.`;
  if (observed.length === 0 || !(images > 0)) return base;
  const p = observed.reduce((a, b) => a + b, 0) / observed.length;
  const se = proportionStandardError(p, images);
  return (
    `${base} Near the observed accuracy of ${(p * 100).toFixed(1)}%, one standard error of an accuracy measured on it is ` +
    `√(p(1−p)/n) = ${(se * 100).toFixed(2)} percentage points: a single run's accuracy cannot be read more finely than that.`
  );
}
