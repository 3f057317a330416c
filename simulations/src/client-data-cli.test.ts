import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RoundRecord } from '@ftl/coordinator';
import { encodePng, loadBuiltinDataset } from '@ftl/shared';
import { describe, expect, test } from 'vitest';
import { scratch, startCoordinator } from './test-federation.js';

// The built client program (`npm test` builds first) on local data files, as a site would run it.
const root = fileURLToPath(new URL('../../', import.meta.url));

function client(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['packages/client/dist/cli.js', ...args], { cwd: root, env: { ...process.env, FTL_LOG: 'warn' } });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

const mnist = loadBuiltinDataset('mnist');
const header = ['label', ...Array.from({ length: 784 }, (_, p) => `pixel${p}`)].join(',');
// Kaggle's MNIST CSV layout for the first `perClass` images of each of `digits`.
function kaggleCsv(digits: number[], perClass: number): string {
  const rows = digits.flatMap((d) =>
    Array.from({ length: perClass }, (_, i) => {
      const at = mnist.labels.indexOf(d) + i;
      return [String(d), ...Array.from(mnist.images.subarray(at * 784, (at + 1) * 784), (v) => Math.round(v * 255))].join(',');
    }),
  );
  return `${[header, ...rows].join('\n')}\n`;
}

describe('client program on local data', () => {
  test('a CSV file: the client trains from it and the run completes', async () => {
    const dir = await scratch('client-csv');
    const file = join(dir, 'train.csv');
    writeFileSync(file, kaggleCsv([1, 0], 40));
    const { coordinator, url } = await startCoordinator({
      classes: ['0', '1'],
      minClients: 1,
      rounds: 1,
      fit: { epochs: 2, batchSize: 16, learningRate: 0.002 },
    });
    const exited = client(['--server', url, '--name', 'site-csv', '--csv', file, '--cache-dir', join(dir, 'cache')]);
    const rows: RoundRecord[] = [];
    const summary = await coordinator.run((r) => rows.push(r));
    const r = await exited;
    await coordinator.close();
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(summary.reason).toBe('completed');
    expect(rows.map((x) => [x.status, x.accepted])).toEqual([['aggregated', 1]]);
  });

  test('a label the run does not declare: the client exits 1 naming the label and the line it first appears on', async () => {
    const dir = await scratch('client-label');
    const file = join(dir, 'train.csv');
    writeFileSync(file, kaggleCsv([0, 1], 10).replace(/\n1,/, '\nnine,')); // the first "1" row, line 12, says "nine"
    // The run waits for a ready client that never comes; closing the coordinator (or the wait's end) settles it.
    const { coordinator, url } = await startCoordinator({ minClients: 1, waitTimeoutMs: 20_000 });
    const running = coordinator.run().catch((err: unknown) => err);
    const r = await client(['--server', url, '--csv', file, '--cache-dir', join(dir, 'cache')]);
    await coordinator.close();
    await running;
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `error [DATASET]: local label "nine" (from ${file} line 12) is not in the run's label set (0, 1, 2, 3, 4, 5, 6, 7, 8, 9);`,
    );
  });

  test.each<[string, (dir: string) => string[], RegExp]>([
    [
      'a ragged CSV row',
      (dir) => {
        writeFileSync(
          join(dir, 'bad.csv'),
          kaggleCsv([3], 3)
            .split('\n')
            .map((l, i) => (i === 2 ? l.slice(0, l.lastIndexOf(',')) : l))
            .join('\n'),
        );
        return ['--csv', join(dir, 'bad.csv')];
      },
      /error \[DATASET\]: .*bad\.csv line 3 has 784 columns but the header has 785; every line needs the label and 784 values/,
    ],
    [
      'an unsupported file in an image folder',
      (dir) => {
        mkdirSync(join(dir, 'images', 'cat'), { recursive: true });
        writeFileSync(join(dir, 'images', 'cat', 'a.png'), encodePng({ data: mnist.images.slice(0, 784), height: 28, width: 28, channels: 1 }));
        writeFileSync(join(dir, 'images', 'cat', 'b.bmp'), 'BM');
        return ['--data-dir', join(dir, 'images')];
      },
      /error \[DATASET\]: .*cat\/b\.bmp: unsupported file type "\.bmp"; the image folder takes PNG and JPEG files/,
    ],
    [
      'conflicting data flags',
      () => ['--dataset', 'mnist', '--csv', 'x.csv'],
      /error \[INVALID_CONFIG\]: --dataset, --data-dir, --csv and --table are alternatives; give one \(got --dataset and --csv\)/,
    ],
  ])('%s: the client exits 1 before connecting', async (_, argsFor, message) => {
    const dir = await scratch('client-data');
    const r = await client([...argsFor(dir), '--server', 'http://127.0.0.1:9']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
  });
});
