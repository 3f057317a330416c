import { escapeMarkup } from './escape.js';
import { heldOutSentence, type MethodSummary, negativeTransfer, summarizeStudy } from './stats.js';
import { type StudyPlot, studyPlots } from './svg.js';
import { failureLines, type SummaryTable, summaryTables } from './table.js';
import type { StudyReport } from './types.js';

// The page loads nothing: no scripts, no fonts, no images from elsewhere. The policy makes a browser
// refuse any such request even if a later change slips one in.
const CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

const STYLE = `
body { font: 15px/1.5 Helvetica, Arial, sans-serif; color: #111; max-width: 1080px; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
.negative { border-left: 6px solid #D55E00; background: #fff4ec; padding: 0.6rem 1rem; margin: 1rem 0; }
.negative p { margin: 0.3rem 0; font-weight: bold; }
.note { color: #333; }
pre { background: #f6f6f6; padding: 0.8rem; overflow-x: auto; font-size: 13px; }
figure { margin: 1rem 0; }
figure svg { max-width: 100%; height: auto; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.1rem 1rem; }
dt { font-weight: bold; }
dd { margin: 0; }
`;

function tableHtml(table: SummaryTable): string {
  const row = (cells: readonly string[], tag: 'td' | 'th') => `<tr>${cells.map((c) => `<${tag}>${escapeMarkup(c)}</${tag}>`).join('')}</tr>`;
  return [
    `<h3>${escapeMarkup(table.title)}</h3>`,
    '<table>',
    `<thead>${row(table.header, 'th')}</thead>`,
    `<tbody>${table.rows.map((r) => row(r, 'td')).join('')}</tbody>`,
    '</table>',
  ].join('\n');
}

function configJson(config: unknown): string {
  try {
    return JSON.stringify(config, null, 2) ?? String(config);
  } catch {
    return String(config);
  }
}

/**
 * The study as one self-contained HTML page: title, negative-transfer findings first, the held-out set and
 * its standard error, the tables, the failed runs, the plots inline, then the seeds, the environment and
 * the config. Every text from the report is escaped; the page requests nothing from anywhere.
 */
export function studyHtml(report: StudyReport, options: { summaries?: readonly MethodSummary[]; plots?: readonly StudyPlot[] } = {}): string {
  const summaries = options.summaries ?? summarizeStudy(report);
  const plots = options.plots ?? studyPlots(report, summaries);
  const negative = negativeTransfer(summaries);
  const failures = failureLines(summaries);
  const env = report.environment;
  const environment: [string, string][] = [
    ['Date', env.date],
    ['Node', env.node],
    ['ftl', env.ftlVersion],
    ['TensorFlow.js', env.tfjsVersion],
    ['Backend', env.backend],
    ['CPUs', String(env.cpus)],
    ['Platform', env.platform],
  ];
  const body = [
    `<h1>${escapeMarkup(report.title)}</h1>`,
    `<p class="note">${escapeMarkup(`${report.runs.length} runs over seeds ${report.seeds.join(', ') || '–'}, ${env.date}.`)}</p>`,
    negative.length > 0
      ? `<section class="negative"><h2>Negative transfer</h2>${negative.map((n) => `<p>${escapeMarkup(n.sentence)}</p>`).join('')}</section>`
      : '',
    `<p class="note">${escapeMarkup(heldOutSentence(report))}</p>`,
    '<h2>Summary</h2>',
    ...summaryTables(report, summaries).map(tableHtml),
    failures.length > 0 ? `<h3>Failed runs</h3><ul>${failures.map((f) => `<li>${escapeMarkup(f)}</li>`).join('')}</ul>` : '',
    '<h2>Plots</h2>',
    ...plots.map((p) => `<figure>${p.svg}<figcaption>${escapeMarkup(p.title)}</figcaption></figure>`),
    '<h2>Seeds</h2>',
    `<p>${escapeMarkup(report.seeds.join(', ') || '–')}</p>`,
    '<h2>Environment</h2>',
    `<dl>${environment.map(([k, v]) => `<dt>${escapeMarkup(k)}</dt><dd>${escapeMarkup(v)}</dd>`).join('')}</dl>`,
    '<h2>Config</h2>',
    `<pre>${escapeMarkup(configJson(report.config))}</pre>`,
  ];
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="${CSP}">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeMarkup(report.title)}</title>`,
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    ...body.filter((b) => b !== ''),
    '</body>',
    '</html>',
    '',
  ].join('\n');
}
