import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { renderReport } from './report-browser.js';
import { fixtureRun, fixtureStudy } from './report/study-fixture.js';
import { studyPlots } from './report/svg.js';
import { writeStudy } from './report/write.js';

test('a study report renders in headless Chromium with its plots and tables, asking for nothing outside itself', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ftl-report-'));
  const runs = [1, 2, 3].flatMap((seed) => [
    fixtureRun({ method: 'transfer', seed, accuracies: [0.8, 0.85 + seed / 100, 0.9] }),
    fixtureRun({ method: 'scratch', seed, accuracies: [0.5, 0.7, 0.8 + seed / 100] }),
  ]);
  const report = fixtureStudy(runs, { title: 'Browser check <b>' });
  await writeStudy(report, dir);
  const seen = await renderReport(join(dir, 'report.html'), join(dir, 'shot.png'));
  expect(seen.title).toBe('Browser check <b>');
  // Every plot the report writes is on the page (accuracy by round and by bytes, here).
  expect(seen.svgs).toBe(studyPlots(report).length);
  expect(seen.svgs).toBeGreaterThanOrEqual(2);
  expect(seen.tables).toBeGreaterThanOrEqual(1);
  expect(seen.errors).toEqual([]);
  expect(seen.requests).toEqual([]);
});
