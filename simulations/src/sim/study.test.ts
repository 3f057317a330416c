import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodePng, loadBuiltinDataset } from '@ftl/shared';
import { describe, expect, test } from 'vitest';
import { expandStudy } from './config.js';
import { runStudy } from './study.js';

// Small real studies: the committed default backbone, a few hundred MNIST images, a linear head.
const tiny = (over: Record<string, unknown>) =>
  expandStudy(
    {
      clients: 3,
      data: { dataset: 'mnist', partition: 'iid', limit: 600 },
      run: { rounds: 2, fit: { epochs: 2, learningRate: 0.003 }, hidden: [] },
      seeds: [1],
      workers: 0,
      heldOutEvery: 1,
      ...over,
    },
    'test study',
  );

describe('simulation studies', () => {
  test('the same seed gives identical partitions, metrics and held-out scores', async () => {
    const [a, b] = [await runStudy(tiny({})), await runStudy(tiny({}))];
    const figures = (r: typeof a) =>
      r.runs.map((x) => x.rounds.map((p) => [p.valLoss, p.valAccuracy, p.heldOut, p.trainLoss, p.accepted, p.bytesIn]));
    expect(figures(a)).toEqual(figures(b));
    expect(a.runs[0]!.heldOut).toBe(b.runs[0]!.heldOut);
    expect(a.runs[0]!.rounds.every((p) => p.heldOut !== undefined && p.heldOut > 0.1)).toBe(true);
    // Another seed is another partition and another start.
    const c = await runStudy(tiny({ seeds: [2] }));
    expect(figures(c)).not.toEqual(figures(a));
  });

  test('socket, inproc and worker threads give the same rounds for the same seed', async () => {
    const figures = (r: Awaited<ReturnType<typeof runStudy>>) =>
      r.runs.map((x) => x.rounds.map((p) => [p.valLoss, p.valAccuracy, p.heldOut, p.trainLoss, p.accepted, p.bytesIn, p.bytesOut]));
    const socket = await runStudy(tiny({}));
    expect(figures(await runStudy(tiny({ transport: 'inproc' })))).toEqual(figures(socket));
    expect(figures(await runStudy(tiny({ workers: 2 })))).toEqual(figures(socket));
  });

  test('every baseline runs on a tiny case; pooled data beats the mean site alone on IID data', async () => {
    const report = await runStudy(
      tiny({
        baselines: ['centralized', 'local', 'scratch', 'linear', 'random-backbone'],
        run: { rounds: 2, fit: { epochs: 3, learningRate: 0.003 }, hidden: [], headInit: 'discriminant' },
      }),
    );
    const by = new Map(report.runs.map((r) => [r.method, r]));
    expect([...by.keys()]).toEqual(['transfer', 'centralized', 'local', 'scratch', 'linear', 'random-backbone']);
    for (const r of report.runs) {
      expect(r.failed, `${r.method}: ${r.failed}`).toBeUndefined();
      expect(r.heldOut).toBeGreaterThan(0.1);
    }
    // Each site's own evaluation of every round's global model travels with the round.
    const transfer = by.get('transfer')!;
    expect(transfer.rounds.map((p) => p.perClient?.map((c) => c.client).sort())).toEqual([
      ['site-0', 'site-1', 'site-2'],
      ['site-0', 'site-1', 'site-2'],
    ]);
    expect(transfer.perClientAccuracy).toEqual(transfer.rounds.at(-1)!.perClient!.map((c) => c.valAccuracy));
    const local = by.get('local')!;
    expect(local.perClientAccuracy).toHaveLength(3);
    expect(local.worstHeldOut).toBeLessThanOrEqual(local.heldOut);
    expect(by.get('centralized')!.heldOut).toBeGreaterThan(local.heldOut);
    // What travels: the scratch network's every layer, a linear model on 784 pixels, the head alone otherwise.
    expect(by.get('linear')!.updateValues).toBe(784 * 10 + 10);
    expect(by.get('scratch')!.updateValues).toBeGreaterThan(by.get('transfer')!.updateValues);
    expect(by.get('random-backbone')!.updateValues).toBe(by.get('transfer')!.updateValues);
    expect(report.heldOut).toEqual({ dataset: 'mnist', images: 1500 });
  });

  test('a run that fails is a row saying why, and the study goes on', async () => {
    const report = await runStudy(tiny({ sweep: { 'run.featureLayer': ['no-such-layer', 'features'] } }));
    expect(report.runs.map((r) => [r.setting?.value, r.failed === undefined])).toEqual([
      ['no-such-layer', false],
      ['features', true],
    ]);
    expect(report.runs[0]!.failed).toMatch(/no-such-layer/);
  });

  test('a natural split: one image folder per site, labels by folder name, a held-out folder', async () => {
    // Real MNIST digits written as PNG files, a sub-folder per class; site b holds no 2s.
    const mnist = loadBuiltinDataset('mnist');
    const root = mkdtempSync(join(tmpdir(), 'ftl-natural-'));
    const folder = (name: string, digits: number[], skip: number, count: number) => {
      for (const d of digits) {
        mkdirSync(join(root, name, `digit-${d}`), { recursive: true });
        const ofDigit = [...mnist.labels.keys()].filter((i) => mnist.labels[i] === d).slice(skip, skip + count);
        for (const i of ofDigit) {
          const png = encodePng({ data: mnist.images.slice(i * 784, (i + 1) * 784), height: 28, width: 28, channels: 1 });
          writeFileSync(join(root, name, `digit-${d}`, `${i}.png`), png);
        }
      }
      return { images: join(root, name) };
    };
    const study = expandStudy(
      {
        data: {
          sites: [folder('a', [0, 1, 2], 0, 30), folder('b', [0, 1], 30, 30), folder('c', [0, 1, 2], 60, 30)],
          heldOut: folder('test', [0, 1, 2], 200, 50),
        },
        run: { rounds: 2, fit: { epochs: 3, learningRate: 0.003 }, hidden: [] },
        seeds: [1],
        baselines: ['centralized'],
      },
      'natural',
    );
    expect([study.base.clients, study.base.workers]).toEqual([3, 0]);
    const report = await runStudy(study);
    expect(report.heldOut).toEqual({ dataset: join(root, 'test'), images: 150 });
    for (const r of report.runs) {
      expect(r.failed, r.failed).toBeUndefined();
      expect(r.heldOut).toBeGreaterThan(0.6); // three classes: chance is a third
    }
    // Every site evaluated the final model on its own validation images, site b included, though it has no 2s.
    expect(
      report.runs[0]!.rounds.at(-1)!
        .perClient!.map((c) => c.client)
        .sort(),
    ).toEqual(['site-0', 'site-1', 'site-2']);

    // The same sites as CSV files (a label column, then the pixels 0–255), one of them a folder still.
    const csv = (name: string, digits: number[], skip: number, count: number) => {
      const lines = [`y,${Array.from({ length: 784 }, (_, k) => `p${k}`).join(',')}`];
      for (const d of digits) {
        for (const i of [...mnist.labels.keys()].filter((k) => mnist.labels[k] === d).slice(skip, skip + count)) {
          lines.push(`digit-${d},${Array.from(mnist.images.slice(i * 784, (i + 1) * 784), (v) => Math.round(v * 255)).join(',')}`);
        }
      }
      writeFileSync(join(root, `${name}.csv`), `${lines.join('\n')}\n`);
      return { csv: join(root, `${name}.csv`), labelColumn: 'y' };
    };
    const mixed = await runStudy(
      expandStudy(
        {
          data: {
            sites: [csv('a', [0, 1, 2], 0, 30), csv('b', [0, 1], 30, 30), { images: join(root, 'c') }],
            heldOut: { images: join(root, 'test') },
          },
          run: { rounds: 2, fit: { epochs: 3, learningRate: 0.003 }, hidden: [] },
          seeds: [1],
        },
        'natural csv',
      ),
    );
    expect(mixed.runs[0]!.failed, mixed.runs[0]!.failed).toBeUndefined();
    expect(mixed.runs[0]!.heldOut).toBeGreaterThan(0.6);
  });

  test('with record-level DP each run reports its own ε: runs of a study do not add up in one ledger', async () => {
    const dp = { mode: 'record', noiseMultiplier: 1.5, clipNorm: 1 };
    const report = await runStudy(
      tiny({
        sweep: {
          name: 'repeat',
          settings: [
            { label: 'a', set: { 'run.privacy': dp } },
            { label: 'b', set: { 'run.privacy': dp } },
          ],
        },
      }),
    );
    const epsilons = report.runs.map((r) => r.rounds.map((p) => p.epsilon));
    expect(epsilons[0]!.every((e) => e !== undefined && e > 0)).toBe(true);
    expect(epsilons[0]![1]!).toBeGreaterThan(epsilons[0]![0]!);
    expect(epsilons[1]).toEqual(epsilons[0]);
  });
});
