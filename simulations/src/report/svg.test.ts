import { describe, expect, test } from 'vitest';
import { summarizeStudy } from './stats.js';
import { fixtureRun, fixtureStudy } from './study-fixture.js';
import { accuracyByBytesSvg, accuracyByRoundSvg, accuracyBySettingSvg, methodStyles, perClientSpreadSvg, studyPlots } from './svg.js';
import type { MethodRun } from './types.js';

interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  text: string;
}

const ENTITY = /&(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/y;
const NAME = /[A-Za-z_][\w.:-]*/y;

/**
 * A strict reader for the XML subset an SVG writer needs (elements, quoted attributes, text, entities,
 * comments): it throws on anything not well-formed, since nothing in node_modules parses XML.
 */
function parseXml(source: string): XmlElement {
  let i = 0;
  const fail = (why: string): never => {
    throw new Error(`${why} at ${i}: ${JSON.stringify(source.slice(i, i + 40))}`);
  };
  const match = (re: RegExp) => {
    re.lastIndex = i;
    const m = re.exec(source);
    if (m === null) return undefined;
    i += m[0].length;
    return m[0];
  };
  const skipSpace = () => match(/\s*/y);
  const text = (end: string) => {
    let out = '';
    while (i < source.length && !end.includes(source[i]!)) {
      if (source[i] === '&') out += match(ENTITY) ?? fail('a bare ampersand');
      else out += source[i++];
    }
    return out;
  };
  const element = (): XmlElement => {
    if (source[i++] !== '<') fail('expected <');
    const name = match(NAME) ?? fail('expected an element name');
    const attrs: Record<string, string> = {};
    for (;;) {
      const space = skipSpace();
      if (source.startsWith('/>', i)) {
        i += 2;
        return { name, attrs, children: [], text: '' };
      }
      if (source[i] === '>') break;
      if (!space) fail('expected space before an attribute');
      const attr = match(NAME) ?? fail('expected an attribute name');
      if (attr in attrs) fail(`attribute ${attr} repeated`);
      if (source[i++] !== '=' || source[i++] !== '"') fail('expected ="');
      attrs[attr] = text('"<');
      if (source[i++] !== '"') fail('an attribute value holds <');
    }
    i++;
    const node: XmlElement = { name, attrs, children: [], text: '' };
    for (;;) {
      node.text += text('<');
      if (i >= source.length) fail(`<${name}> never closed`);
      if (source.startsWith('<!--', i)) {
        const end = source.indexOf('-->', i);
        if (end < 0) fail('an unterminated comment');
        i = end + 3;
      } else if (source.startsWith('</', i)) {
        i += 2;
        if (match(NAME) !== name) fail(`</…> does not close <${name}>`);
        skipSpace();
        if (source[i++] !== '>') fail('expected >');
        return node;
      } else {
        node.children.push(element());
      }
    }
  };
  skipSpace();
  const root = element();
  skipSpace();
  if (i !== source.length) fail('content after the root element');
  return root;
}

function all(node: XmlElement, test: (e: XmlElement) => boolean): XmlElement[] {
  return [...(test(node) ? [node] : []), ...node.children.flatMap((c) => all(c, test))];
}

const paths = (root: XmlElement, cls: string) => all(root, (e) => e.name === 'path' && e.attrs['class'] === cls);

function seeds(method: string, n: number, extra: Partial<MethodRun> = {}): MethodRun[] {
  return Array.from({ length: n }, (_, i) =>
    fixtureRun({
      method,
      seed: i + 1,
      accuracies: [0.5 + i * 0.02, 0.7 + i * 0.03, 0.8 + i * 0.01],
      perClientAccuracy: [0.6, 0.7 + i * 0.05, 0.9],
      ...extra,
    }),
  );
}

function plot(runs: MethodRun[], draw: typeof accuracyByRoundSvg, title = 'A study'): XmlElement {
  const report = fixtureStudy(runs);
  const svg = draw(summarizeStudy(report), { title, styles: methodStyles([...new Set(runs.map((r) => r.method))]) });
  return parseXml(svg);
}

describe('the reader used by these tests', () => {
  test.each([
    ['<svg><g></svg>', 'does not close'],
    ['<svg a="1" a="2"/>', 'repeated'],
    ['<svg>a & b</svg>', 'bare ampersand'],
    ['<svg a="<"/>', 'holds <'],
    ['<svg/><svg/>', 'after the root'],
  ])('refuses %s', (xml, why) => {
    expect(() => parseXml(xml)).toThrow(why);
  });
});

describe('SVG plots', () => {
  test.each([
    ['accuracy by round', accuracyByRoundSvg],
    ['accuracy by bytes', accuracyByBytesSvg],
  ])('%s: well-formed standalone SVG with one line per method, and a band per method with two or more seeds', (_, draw) => {
    const root = plot([...seeds('transfer', 3), ...seeds('scratch', 2), ...seeds('local', 2)], draw);
    expect(root.name).toBe('svg');
    expect(root.attrs['xmlns']).toBe('http://www.w3.org/2000/svg');
    expect(paths(root, 'line').map((p) => p.children.length === 0 && p.attrs['d']!.startsWith('M'))).toEqual([true, true, true]);
    expect(all(root, (e) => e.name === 'g' && e.attrs['class'] === 'series').map((g) => g.attrs['data-method'])).toEqual([
      'transfer',
      'scratch',
      'local',
    ]);
    expect(paths(root, 'band')).toHaveLength(3);
  });

  test.each([
    ['accuracy by round', accuracyByRoundSvg],
    ['accuracy by bytes', accuracyByBytesSvg],
  ])('%s: no band with one seed', (_, draw) => {
    const root = plot([...seeds('transfer', 1), ...seeds('scratch', 1)], draw);
    expect(paths(root, 'line')).toHaveLength(2);
    expect(paths(root, 'band')).toHaveLength(0);
  });

  test('a band only for the method with more than one seed', () => {
    const root = plot([...seeds('transfer', 2), ...seeds('scratch', 1)], accuracyByRoundSvg);
    expect(paths(root, 'band').map((p) => p.attrs['fill'])).toEqual([methodStyles(['transfer']).get('transfer')!.color]);
  });

  test('a title, axis labels with ticks, and a legend entry per method', () => {
    const root = plot([...seeds('transfer', 2), ...seeds('scratch', 2)], accuracyByRoundSvg, 'Low data: accuracy by round');
    const texts = all(root, (e) => e.name === 'text').map((e) => e.text);
    expect(root.children.find((c) => c.name === 'title')?.text).toBe('Low data: accuracy by round');
    expect(texts).toContain('Round');
    expect(texts).toContain('Held-out accuracy');
    expect(texts).toEqual(expect.arrayContaining(['1', '2', '3']));
    expect(texts.some((t) => /^\d+(\.\d+)?%$/.test(t))).toBe(true);
    const legend = all(root, (e) => e.attrs['class'] === 'legend-entry').map((e) => e.attrs['data-method']);
    expect(legend).toEqual(['transfer', 'scratch']);
  });

  test('the bytes axis is logarithmic with byte-unit labels', () => {
    const texts = all(plot(seeds('transfer', 2), accuracyByBytesSvg), (e) => e.name === 'text').map((e) => e.text);
    expect(texts).toContain('Bytes moved so far, in + out, all sites (mean over seeds, log scale)');
    expect(texts).toContain('5kB');
  });

  test('markup in method names and titles is escaped, and the SVG stays well-formed', () => {
    const name = '<script>alert("x")</script> & co';
    const root = plot(seeds(name, 2), accuracyByRoundSvg, 'A <b>bold</b> title');
    expect(all(root, (e) => e.name === 'script')).toHaveLength(0);
    expect(all(root, (e) => e.attrs['class'] === 'series')[0]!.attrs['data-method']).toBe(
      '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co',
    );
    expect(root.children.find((c) => c.name === 'title')?.text).toBe('A &lt;b&gt;bold&lt;/b&gt; title');
  });

  test('accuracy by setting: a point per setting and method, and error bars only with two or more seeds', () => {
    const runs = [10, 100, 1000].flatMap((value) => [
      ...seeds('transfer', 3, { setting: { name: 'samples per site', value } }),
      ...seeds('scratch', 1, { setting: { name: 'samples per site', value } }),
    ]);
    const root = plot(runs, accuracyBySettingSvg);
    const series = all(root, (e) => e.attrs['class'] === 'series');
    expect(series.map((s) => all(s, (e) => e.name === 'circle').length)).toEqual([3, 3]);
    expect(series.map((s) => all(s, (e) => e.attrs['class'] === 'error-bars')[0]!.children.length)).toEqual([9, 0]);
    const texts = all(root, (e) => e.name === 'text').map((e) => e.text);
    expect(texts).toEqual(expect.arrayContaining(['10', '100', '1000', 'samples per site (log scale)']));
  });

  test('per-site spread: a box and a dot per site for each method, pooled over seeds', () => {
    const root = plot([...seeds('transfer', 2), ...seeds('local', 3)], perClientSpreadSvg);
    const series = all(root, (e) => e.attrs['class'] === 'series');
    expect(series.map((s) => all(s, (e) => e.name === 'rect').length)).toEqual([1, 1]);
    expect(series.map((s) => all(s, (e) => e.name === 'circle').length)).toEqual([6, 9]);
  });

  test('a plot with nothing to draw says so and is still well-formed', () => {
    const root = plot([fixtureRun({ method: 'transfer', seed: 1, accuracies: [0.5], failed: 'crashed' })], accuracyByRoundSvg);
    expect(all(root, (e) => e.name === 'text').map((e) => e.text)).toContain('No finished run recorded an accuracy per round.');
  });

  test('a study sweeping a setting has per-setting plots and one by setting; a single setting has none by setting', () => {
    const swept = [10, 50].flatMap((value) => seeds('transfer', 2, { setting: { name: 'samples per site', value } }));
    const files = studyPlots(fixtureStudy(swept)).map((p) => p.file);
    expect(files).toEqual([
      'accuracy-by-round-samples-per-site-10.svg',
      'accuracy-by-bytes-samples-per-site-10.svg',
      'per-client-spread-samples-per-site-10.svg',
      'accuracy-by-round-samples-per-site-50.svg',
      'accuracy-by-bytes-samples-per-site-50.svg',
      'per-client-spread-samples-per-site-50.svg',
      'accuracy-by-setting.svg',
    ]);
    for (const p of studyPlots(fixtureStudy(swept))) parseXml(p.svg);
    const single = seeds('transfer', 2).map(({ perClientAccuracy: _, ...r }) => r);
    expect(studyPlots(fixtureStudy(single)).map((p) => p.file)).toEqual(['accuracy-by-round.svg', 'accuracy-by-bytes.svg']);
  });
});
