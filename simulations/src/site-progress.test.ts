import { join } from 'node:path';
import { createLogger } from '@ftl/shared';
import { expect, test } from 'vitest';
import { makeClient, runToEnd, scratch, startCoordinator } from './test-federation.js';

test("a site logs the progress of its long work: feature extraction (images done) and each round's training (epoch of epochs)", async () => {
  const dir = await scratch('progress');
  const { coordinator, url } = await startCoordinator({ minClients: 1, rounds: 2, fit: { epochs: 3, batchSize: 32, learningRate: 0.002 } });
  const lines: string[] = [];
  const log = createLogger('client', { level: 'info', write: (l) => lines.push(l) });
  // progressEveryMs 0: every batch and epoch (a real site logs at most every 5 s).
  const client = await makeClient({ url, index: 0, clients: 1, limit: 600, cacheDir: join(dir, 'cache'), log, progressEveryMs: 0 });
  const { summary } = await runToEnd(coordinator, [client]);
  expect(summary.reason).toBe('completed');

  const extraction = lines
    .filter((l) => l.includes(' extracting-features '))
    .map((l) => /images=(\d+)\/(\d+) percent=(\d+)/.exec(l)!.slice(1).map(Number));
  // The training split then the validation split, each in batches of 256 images, ending at 100%.
  const ends = extraction.filter(([done, total]) => done === total);
  expect(ends.map(([, , percent]) => percent)).toEqual([100, 100]);
  expect(ends[0]![1]! + ends[1]![1]!).toBe(600);
  expect(extraction.length).toBeGreaterThan(2);
  expect(extraction.every(([done, total, percent]) => percent === Math.round((100 * done!) / total!))).toBe(true);

  const epochs = lines.filter((l) => l.includes(' training ')).map((l) => [/round=(\d+)/.exec(l)![1], /epoch=(\S+)/.exec(l)![1]]);
  expect(epochs).toEqual([
    ['1', '1/3'],
    ['1', '2/3'],
    ['1', '3/3'],
    ['2', '1/3'],
    ['2', '2/3'],
    ['2', '3/3'],
  ]);
});
