import { execFile } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, expect, test } from 'vitest';
import { scratch } from './test-federation.js';

// The built scenario command, as `npm run scenario` runs it.
const SCENARIO = fileURLToPath(new URL('../dist/scenario.js', import.meta.url));
const run = promisify(execFile);
const dirs: string[] = [];
afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

test("--from prints a scenario's table from the rows a run saved, several files making one table", async () => {
  const dir = await scratch('scenario-from');
  dirs.push(dir);
  const row = (rounds: number, heldOut: number) => ({ rounds, seed: 1, heldOut, valAccuracy: [], seconds: 1 });
  await writeFile(join(dir, 'a.json'), JSON.stringify([row(5, 0.9453), row(10, 0.952)]));
  await writeFile(join(dir, 'b.json'), JSON.stringify([row(20, 0.9547)]));
  const { stdout } = await run(process.execPath, [SCENARIO, 'longer', '--from', `${join(dir, 'a.json')},${join(dir, 'b.json')}`]);
  expect(stdout.trim().split('\n')).toEqual([
    '| seed | 5 rounds | 10 rounds | 20 rounds |',
    '| --- | --- | --- | --- |',
    '| 1 | 94.53% | 95.20% | 95.47% |',
  ]);
});

test('an unknown scenario is refused in one line that lists the known ones', async () => {
  const err = await run(process.execPath, [SCENARIO, 'nope']).then(
    () => undefined,
    (e: { stderr: string; code: number }) => e,
  );
  expect(err?.code).toBe(1);
  expect(err?.stderr.trim()).toBe(
    'error [INVALID_CONFIG]: unknown scenario "nope"; use byzantine, personalization, cutpoint, finetune, hostile, lowdata, longer',
  );
});
