import { heldOutSentence, type MethodSummary, negativeTransfer, summarizeStudy } from './stats.js';
import { failureLines, type SummaryTable, summaryTables } from './table.js';
import type { StudyReport } from './types.js';

/** A cell that cannot end its column or its row early. */
function cell(text: string): string {
  return text
    .replace(/\\/g, '\\\\')
    .replace(/\|/g, '\\|')
    .replace(/\r?\n|\r/g, ' ');
}

/** One table as GitHub-flavoured markdown. */
export function markdownTable(table: SummaryTable): string {
  const row = (cells: readonly string[]) => `| ${cells.map(cell).join(' | ')} |`;
  return [row(table.header), row(table.header.map(() => '---')), ...table.rows.map(row)].join('\n');
}

/**
 * The study's summary as markdown, for the terminal and for the docs: the held-out set and its standard
 * error, any negative transfer, the accuracy and cost tables, and the failed runs. The figures are the
 * HTML report's, from the same tables.
 *
 * @example
 * console.log(summaryMarkdown(report));
 */
export function summaryMarkdown(report: StudyReport, summaries: readonly MethodSummary[] = summarizeStudy(report)): string {
  const out: string[] = [`## ${cell(report.title)}`, '', heldOutSentence(report)];
  const negative = negativeTransfer(summaries);
  if (negative.length > 0) out.push('', '**Negative transfer:**', '', ...negative.map((n) => `- ${n.sentence}`));
  for (const table of summaryTables(report, summaries)) out.push('', `### ${table.title}`, '', markdownTable(table));
  const failures = failureLines(summaries);
  if (failures.length > 0) out.push('', '### Failed runs', '', ...failures.map((f) => `- ${cell(f)}`));
  return `${out.join('\n')}\n`;
}
