import { scaleBand, scaleLinear, scaleLog, scalePoint } from 'd3-scale';
import { area, line } from 'd3-shape';
import { escapeMarkup } from './escape.js';
import { type MethodSummary, type Setting, sameSetting, settingLabel, studyMethods, studySettings, summarizeStudy } from './stats.js';
import type { StudyReport } from './types.js';

/**
 * Okabe and Ito's palette, which readers with any common colour-vision deficiency can tell apart; the
 * yellow comes last as it is faint on white. Past eight methods the colours repeat with another dash.
 */
const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#F0E442'];
const DASHES = ['', '7 4', '2 3', '9 3 2 3'];
const FONT = 'Helvetica, Arial, sans-serif';
const WIDTH = 760;
const HEIGHT = 440;
const MARGIN = { top: 60, bottom: 56, left: 70 };
/** Rough width of one character of 12px text; there are no font metrics in a string writer. */
const CHAR_WIDTH = 6.6;

/** How one method is drawn in every plot of a study. */
export interface MethodStyle {
  color: string;
  /** `stroke-dasharray`, empty for a solid line. */
  dash: string;
}

/** A colour (and past the palette's end, a dash) per method, in the order given, the same in every plot. */
export function methodStyles(methods: readonly string[]): Map<string, MethodStyle> {
  return new Map(methods.map((m, i) => [m, { color: PALETTE[i % PALETTE.length]!, dash: DASHES[Math.floor(i / PALETTE.length) % DASHES.length]! }]));
}

const FALLBACK_STYLE: MethodStyle = { color: '#000000', dash: '3 3' };

/** A method's style, or a plain dotted black for one the caller's map leaves out rather than a broken plot. */
function styleOf(styles: Map<string, MethodStyle>, method: string): MethodStyle {
  return styles.get(method) ?? FALLBACK_STYLE;
}

/** One plot of a study: a file name under `plots/`, its title, and the standalone SVG. */
export interface StudyPlot {
  file: string;
  title: string;
  svg: string;
}

interface Tick {
  at: number;
  label: string;
}

interface LegendEntry {
  label: string;
  style: MethodStyle;
  band: boolean;
}

interface Box {
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

const round2 = (v: number) => Math.round(v * 100) / 100;

function legendWidth(legend: readonly LegendEntry[]): number {
  const chars = Math.max(0, ...legend.map((e) => e.label.length));
  return Math.min(280, 44 + chars * CHAR_WIDTH);
}

/** The plotting area left once the title, the axes and the legend have their room. */
function plotBox(legend: readonly LegendEntry[]): Box {
  return { x0: MARGIN.left, x1: WIDTH - legendWidth(legend) - 20, y0: MARGIN.top, y1: HEIGHT - MARGIN.bottom };
}

function attrs(values: Record<string, string | number | undefined>): string {
  return Object.entries(values)
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => ` ${k}="${typeof v === 'number' ? round2(v) : escapeMarkup(v!)}"`)
    .join('');
}

function text(x: number, y: number, content: string, extra: Record<string, string | number | undefined> = {}): string {
  return `<text${attrs({ x, y, ...extra })}>${escapeMarkup(content)}</text>`;
}

/** The frame every plot shares: background, title and caption, gridlines, both axes, the legend. */
function frame(spec: {
  title: string;
  caption: string;
  box: Box;
  x: { ticks: Tick[]; minor?: number[]; label: string };
  y: { ticks: Tick[]; label: string };
  legend: LegendEntry[];
  body: string[];
}): string {
  const { box } = spec;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg"${attrs({ width: WIDTH, height: HEIGHT, viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img', 'font-family': FONT, 'font-size': 12 })}>`,
    `<title>${escapeMarkup(spec.title)}</title>`,
    `<rect${attrs({ width: WIDTH, height: HEIGHT, fill: '#ffffff' })}/>`,
    text(box.x0, 24, spec.title, { 'font-size': 15, 'font-weight': 'bold', fill: '#111111' }),
    text(box.x0, 42, spec.caption, { 'font-size': 11, fill: '#444444' }),
    '<g class="grid">',
    ...spec.y.ticks.map((t) => `<line${attrs({ x1: box.x0, x2: box.x1, y1: t.at, y2: t.at, stroke: '#e6e6e6' })}/>`),
    '</g>',
    ...spec.body,
    '<g class="axis x">',
    `<line${attrs({ x1: box.x0, x2: box.x1, y1: box.y1, y2: box.y1, stroke: '#333333' })}/>`,
    ...(spec.x.minor ?? []).map((at) => `<line${attrs({ x1: at, x2: at, y1: box.y1, y2: box.y1 + 3, stroke: '#333333' })}/>`),
    ...spec.x.ticks.flatMap((t) => [
      `<line${attrs({ x1: t.at, x2: t.at, y1: box.y1, y2: box.y1 + 6, stroke: '#333333' })}/>`,
      text(t.at, box.y1 + 19, t.label, { 'text-anchor': 'middle', fill: '#333333' }),
    ]),
    text((box.x0 + box.x1) / 2, HEIGHT - 12, spec.x.label, { 'text-anchor': 'middle', fill: '#111111' }),
    '</g>',
    '<g class="axis y">',
    `<line${attrs({ x1: box.x0, x2: box.x0, y1: box.y0, y2: box.y1, stroke: '#333333' })}/>`,
    ...spec.y.ticks.flatMap((t) => [
      `<line${attrs({ x1: box.x0 - 6, x2: box.x0, y1: t.at, y2: t.at, stroke: '#333333' })}/>`,
      text(box.x0 - 9, t.at + 4, t.label, { 'text-anchor': 'end', fill: '#333333' }),
    ]),
    text(18, (box.y0 + box.y1) / 2, spec.y.label, {
      'text-anchor': 'middle',
      transform: `rotate(-90 18 ${round2((box.y0 + box.y1) / 2)})`,
      fill: '#111111',
    }),
    '</g>',
    legendSvg(spec.legend, box),
    '</svg>',
  ];
  return `${out.join('\n')}\n`;
}

function legendSvg(legend: readonly LegendEntry[], box: Box): string {
  const x = box.x1 + 20;
  const rows = legend.map((e, i) => {
    const y = box.y0 + 8 + i * 20;
    return [
      `<g class="legend-entry"${attrs({ 'data-method': e.label })}>`,
      e.band ? `<rect${attrs({ x, y: y - 6, width: 26, height: 12, fill: e.style.color, 'fill-opacity': 0.18 })}/>` : '',
      `<line${attrs({ x1: x, x2: x + 26, y1: y, y2: y, stroke: e.style.color, 'stroke-width': 2.5, 'stroke-dasharray': e.style.dash })}/>`,
      text(x + 34, y + 4, e.label, { fill: '#111111' }),
      '</g>',
    ].join('');
  });
  return ['<g class="legend">', ...rows, '</g>'].join('\n');
}

/** A message in place of a plot that has nothing to draw, so a study with no data still has a readable file. */
function emptyPlot(title: string, message: string): string {
  const box = plotBox([]);
  return frame({
    title,
    caption: message,
    box,
    x: { ticks: [], label: '' },
    y: { ticks: [], label: '' },
    legend: [],
    body: [text((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2, message, { 'text-anchor': 'middle', fill: '#666666' })],
  });
}

/** An accuracy axis over the data and its intervals, clamped to [0, 1], with percentage ticks. */
function accuracyScale(values: readonly number[], box: Box) {
  const finite = values.filter((v) => Number.isFinite(v));
  let lo = Math.max(0, Math.min(...finite));
  let hi = Math.min(1, Math.max(...finite));
  if (!(hi > lo)) {
    lo = Math.max(0, lo - 0.05);
    hi = Math.min(1, hi + 0.05);
  }
  const pad = (hi - lo) * 0.05;
  const y = scaleLinear()
    .domain([Math.max(0, lo - pad), Math.min(1, hi + pad)])
    .range([box.y1, box.y0])
    .nice()
    .clamp(true);
  const format = y.tickFormat(6, '%');
  return { y, ticks: y.ticks(6).map((t) => ({ at: y(t), label: format(t) })) };
}

function accuracyLabel(summaries: readonly MethodSummary[]): string {
  const metrics = new Set(summaries.map((s) => s.metric));
  if (metrics.size === 1) return metrics.has('heldOut') ? 'Held-out accuracy' : 'Validation accuracy (sites)';
  return 'Accuracy (held-out; "(val)": the sites\' validation accuracy)';
}

function seriesLabel(summary: MethodSummary, mixed: boolean): string {
  return mixed && summary.metric === 'valAccuracy' ? `${summary.method} (val)` : summary.method;
}

interface XY {
  x: number;
  mean: number;
  half: number;
}

/** A method's band (when any point has an interval), line and, when few enough to read, its points. */
function series(method: string, style: MethodStyle, points: readonly XY[], y: (v: number) => number, withBand: boolean): string {
  const out = [`<g class="series"${attrs({ 'data-method': method })}>`, `<title>${escapeMarkup(method)}</title>`];
  if (withBand) {
    const band = area<XY>()
      .defined((p) => Number.isFinite(p.half))
      .x((p) => p.x)
      .y0((p) => y(p.mean - p.half))
      .y1((p) => y(p.mean + p.half))
      .digits(2)(points);
    if (band) out.push(`<path class="band"${attrs({ d: band, fill: style.color, 'fill-opacity': 0.18, stroke: 'none' })}/>`);
  }
  const path = line<XY>()
    .x((p) => p.x)
    .y((p) => y(p.mean))
    .digits(2)(points);
  if (path) {
    out.push(
      `<path class="line"${attrs({ d: path, fill: 'none', stroke: style.color, 'stroke-width': 2, 'stroke-dasharray': style.dash, 'stroke-linejoin': 'round' })}/>`,
    );
  }
  if (points.length <= 30) {
    out.push(...points.map((p) => `<circle${attrs({ cx: p.x, cy: y(p.mean), r: 2.5, fill: style.color })}/>`));
  }
  out.push('</g>');
  return out.join('');
}

function withSetting(title: string, setting: Setting | undefined): string {
  const label = settingLabel(setting);
  return label === undefined ? title : `${title} (${label})`;
}

const BAND_CAPTION = 'Line: mean over seeds; shaded band: 95% t-interval across seeds (drawn with two or more seeds).';

type Curve = MethodSummary['curve'];

/**
 * Accuracy curves, a line per method and, with two or more seeds, a band for the 95% interval across
 * seeds, against the x axis `xAxis` lays out in the plot's box: the frame both curve plots share.
 */
function curvesSvg(
  drawn: ReadonlyArray<{ s: MethodSummary; curve: Curve }>,
  options: { title: string; styles: Map<string, MethodStyle> },
  xAxis: (box: Box) => { at: (p: Curve[number]) => number; axis: { ticks: Tick[]; minor?: number[]; label: string } },
): string {
  const mixed = new Set(drawn.map((d) => d.s.metric)).size > 1;
  const band = (d: (typeof drawn)[number]) => d.s.seeds.length >= 2 && d.curve.some((p) => Number.isFinite(p.half));
  const legend = drawn.map((d) => ({ label: seriesLabel(d.s, mixed), style: styleOf(options.styles, d.s.method), band: band(d) }));
  const box = plotBox(legend);
  const { at, axis } = xAxis(box);
  const { y, ticks } = accuracyScale(
    drawn.flatMap((d) => d.curve.flatMap((p) => [p.mean, p.mean - p.half, p.mean + p.half])),
    box,
  );
  return frame({
    title: options.title,
    caption: BAND_CAPTION,
    box,
    x: axis,
    y: { ticks, label: accuracyLabel(drawn.map((d) => d.s)) },
    legend,
    body: drawn.map((d) =>
      series(
        seriesLabel(d.s, mixed),
        styleOf(options.styles, d.s.method),
        d.curve.map((p) => ({ x: at(p), mean: p.mean, half: p.half })),
        y,
        band(d),
      ),
    ),
  });
}

/**
 * Accuracy against round for the groups of one setting: a line per method and, with two or more seeds, a
 * band for the 95% interval across seeds.
 */
export function accuracyByRoundSvg(summaries: readonly MethodSummary[], options: { title: string; styles: Map<string, MethodStyle> }): string {
  const drawn = summaries.filter((s) => s.curve.length > 0).map((s) => ({ s, curve: s.curve }));
  if (drawn.length === 0) return emptyPlot(options.title, 'No finished run recorded an accuracy per round.');
  const rounds = drawn.flatMap((d) => d.curve.map((p) => p.round));
  const [first, last] = [Math.min(...rounds), Math.max(...rounds)];
  return curvesSvg(drawn, options, (box) => {
    const x = scaleLinear()
      .domain(first === last ? [first - 1, last + 1] : [first, last])
      .range([box.x0, box.x1]);
    const ticks = x
      .ticks(Math.min(10, last - first + 1))
      .filter((t) => Number.isInteger(t))
      .map((t) => ({ at: x(t), label: String(t) }));
    return { at: (p) => x(p.round), axis: { ticks, label: 'Round' } };
  });
}

/** Accuracy against the bytes moved so far (log scale): what each method's accuracy costs in traffic. */
export function accuracyByBytesSvg(summaries: readonly MethodSummary[], options: { title: string; styles: Map<string, MethodStyle> }): string {
  const drawn = summaries
    .map((s) => ({ s, curve: s.curve.filter((p) => p.bytes > 0 && Number.isFinite(p.bytes)) }))
    .filter((d) => d.curve.length > 0);
  if (drawn.length === 0) return emptyPlot(options.title, 'No finished run recorded traffic and accuracy per round.');
  const bytes = drawn.flatMap((d) => d.curve.map((p) => p.bytes));
  const [lo, hi] = [Math.min(...bytes), Math.max(...bytes)];
  return curvesSvg(drawn, options, (box) => {
    // A little room either side rather than `nice()`, which on a log scale can leave a decade empty.
    const x = scaleLog()
      .domain(lo === hi ? [lo / 2, hi * 2] : [lo / 1.1, hi * 1.1])
      .range([box.x0, box.x1]);
    const format = x.tickFormat(6, '~s');
    const all = x.ticks();
    return {
      at: (p) => x(p.bytes),
      axis: {
        ticks: all.filter((t) => format(t) !== '').map((t) => ({ at: x(t), label: `${format(t)}B` })),
        minor: all.filter((t) => format(t) === '').map((t) => x(t)),
        label: 'Bytes moved so far, in + out, all sites (mean over seeds, log scale)',
      },
    };
  });
}

/**
 * Final held-out accuracy against the swept setting (e.g. samples per site): a line per method through
 * the means, with 95% error bars where there are two or more seeds. Numeric settings spanning a decade or
 * more are drawn on a log scale.
 */
export function accuracyBySettingSvg(summaries: readonly MethodSummary[], options: { title: string; styles: Map<string, MethodStyle> }): string {
  const drawn = summaries.filter((s) => s.setting !== undefined && Number.isFinite(s.heldOut.mean));
  if (drawn.length === 0) return emptyPlot(options.title, 'No finished run at any setting.');
  const methods = [...new Set(drawn.map((s) => s.method))];
  const legend = methods.map((m) => ({ label: m, style: styleOf(options.styles, m), band: false }));
  const box = plotBox(legend);
  const values = [...new Set(drawn.map((s) => s.setting!.value))];
  const numeric = values.every((v) => typeof v === 'number');
  let position: (v: number | string) => number;
  let ticks: Tick[];
  let scaleNote = '';
  if (numeric) {
    const nums = (values as number[]).slice().sort((a, b) => a - b);
    const [lo, hi] = [nums[0]!, nums[nums.length - 1]!];
    const log = lo > 0 && hi / lo >= 10;
    const domain = lo === hi ? [lo - 1, hi + 1] : [lo, hi];
    const scale = (log ? scaleLog() : scaleLinear()).domain(log ? [lo / 1.25, hi * 1.25] : domain).range([box.x0 + 10, box.x1 - 10]);
    position = (v) => scale(v as number);
    const tickValues = nums.length <= 12 ? nums : scale.ticks(8);
    ticks = tickValues.map((t) => ({ at: scale(t), label: String(t) }));
    scaleNote = log ? ' (log scale)' : '';
  } else {
    const scale = scalePoint<string>().domain(values.map(String)).range([box.x0, box.x1]).padding(0.5);
    position = (v) => scale(String(v))!;
    ticks = values.map((v) => ({ at: scale(String(v))!, label: String(v) }));
  }
  const { y, ticks: yTicks } = accuracyScale(
    drawn.flatMap((s) => [s.heldOut.mean, s.heldOut.mean - s.heldOut.half, s.heldOut.mean + s.heldOut.half]),
    box,
  );
  const body = methods.map((method, i) => {
    const style = styleOf(options.styles, method);
    // Methods sit a few pixels apart at each setting so their error bars do not hide one another.
    const offset = (i - (methods.length - 1) / 2) * 5;
    const points = drawn.filter((s) => s.method === method).map((s) => ({ x: position(s.setting!.value) + offset, m: s.heldOut }));
    if (numeric) points.sort((a, b) => a.x - b.x);
    const path = line<(typeof points)[number]>()
      .x((p) => p.x)
      .y((p) => y(p.m.mean))
      .digits(2)(points);
    const bars = points
      .filter((p) => Number.isFinite(p.m.half))
      .map((p) => {
        const [top, bottom] = [y(p.m.mean + p.m.half), y(p.m.mean - p.m.half)];
        return [
          `<line${attrs({ x1: p.x, x2: p.x, y1: top, y2: bottom, stroke: style.color, 'stroke-width': 1.5 })}/>`,
          `<line${attrs({ x1: p.x - 4, x2: p.x + 4, y1: top, y2: top, stroke: style.color, 'stroke-width': 1.5 })}/>`,
          `<line${attrs({ x1: p.x - 4, x2: p.x + 4, y1: bottom, y2: bottom, stroke: style.color, 'stroke-width': 1.5 })}/>`,
        ].join('');
      });
    return [
      `<g class="series"${attrs({ 'data-method': method })}>`,
      `<title>${escapeMarkup(method)}</title>`,
      path ? `<path class="line"${attrs({ d: path, fill: 'none', stroke: style.color, 'stroke-width': 2, 'stroke-dasharray': style.dash })}/>` : '',
      `<g class="error-bars">${bars.join('')}</g>`,
      ...points.map((p) => `<circle${attrs({ cx: p.x, cy: y(p.m.mean), r: 3.5, fill: style.color })}/>`),
      '</g>',
    ].join('');
  });
  return frame({
    title: options.title,
    caption: 'Point: mean final held-out accuracy over seeds; error bar: 95% t-interval (two or more seeds).',
    box,
    x: { ticks, label: `${drawn[0]!.setting!.name}${scaleNote}` },
    y: { ticks: yTicks, label: 'Held-out accuracy' },
    legend,
    body,
  });
}

/** Linear-interpolation quantile of sorted values (R's type 7). */
function quantile(sorted: readonly number[], q: number): number {
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  return sorted[lo]! + (sorted[Math.min(lo + 1, sorted.length - 1)]! - sorted[lo]!) * (at - lo);
}

/**
 * The spread of final per-site accuracies for the groups of one setting, pooled over seeds: each site a
 * dot, with a box from the first to the third quartile, the median, and whiskers to the extremes.
 */
export function perClientSpreadSvg(summaries: readonly MethodSummary[], options: { title: string; styles: Map<string, MethodStyle> }): string {
  const drawn = summaries.filter((s) => s.finalClientAccuracy.length > 0);
  if (drawn.length === 0) return emptyPlot(options.title, 'No finished run reported per-site accuracies.');
  const legend = drawn.map((s) => ({ label: s.method, style: styleOf(options.styles, s.method), band: false }));
  const box = plotBox(legend);
  const x = scaleBand<string>()
    .domain(drawn.map((s) => s.method))
    .range([box.x0, box.x1])
    .padding(0.3);
  const { y, ticks } = accuracyScale(
    drawn.flatMap((s) => s.finalClientAccuracy),
    box,
  );
  const body = drawn.map((s) => {
    const style = styleOf(options.styles, s.method);
    const sorted = [...s.finalClientAccuracy].sort((a, b) => a - b);
    const [left, width] = [x(s.method)!, x.bandwidth()];
    const mid = left + width / 2;
    const [q1, median, q3] = [quantile(sorted, 0.25), quantile(sorted, 0.5), quantile(sorted, 0.75)];
    // A fixed, data-independent jitter (golden-ratio steps) keeps the plot the same from one write to the next.
    const dots = s.finalClientAccuracy.map((v, i) => {
      const jitter = (((i * 0.618034) % 1) - 0.5) * width * 0.6;
      return `<circle${attrs({ cx: mid + jitter, cy: y(v), r: 2.5, fill: style.color, 'fill-opacity': 0.6 })}/>`;
    });
    return [
      `<g class="series"${attrs({ 'data-method': s.method })}>`,
      `<title>${escapeMarkup(`${s.method}: ${sorted.length} site accuracies, median ${(median * 100).toFixed(1)}%`)}</title>`,
      `<line${attrs({ x1: mid, x2: mid, y1: y(sorted[0]!), y2: y(q1), stroke: style.color, 'stroke-width': 1.5 })}/>`,
      `<line${attrs({ x1: mid, x2: mid, y1: y(q3), y2: y(sorted[sorted.length - 1]!), stroke: style.color, 'stroke-width': 1.5 })}/>`,
      `<rect class="box"${attrs({ x: left, y: y(q3), width, height: Math.max(1, y(q1) - y(q3)), fill: style.color, 'fill-opacity': 0.15, stroke: style.color, 'stroke-width': 1.5 })}/>`,
      `<line${attrs({ x1: left, x2: left + width, y1: y(median), y2: y(median), stroke: style.color, 'stroke-width': 2.5 })}/>`,
      ...dots,
      '</g>',
    ].join('');
  });
  return frame({
    title: options.title,
    caption: 'Dots: each site’s final accuracy, every seed pooled; box: quartiles and median; whiskers: lowest and highest site.',
    box,
    x: { ticks: drawn.map((s) => ({ at: x(s.method)! + x.bandwidth() / 2, label: s.method })), label: 'Method' },
    y: { ticks, label: 'Final per-site accuracy' },
    legend,
    body,
  });
}

function slug(text: string): string {
  return (
    text
      .toLowerCase()
      .replace(/[^a-z0-9.]+/g, '-')
      .replace(/^-+|-+$/g, '') || 'setting'
  );
}

/**
 * Every plot of a study: per setting, accuracy by round, accuracy by bytes and (when sites report
 * them) the per-site spread; and accuracy by setting when the study sweeps one.
 */
export function studyPlots(
  report: Pick<StudyReport, 'title' | 'runs' | 'target'>,
  summaries: readonly MethodSummary[] = summarizeStudy(report),
): StudyPlot[] {
  const styles = methodStyles(studyMethods(report.runs));
  const settings = studySettings(report.runs);
  const sweep = settings.length > 1;
  const used = new Set<string>();
  const name = (base: string, setting: Setting | undefined) => {
    const first = setting === undefined ? base : `${base}-${slug(settingLabel(setting)!)}`;
    let file = first;
    for (let i = 2; used.has(file); i++) file = `${first}-${i}`;
    used.add(file);
    return `${file}.svg`;
  };
  const plots: StudyPlot[] = [];
  for (const setting of settings) {
    const here = summaries.filter((s) => sameSetting(s.setting, setting));
    const add = (base: string, what: string, draw: typeof accuracyByRoundSvg) => {
      const title = withSetting(`${report.title}: ${what}`, setting);
      plots.push({ file: name(base, setting), title, svg: draw(here, { title, styles }) });
    };
    add('accuracy-by-round', 'accuracy by round', accuracyByRoundSvg);
    add('accuracy-by-bytes', 'accuracy by bytes moved', accuracyByBytesSvg);
    if (here.some((s) => s.finalClientAccuracy.length > 0)) add('per-client-spread', 'per-site accuracy', perClientSpreadSvg);
  }
  if (sweep) {
    const title = `${report.title}: held-out accuracy by ${settings[0]!.name}`;
    plots.push({ file: name('accuracy-by-setting', undefined), title, svg: accuracyBySettingSvg(summaries, { title, styles }) });
  }
  return plots;
}
