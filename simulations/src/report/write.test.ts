import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { fixtureRun, fixtureStudy } from './study-fixture.js';
import { writeStudy } from './write.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ftl-report-'));
  dirs.push(dir);
  return dir;
}

describe('writing a study', () => {
  test('writes the report, the CSVs, the plots and the page, and the JSON reads back as the report', async () => {
    const runs = [1, 2].flatMap((seed) => [
      fixtureRun({ method: 'transfer', seed, accuracies: [0.6, 0.8] }),
      fixtureRun({ method: 'scratch', seed, accuracies: [0.5, 0.7] }),
    ]);
    runs[0]!.rounds[1]!.perClient = [{ client: 'a', samples: 10, valAccuracy: 0.8, valLoss: 0.5 }];
    const report = fixtureStudy(runs);
    const out = join(await tempDir(), 'study', 'nested');
    const { files } = await writeStudy(report, out);
    expect(files.map((f) => relative(out, f))).toEqual([
      'study.json',
      'rounds.csv',
      'summary.csv',
      'summary.md',
      'clients.csv',
      join('plots', 'accuracy-by-round.svg'),
      join('plots', 'accuracy-by-bytes.svg'),
      join('plots', 'per-client-spread.svg'),
      'report.html',
    ]);
    expect(JSON.parse(await readFile(join(out, 'study.json'), 'utf8'))).toEqual(report);
    expect((await readFile(join(out, 'rounds.csv'), 'utf8')).trim().split('\r\n')).toHaveLength(1 + 8);
    expect(await readFile(join(out, 'plots', 'accuracy-by-round.svg'), 'utf8')).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    // Nothing half-written is left beside the files.
    expect((await readdir(out)).sort()).toEqual(['clients.csv', 'plots', 'report.html', 'rounds.csv', 'study.json', 'summary.csv', 'summary.md']);
  });

  test('writing again replaces the files', async () => {
    const out = await tempDir();
    await writeStudy(fixtureStudy([fixtureRun({ method: 'transfer', seed: 1, accuracies: [0.5] })], { title: 'first' }), out);
    await writeStudy(fixtureStudy([fixtureRun({ method: 'transfer', seed: 1, accuracies: [0.5] })], { title: 'second' }), out);
    expect(await readFile(join(out, 'report.html'), 'utf8')).toContain('<title>second</title>');
  });
});
