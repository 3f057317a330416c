import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { clientsCsv, roundsCsv, summaryCsv } from './csv.js';
import { studyHtml } from './html.js';
import { summaryMarkdown } from './markdown.js';
import { summarizeStudy } from './stats.js';
import { studyPlots } from './svg.js';
import type { StudyReport } from './types.js';

/** Writes beside and renames into place, so a reader never sees half a file and a crash leaves the old one whole. */
async function writeWhole(path: string, content: string): Promise<void> {
  const staging = `${path}.${process.pid}.tmp`;
  try {
    await writeFile(staging, content, 'utf8');
    await rename(staging, path);
  } catch (error) {
    await rm(staging, { force: true });
    throw error;
  }
}

/**
 * Writes a study's files under `outDir` (created if missing): `study.json` (the report itself, from which
 * everything else can be rebuilt), `rounds.csv`, `summary.csv`, `summary.md` (the tables for the docs),
 * `clients.csv` when sites report their own figures, `plots/*.svg` and `report.html`. Returns the paths
 * written, in that order.
 *
 * @example
 * const { files } = await writeStudy(report, '.ftl/studies/low-data');
 */
export async function writeStudy(report: StudyReport, outDir: string): Promise<{ files: string[] }> {
  const summaries = summarizeStudy(report);
  const plots = studyPlots(report, summaries);
  const clients = clientsCsv(report);
  const outputs: [string, string][] = [
    ['study.json', `${JSON.stringify(report, null, 2)}\n`],
    ['rounds.csv', roundsCsv(report)],
    ['summary.csv', summaryCsv(summaries)],
    ['summary.md', summaryMarkdown(report, summaries)],
    ...(clients !== undefined ? [['clients.csv', clients] as [string, string]] : []),
    ...plots.map((p): [string, string] => [join('plots', p.file), p.svg]),
    ['report.html', studyHtml(report, { summaries, plots })],
  ];
  await mkdir(join(outDir, 'plots'), { recursive: true });
  const files: string[] = [];
  for (const [name, content] of outputs) {
    const path = join(outDir, name);
    await writeWhole(path, content);
    files.push(path);
  }
  return { files };
}
