import type { MethodSummary } from './stats.js';
import type { StudyReport } from './types.js';

/** A CSV cell: a string, a number, or nothing (an empty cell; so are NaN and ±Infinity). */
export type CsvValue = string | number | boolean | undefined;

/**
 * One RFC 4180 field: quoted when it holds a comma, a quote, a line break or edge spaces (which some
 * readers trim), with quotes doubled.
 */
export function csvField(value: CsvValue): string {
  if (value === undefined || (typeof value === 'number' && !Number.isFinite(value))) return '';
  const text = String(value);
  return /[",\r\n]|^\s|\s$/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** Rows as CSV text, CRLF line ends as RFC 4180 has them, with a final line end. */
export function toCsv(header: readonly string[], rows: readonly (readonly CsvValue[])[]): string {
  return [header, ...rows].map((row) => `${row.map(csvField).join(',')}\r\n`).join('');
}

/** One row per run × round, failed runs included (with their reason) so nothing recorded is hidden. */
export function roundsCsv(report: Pick<StudyReport, 'runs'>): string {
  const header = [
    'method',
    'setting',
    'setting_value',
    'seed',
    'round',
    'val_loss',
    'val_accuracy',
    'held_out',
    'train_loss',
    'accepted',
    'selected',
    'bytes_in',
    'bytes_out',
    'seconds',
    'epsilon',
    'failed',
  ];
  const rows = report.runs.flatMap((run) =>
    run.rounds.map((p) => [
      run.method,
      run.setting?.name,
      run.setting?.value,
      run.seed,
      p.round,
      p.valLoss,
      p.valAccuracy,
      p.heldOut,
      p.trainLoss,
      p.accepted,
      p.selected,
      p.bytesIn,
      p.bytesOut,
      p.seconds,
      p.epsilon,
      run.failed,
    ]),
  );
  return toCsv(header, rows);
}

/**
 * One row per setting × method: the held-out accuracy's mean, the half-width of its 95% interval, the
 * finished seeds and the failed runs, then the traffic and time figures the tables show.
 */
export function summaryCsv(summaries: readonly MethodSummary[]): string {
  const header = [
    'setting',
    'setting_value',
    'method',
    'held_out_mean',
    'held_out_half_width',
    'n',
    'failed',
    'worst_site_held_out_mean',
    'target_reached',
    'rounds_to_target_mean',
    'seconds_to_target_mean',
    'bytes_per_round_mean',
    'bytes_total_mean',
    'update_values',
    'seconds_mean',
  ];
  const rows = summaries.map((s) => [
    s.setting?.name,
    s.setting?.value,
    s.method,
    s.heldOut.mean,
    s.heldOut.half,
    s.heldOut.n,
    s.failures.length,
    s.worstHeldOut?.mean,
    s.target?.reached,
    s.target?.rounds.mean,
    s.target?.seconds.mean,
    s.bytesPerRound.mean,
    s.bytesTotal.mean,
    s.updateValues.mean,
    s.seconds.mean,
  ]);
  return toCsv(header, rows);
}

/** One row per run × round × site for the runs that report per-site figures; undefined when none does. */
export function clientsCsv(report: Pick<StudyReport, 'runs'>): string | undefined {
  const rows = report.runs.flatMap((run) =>
    run.rounds.flatMap((p) =>
      (p.perClient ?? []).map((c) => [
        run.method,
        run.setting?.name,
        run.setting?.value,
        run.seed,
        p.round,
        c.client,
        c.samples,
        c.valAccuracy,
        c.valLoss,
      ]),
    ),
  );
  if (rows.length === 0) return undefined;
  return toCsv(['method', 'setting', 'setting_value', 'seed', 'round', 'client', 'samples', 'val_accuracy', 'val_loss'], rows);
}
