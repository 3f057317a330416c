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
 * The study's two tables: accuracy (held-out mean ± 95% CI, finished seeds, failed runs, and the worst
 * site's accuracy when a method reports it) and cost (rounds and seconds to the target, bytes, values
 * per update, time). A setting column leads both when the study sweeps one.
 */
export function summaryTables(report: Pick<StudyReport, 'runs' | 'target'>, summaries: readonly MethodSummary[]): SummaryTable[] {
  const settings = studySettings(report.runs);
  const sweep = settings.length > 1;
  const lead = (s: MethodSummary) => (sweep ? [String(s.setting?.value ?? '–'), s.method] : [s.method]);
  const leadHeader = sweep ? [settings[0]?.name ?? 'setting', 'Method'] : ['Method'];
  const worst = summaries.some((s) => s.worstHeldOut !== undefined);
  const accuracy: SummaryTable = {
    title: 'Held-out accuracy',
    header: [...leadHeader, 'Held-out accuracy (mean ± 95% CI)', 'Seeds', 'Failed', ...(worst ? ['Worst site (mean ± 95% CI)'] : [])],
    rows: summaries.map((s) => [
      ...lead(s),
      formatPercentInterval(s.heldOut),
      String(s.heldOut.n),
      failedCell(s),
      ...(worst ? [s.worstHeldOut ? formatPercentInterval(s.worstHeldOut) : ''] : []),
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
