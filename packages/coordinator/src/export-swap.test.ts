import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { EXPORT_META_FILE } from './export-model.js';
import { stagingDir, swapInExport } from './export-swap.js';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';

async function fakeExport(dir: string, runId: string, modelVersion: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, EXPORT_META_FILE), JSON.stringify({ runId, modelVersion }));
}
const versionIn = async (dir: string) => (JSON.parse(await readFile(join(dir, EXPORT_META_FILE), 'utf8')) as { modelVersion: number }).modelVersion;

describe('swapping an export into place', () => {
  test.each<[string, string, number, string, number, 'replaced' | 'kept']>([
    ['a more trained model of the same run is kept', 'r', 5, 'r', 3, 'kept'],
    ['a newer model of the same run replaces an older one', 'r', 3, 'r', 5, 'replaced'],
    ['another run’s model is replaced whatever its version', 'old', 9, 'r', 1, 'replaced'],
  ])('%s', async (_, oldRun, oldVersion, newRun, newVersion, outcome) => {
    const root = await mkdtemp(join(tmpdir(), 'ftl-swap-'));
    const dir = join(root, 'model');
    await fakeExport(dir, oldRun, oldVersion);
    const staging = stagingDir(dir);
    await fakeExport(staging, newRun, newVersion);
    expect(await swapInExport(staging, dir, { runId: newRun, modelVersion: newVersion })).toBe(outcome);
    expect(await versionIn(dir)).toBe(outcome === 'kept' ? oldVersion : newVersion);
    expect(await readdir(root)).toEqual(['model']); // no staging or previous copy is left behind
  });

  test('the first export of a folder is simply moved in', async () => {
    const root = await mkdtemp(join(tmpdir(), 'ftl-swap-'));
    const staging = stagingDir(join(root, 'model'));
    await fakeExport(staging, 'r', 1);
    expect(await swapInExport(staging, join(root, 'model'), { runId: 'r', modelVersion: 1 })).toBe('replaced');
    expect(await readdir(root)).toEqual(['model']);
  });
});
