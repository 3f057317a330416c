import { formatPercentInterval } from '../confidence.js';
import { formatBytesInterval, formatInterval } from './format.js';
import { type MethodSummary, studySettings } from './stats.js';
import type { StudyReport } from './types.js';

/** A table as text cells, written out by the HTML and the markdown writers alike so both show the same figures. */
export interface SummaryTable {
  title: string;
  header: string[];
  rows: string[][];
}

function failedCell(s: MethodSummary): string {
  return s.failures.length === 0 ? '0' : `${s.failures.length} of ${s.runs}`;
}

/**
 * The ε of a group's finished runs after their last round, as `a–b` over seeds (one value when they
 * agree), or `–` when none reported one: the run's own ε with client-level DP, the largest a site
 * reported with record-level DP.
 */
function finalEpsilon(runs: StudyReport['runs'], s: MethodSummary): string {
  const same = (r: StudyReport['runs'][number]) =>
    r.method === s.method && !r.failed && r.setting?.name === s.setting?.name && r.setting?.value === s.setting?.value;
  const values = runs.filter(same).flatMap((r) => {
    const e = [...r.rounds].reverse().find((p) => p.epsilon !== undefined)?.epsilon;
    return e === undefined ? [] : [e];
  });
  if (values.length === 0) return '–';
  const [lo, hi] = [Math.min(...values), Math.max(...values)];
  return lo.toFixed(2) === hi.toFixed(2) ? lo.toFixed(2) : `${lo.toFixed(2)}–${hi.toFixed(2)}`;
}

/**
 * The study's two tables: accuracy (held-out mean ± 95% CI, finished seeds, failed runs, the worst
 * site's accuracy when a method reports it, and the ε spent when the runs report one) and cost (rounds
 * and seconds to the target, bytes, values per update, time). A setting column leads both when the
 * study sweeps one.
 */
export function summaryTables(report: Pick<StudyReport, 'runs' | 'target'>, summaries: readonly MethodSummary[]): SummaryTable[] {
  const settings = studySettings(report.runs);
  const sweep = settings.length > 1;
  const lead = (s: MethodSummary) => (sweep ? [String(s.setting?.value ?? '–'), s.method] : [s.method]);
  const leadHeader = sweep ? [settings[0]?.name ?? 'setting', 'Method'] : ['Method'];
  const worst = summaries.some((s) => s.worstHeldOut !== undefined);
  // A DP study's accuracy beside the ε it cost.
  const epsilon = report.runs.some((r) => r.rounds.some((p) => p.epsilon !== undefined));
  const accuracy: SummaryTable = {
    title: 'Held-out accuracy',
    header: [
      ...leadHeader,
      'Held-out accuracy (mean ± 95% CI)',
      'Seeds',
      'Failed',
      ...(worst ? ['Worst site (mean ± 95% CI)'] : []),
      ...(epsilon ? ['ε after the last round (over seeds)'] : []),
    ],
    rows: summaries.map((s) => [
      ...lead(s),
      formatPercentInterval(s.heldOut),
      String(s.heldOut.n),
      failedCell(s),
      ...(worst ? [s.worstHeldOut ? formatPercentInterval(s.worstHeldOut) : ''] : []),
      ...(epsilon ? [finalEpsilon(report.runs, s)] : []),
    ]),
  };
  const target = report.target;
  const targetText = target !== undefined ? `${(target * 100).toFixed(1)}%` : '';
  const cost: SummaryTable = {
    title: 'Cost',
    header: [
      ...leadHeader,
      ...(target !== undefined ? [`Reached ${targetText}`, `Rounds to ${targetText}`, `Seconds to ${targetText}`] : []),
      'Bytes per round',
      'Bytes per run',
      'Values per update',
      'Seconds per run',
    ],
    rows: summaries.map((s) => [
      ...lead(s),
      ...(s.target !== undefined ? [`${s.target.reached}/${s.target.of}`, formatInterval(s.target.rounds), formatInterval(s.target.seconds)] : []),
      formatBytesInterval(s.bytesPerRound),
      formatBytesInterval(s.bytesTotal),
      Number.isFinite(s.updateValues.mean) ? Math.round(s.updateValues.mean).toLocaleString('en-US') : '–',
      formatInterval(s.seconds),
    ]),
  };
  return [accuracy, cost];
}

/** Each failed run as `method, seed 3 (setting): reason`, so a table's failed count can be traced. */
export function failureLines(summaries: readonly MethodSummary[]): string[] {
  return summaries.flatMap((s) =>
    s.failures.map((f) => `${s.method}, seed ${f.seed}${s.setting !== undefined ? ` (${s.setting.name} = ${s.setting.value})` : ''}: ${f.reason}`),
  );
}
