import { describe, expect, test } from 'vitest';
import { studyHtml } from './html.js';
import { markdownTable, summaryMarkdown } from './markdown.js';
import { fixtureRun, fixtureStudy } from './study-fixture.js';

const transfer = [0.8, 0.84, 0.88].map((f, i) => fixtureRun({ method: 'transfer', seed: i + 1, accuracies: [f] }));
const scratch = [0.9, 0.92].map((f, i) => fixtureRun({ method: 'scratch', seed: i + 1, accuracies: [f] }));

describe('the markdown summary', () => {
  test('a table with a header rule, and cells that cannot break their row', () => {
    expect(markdownTable({ title: 't', header: ['Method', 'Accuracy'], rows: [['a|b', 'x\ny']] })).toBe(
      '| Method | Accuracy |\n| --- | --- |\n| a\\|b | x y |',
    );
  });

  test('the same figures as the HTML report, the negative transfer and the failed runs', () => {
    const failed = fixtureRun({ method: 'scratch', seed: 3, accuracies: [0.1], failed: 'out of memory' });
    const report = fixtureStudy([...transfer, ...scratch, failed]);
    const md = summaryMarkdown(report);
    expect(md).toContain('| transfer | 84.00% ± 9.94 | 3 | 0 |');
    expect(md).toContain('| scratch | 91.00% ± 12.71 | 2 | 1 of 3 |');
    expect(md).toContain("- Transfer's mean held-out accuracy (84.00% ± 9.94, 3 seeds) is below scratch's (91.00% ± 12.71, 2 seeds)");
    expect(md).toContain('- scratch, seed 3: out of memory');
    const html = studyHtml(report);
    for (const figure of ['84.00% ± 9.94', '91.00% ± 12.71', '1 of 3']) expect(html).toContain(figure);
  });

  test('a DP study shows each setting’s accuracy beside the ε its runs ended at, over seeds', () => {
    const dp = (seed: number, setting: string, epsilons: number[]) => {
      const run = fixtureRun({ method: 'transfer', seed, accuracies: epsilons.map(() => 0.8), setting: { name: 'privacy', value: setting } });
      run.rounds.forEach((p, i) => {
        p.epsilon = epsilons[i]!;
      });
      return run;
    };
    const plain = [1, 2].map((seed) =>
      fixtureRun({ method: 'transfer', seed, accuracies: [0.9, 0.9], setting: { name: 'privacy', value: 'no DP' } }),
    );
    const md = summaryMarkdown(
      fixtureStudy([...plain, dp(1, 'z 1', [0.5, 2.994]), dp(2, 'z 1', [0.5, 2.996]), dp(1, 'z 2', [0.4, 1.2]), dp(2, 'z 2', [0.4, 1.5])]),
    );
    expect(md).toContain('| privacy | Method | Held-out accuracy (mean ± 95% CI) | Seeds | Failed | ε after the last round (over seeds) |');
    expect(md).toMatch(/\| no DP \| transfer \| [^|]+ \| 2 \| 0 \| – \|/);
    expect(md).toMatch(/\| z 1 \| transfer \| [^|]+ \| 2 \| 0 \| 2\.99–3\.00 \|/);
    expect(md).toMatch(/\| z 2 \| transfer \| [^|]+ \| 2 \| 0 \| 1\.20–1\.50 \|/);
    expect(summaryMarkdown(fixtureStudy(transfer))).not.toContain('ε after');
  });

  test('no negative-transfer section when transfer leads', () => {
    expect(summaryMarkdown(fixtureStudy(transfer))).not.toContain('Negative transfer');
  });
});
