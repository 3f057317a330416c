import { describe, expect, test } from 'vitest';
import { studyHtml } from './html.js';
import { fixtureRun, fixtureStudy } from './study-fixture.js';
import type { MethodRun } from './types.js';

function runs(method: string, finals: number[], extra: Partial<MethodRun> = {}): MethodRun[] {
  return finals.map((f, i) => fixtureRun({ method, seed: i + 1, accuracies: [f - 0.1, f], perClientAccuracy: [f - 0.05, f + 0.05], ...extra }));
}

const TRANSFER = [0.8, 0.84, 0.88];

describe('the HTML report', () => {
  test('requests nothing from anywhere: no remote src, href, url() or @import, and a policy that refuses them', () => {
    const at = { name: 'samples per site', value: 10 };
    const html = studyHtml(fixtureStudy([...runs('transfer', TRANSFER, { setting: at }), ...runs('scratch', [0.5, 0.6, 0.7], { setting: at })]));
    expect(html).not.toMatch(/\b(?:src|href|xlink:href)\s*=\s*["']?\s*(?:https?:)?\/\//i);
    expect(html).not.toMatch(/url\(\s*["']?\s*(?:https?:)?\/\//i);
    expect(html).not.toMatch(/@import|<script|<link\b/i);
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src 'none';`);
    // The only absolute URLs left are the SVG namespace, which names and loads nothing.
    expect(html.match(/https?:\/\/[^\s"'<>]*/g)?.every((u) => u === 'http://www.w3.org/2000/svg')).toBe(true);
  });

  test('escapes a method name that is markup, everywhere it appears', () => {
    const name = '<script>alert(1)</script>';
    const html = studyHtml(fixtureStudy([...runs('transfer', TRANSFER), ...runs(name, [0.7, 0.72])]));
    expect(html).not.toContain('<script');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
  });

  test('escapes the title, the config, the dataset and failure messages', () => {
    const report = fixtureStudy(
      [...runs('transfer', TRANSFER), fixtureRun({ method: 'scratch', seed: 9, accuracies: [0.1], failed: 'bad <input> & more' })],
      {
        title: 'Study <i>one</i>',
        config: { note: '</pre><img src=x>' },
        heldOut: { dataset: 'set <b>', images: 1000 },
      },
    );
    const html = studyHtml(report);
    expect(html).toContain('<title>Study &lt;i&gt;one&lt;/i&gt;</title>');
    expect(html).toContain('&lt;/pre&gt;&lt;img src=x&gt;');
    expect(html).toContain('Held-out set: set &lt;b&gt;, 1,000 images.');
    expect(html).toContain('scratch, seed 9: bad &lt;input&gt; &amp; more');
    expect(html).not.toMatch(/<(?:i|b|img)[\s>]/);
  });

  test.each([
    ['below', [0.9, 0.91, 0.92], true],
    ['above', [0.6, 0.62, 0.64], false],
  ])('the negative-transfer sentence appears exactly when scratch is %s transfer', (_, scratchFinals, shown) => {
    const html = studyHtml(fixtureStudy([...runs('transfer', TRANSFER), ...runs('scratch', scratchFinals)]));
    const sentence = 'Transfer&#39;s mean held-out accuracy (84.00% ± 9.94, 3 seeds) is below scratch&#39;s';
    expect(html.includes(sentence)).toBe(shown);
    expect(html.includes('<section class="negative">')).toBe(shown);
  });

  test('shows the tables, seeds, environment, held-out standard error, config and plots', () => {
    const html = studyHtml(fixtureStudy([...runs('transfer', TRANSFER), ...runs('scratch', [0.5, 0.6, 0.7])], { target: 0.85 }));
    for (const text of [
      '<td>transfer</td><td>84.00% ± 9.94</td><td>3</td><td>0</td>',
      '<th>Rounds to 85.0%</th>',
      'v20.19.0',
      '4.22.0',
      '<dd>wasm</dd>',
      '<dd>8</dd>',
      '√(p(1−p)/n) = ',
      '&quot;lr&quot;: 0.003',
    ]) {
      expect(html).toContain(text);
    }
    expect(html.match(/<svg /g)).toHaveLength(3);
  });
});
