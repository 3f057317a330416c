import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ErrorCode, FtlError } from '../errors.js';
import type {
  ChannelStats,
  TableColumn,
  TableColumnEncoding,
  TableColumnSummary,
  TableEncoding,
  TableSpec,
  TableSummary,
} from '../protocol/messages.js';
import { splitCsvFields } from './csv.js';
import type { ImageDataset } from './dataset.js';
import { combineStats } from './federated-stats.js';
import { compareLabels } from './label-map.js';
import { splitIndices } from './partition.js';

// A table site's data path: the CSV as read (RawTable) → typed against the run's columns (TypedTable,
// every cell checked, errors naming the line and column) → summarised for the coordinator (category names
// and column statistics, never a row) → encoded with the encoding the run fixed from every site's summary
// into one vector per row (a 1 × width × 1 "image", which the backbone, the feature cache and the head
// take like any other input).

function fail(message: string): never {
  throw new FtlError(ErrorCode.Dataset, message);
}

/** A CSV table as read, before it meets a run's columns: the header, and each data line's cells with its line number. */
export interface RawTable {
  /** Names the source in errors. */
  readonly file: string;
  readonly header: readonly string[];
  readonly rows: readonly (readonly string[])[];
  /** The 1-based line number of each row in the file. */
  readonly lines: readonly number[];
}

/**
 * Reads a CSV table: a header line naming the columns, then one row per line with as many cells as the
 * header. Blank lines are skipped; a UTF-8 BOM and CRLF line ends are fine; cells are kept as text (the
 * run's columns say how to read them, {@link typeTable}).
 *
 * @throws FtlError(DATASET) for an empty file, a header without rows, a repeated or empty column name,
 *   or a row with another number of cells than the header, naming the file and line.
 * @example
 * parseCsvTable('age,smoker,outcome\n54,yes,ill\n', 'site.csv').rows; // [['54', 'yes', 'ill']]
 */
export function parseCsvTable(text: string, file: string): RawTable {
  const lines = (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text).split(/\r?\n/);
  const headerAt = lines.findIndex((l) => l.trim() !== '');
  if (headerAt < 0) fail(`${file} is empty; a table needs a header line naming its columns and one line per row`);
  const header = splitCsvFields(lines[headerAt]!, `${file} line ${headerAt + 1}`).map((h) => h.trim());
  const seen = new Set<string>();
  header.forEach((h, i) => {
    if (h === '') fail(`${file} line ${headerAt + 1}: column ${i + 1} has no name; name every column in the header`);
    if (seen.has(h)) fail(`${file} line ${headerAt + 1}: column "${h}" is named twice; give every column its own name`);
    seen.add(h);
  });
  const rows: string[][] = [];
  const at: number[] = [];
  for (let l = headerAt + 1; l < lines.length; l++) {
    if (lines[l]!.trim() === '') continue;
    const where = `${file} line ${l + 1}`;
    const cells = splitCsvFields(lines[l]!, where);
    if (cells.length !== header.length) {
      fail(`${where} has ${cells.length} cells but the header has ${header.length} columns; look for a missing or extra comma`);
    }
    rows.push(cells.map((c) => c.trim()));
    at.push(l + 1);
  }
  if (rows.length === 0) fail(`${file} has a header but no rows; add one line per record`);
  return { file, header, rows, lines: at };
}

/**
 * Reads a CSV table file ({@link parseCsvTable}).
 *
 * @throws FtlError(DATASET) when the file cannot be read, or for anything {@link parseCsvTable} finds.
 */
export function loadCsvTable(file: string): RawTable {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EISDIR' ? 'is a folder' : `cannot be read (${(err as Error).message})`;
    throw new FtlError(ErrorCode.Dataset, `CSV file ${file} ${why}`, { cause: err });
  }
  return parseCsvTable(text, file);
}

/** The rows at `indices`, in that order. */
export function subsetRawTable(t: RawTable, indices: ArrayLike<number>): RawTable {
  const pick = Array.from(indices);
  return { ...t, rows: pick.map((i) => t.rows[i]!), lines: pick.map((i) => t.lines[i]!) };
}

/**
 * Splits a table's rows into two seeded parts, the second holding `round(n × fraction)` rows: e.g. a
 * source split to pretrain an encoder on and a target split the sites share, the same for every caller
 * that gives the same fraction and seed.
 */
export function splitRawTable(t: RawTable, fraction: number, seed: number): [RawTable, RawTable] {
  const [a, b] = splitIndices(t.rows.length, fraction, seed);
  return [subsetRawTable(t, a), subsetRawTable(t, b)];
}

/**
 * Several tables as one (a pooled site). Their headers must name the same columns; rows of a table with
 * them in another order are reordered to the first's.
 *
 * @throws FtlError(DATASET) when the tables' columns differ.
 */
export function concatRawTables(parts: readonly RawTable[]): RawTable {
  const first = parts[0];
  if (!first) fail('no tables to concatenate');
  const rows: (readonly string[])[] = [];
  const lines: number[] = [];
  for (const p of parts) {
    const order = first.header.map((h) => p.header.indexOf(h));
    if (p.header.length !== first.header.length || order.some((i) => i < 0)) {
      fail(`${p.file} has other columns than ${first.file}; tables to pool must have the same columns`);
    }
    for (const r of p.rows) rows.push(order.map((i) => r[i]!));
    lines.push(...p.lines);
  }
  return { file: parts.length === 1 ? first.file : `${parts.length} tables`, header: first.header, rows, lines };
}

/** The label column's cells of a table, by the run's columns (rows in order), e.g. to partition it by label. */
export function rawLabels(t: RawTable, spec: TableSpec): string[] {
  const label = spec.columns.find((c) => c.role === 'label')!;
  const i = t.header.indexOf(label.name);
  if (i < 0) fail(`${t.file} has no column "${label.name}", the run's label`);
  return t.rows.map((r) => r[i]!);
}

/**
 * A stand-in dataset whose digest is the table's: what a site's privacy ledger is keyed by, so the ε it
 * spends on a table adds up across runs whatever encoding each run fixes.
 */
export function rawTableIdentity(t: RawTable): ImageDataset {
  const h = createHash('sha256');
  h.update(t.header.join('\u0001'));
  for (const r of t.rows) h.update(`\u0000${r.join('\u0001')}`);
  return { images: Float32Array.from(h.digest()), labels: new Int32Array(0), n: t.rows.length, height: 1, width: 32, channels: 1, classes: [] };
}

/**
 * Whether a header's columns differ from the run's: one line naming the missing and the extra columns,
 * or undefined when they are the same (in any order).
 */
export function columnsProblem(header: readonly string[], spec: TableSpec, file: string): string | undefined {
  const want = spec.columns.map((c) => c.name);
  const missing = want.filter((n) => !header.includes(n));
  const extra = header.filter((n) => !want.includes(n));
  if (missing.length === 0 && extra.length === 0) return undefined;
  const parts = [
    ...(missing.length > 0 ? [`missing ${missing.map((n) => `"${n}"`).join(', ')}`] : []),
    ...(extra.length > 0 ? [`extra ${extra.map((n) => `"${n}"`).join(', ')}`] : []),
  ];
  return (
    `${file}: its columns differ from the run's table: ${parts.join('; ')}; ` +
    "give the file exactly the run's columns (table.columns of the run config), in any order"
  );
}

/** The feature columns of a run's table, in its order. */
export function featureColumns(spec: TableSpec): TableColumn[] {
  return spec.columns.filter((c) => c.role === 'feature');
}

/** A column read as numbers (numeric, boolean and date columns). */
function isNumberLike(c: TableColumn): boolean {
  return c.type !== 'categorical';
}

/**
 * A table read against the run's columns: the label of every row, and every feature column as numbers
 * (NaN where missing) or category names (undefined where missing), in the run's column order.
 */
export interface TypedTable {
  readonly file: string;
  readonly lines: readonly number[];
  readonly labels: readonly string[];
  readonly features: ReadonlyArray<Float64Array | ReadonlyArray<string | undefined>>;
}

/** Cells that mean "no value": empty, NA, N/A, NaN, null or ?, in any case. */
const MISSING = /^(|na|n\/a|nan|null|\?)$/i;
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const TRUE = /^(true|yes|y|t|1)$/i;
const FALSE = /^(false|no|n|f|0)$/i;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/;
const DAY_MS = 86_400_000;

/** A cell of a number-like column as a number, or why it is not one. */
function readNumber(cell: string, type: TableColumn['type']): number | string {
  if (type === 'numeric') return DECIMAL.test(cell) ? Number(cell) : 'is not a number; numeric columns hold decimal numbers such as 62.05 or -1e-3';
  if (type === 'boolean') {
    if (TRUE.test(cell)) return 1;
    return FALSE.test(cell) ? 0 : 'is not a boolean; boolean columns hold true/false, yes/no, y/n, t/f or 1/0';
  }
  const ms = ISO_DATE.test(cell) ? Date.parse(cell.length === 10 ? `${cell}T00:00:00Z` : cell) : NaN;
  return Number.isFinite(ms) ? ms / DAY_MS : 'is not a date; date columns hold ISO dates such as 2024-03-01 (or 2024-03-01T12:00:00Z)';
}

/**
 * Reads a table against the run's columns: the header must name exactly the run's columns, every label
 * must be there, and every feature cell must read as its column's type or be missing where the column's
 * policy allows it (a missing cell is empty, NA, N/A, NaN, null or ?).
 *
 * @throws FtlError(DATASET) in one line: the columns that differ, or the first bad cell by file, line and
 *   column with what it holds and how to fix it.
 * @example
 * const t = typeTable(loadCsvTable('site.csv'), run.table);
 */
export function typeTable(raw: RawTable, spec: TableSpec): TypedTable {
  const problem = columnsProblem(raw.header, spec, raw.file);
  if (problem) fail(problem);
  const index = (name: string) => raw.header.indexOf(name);
  const label = spec.columns.find((c) => c.role === 'label')!;
  const li = index(label.name);
  const where = (r: number, column: string) => `${raw.file} line ${raw.lines[r]}, column "${column}"`;
  const labels = raw.rows.map((row, r) => {
    const v = row[li]!;
    if (MISSING.test(v)) fail(`${where(r, label.name)}: the label is missing (${JSON.stringify(v)}); give every row its label, or leave the row out`);
    return v;
  });
  const features = featureColumns(spec).map((c) => {
    const ci = index(c.name);
    const missingCell = (r: number, cell: string): void => {
      if (c.missing === 'error') {
        fail(
          `${where(r, c.name)}: the value is missing (${JSON.stringify(cell)}); fill it, or set this column's missing policy to impute or indicator in the run's table.columns`,
        );
      }
    };
    if (!isNumberLike(c)) {
      return raw.rows.map((row, r) => {
        const cell = row[ci]!;
        if (!MISSING.test(cell)) return cell;
        missingCell(r, cell);
        return undefined;
      });
    }
    const values = new Float64Array(raw.rows.length);
    raw.rows.forEach((row, r) => {
      const cell = row[ci]!;
      if (MISSING.test(cell)) {
        missingCell(r, cell);
        values[r] = NaN;
        return;
      }
      const v = readNumber(cell, c.type);
      if (typeof v === 'string') fail(`${where(r, c.name)}: ${JSON.stringify(cell)} ${v}`);
      values[r] = v;
    });
    return values;
  });
  return { file: raw.file, lines: raw.lines, labels, features };
}

/** The rows at `indices` of a typed table, in that order. */
export function subsetTypedTable(t: TypedTable, indices: ArrayLike<number>): TypedTable {
  const pick = Array.from(indices);
  return {
    file: t.file,
    lines: pick.map((i) => t.lines[i]!),
    labels: pick.map((i) => t.labels[i]!),
    features: t.features.map((f) => (f instanceof Float64Array ? Float64Array.from(pick, (i) => f[i]!) : pick.map((i) => f[i]))),
  };
}

/**
 * A typed table cut to `limit` rows and split, seeded, into training and validation rows, as
 * `splitLocalData` splits any other site data (the same seeds, so the same rows for the same options).
 *
 * @throws FtlError(DATASET) when fewer than two rows remain.
 */
export function splitTypedTable(t: TypedTable, o: { seed: number; valFraction?: number; limit?: number }): { train: TypedTable; val: TypedTable } {
  let table = t;
  if (o.limit !== undefined && o.limit < table.labels.length)
    table = subsetTypedTable(table, splitIndices(table.labels.length, o.limit / table.labels.length, o.seed)[1]);
  const n = table.labels.length;
  if (n < 2) fail(`${t.file} has ${n} row${n === 1 ? '' : 's'}; a site needs at least 2 (one to train on, one to validate); add rows`);
  const valCount = Math.min(n - 1, Math.max(1, Math.round(n * (o.valFraction ?? 0.15))));
  const [train, val] = splitIndices(n, valCount / n, o.seed + 1);
  return { train: subsetTypedTable(table, train), val: subsetTypedTable(table, val) };
}

/**
 * What a site tells the coordinator of its training table: per feature column, the count, sum, sum of
 * squares and extremes of the values present (number-like columns), or the category names at least
 * `minCategoryRows` rows hold and the most common of them (categorical columns). Never a row, never a
 * category's count; a category fewer than k rows hold is not named at all.
 */
export function summarizeTable(t: TypedTable, spec: TableSpec): TableSummary {
  const k = spec.minCategoryRows;
  const columns = featureColumns(spec).map((c, j): TableColumnSummary => {
    const f = t.features[j]!;
    if (f instanceof Float64Array) {
      let count = 0;
      let sum = 0;
      let sumSquares = 0;
      let min = Infinity;
      let max = -Infinity;
      for (const v of f) {
        if (Number.isNaN(v)) continue;
        count++;
        sum += v;
        sumSquares += v * v;
        if (v < min) min = v;
        if (v > max) max = v;
      }
      return count === 0 ? { name: c.name, count } : { name: c.name, count, sum, sumSquares, min, max };
    }
    const counts = new Map<string, number>();
    for (const v of f) if (v !== undefined) counts.set(v, (counts.get(v) ?? 0) + 1);
    const held = [...counts].filter(([, n]) => n >= k).sort((a, b) => compareLabels(a[0], b[0]));
    const mode = held.reduce<[string, number] | undefined>((best, e) => (!best || e[1] > best[1] ? e : best), undefined);
    return { name: c.name, categories: held.map(([name]) => name), ...(mode ? { mode: mode[0] } : {}) };
  });
  return { columns };
}

/** Whether a summary's or an encoding's columns are the run's feature columns, by name and in order; undefined when they are. */
function misalignedColumns(
  what: 'summary' | 'encoding',
  columns: ReadonlyArray<{ name: string }>,
  features: ReadonlyArray<{ name: string }>,
): string | undefined {
  if (columns.length !== features.length) {
    return `the table ${what} has ${columns.length} columns but the run's table has ${features.length} feature columns`;
  }
  const j = columns.findIndex((col, i) => col.name !== features[i]!.name);
  return j < 0 ? undefined : `table ${what} column ${j + 1} is "${columns[j]!.name}" but the run's feature column ${j + 1} is "${features[j]!.name}"`;
}

/**
 * Whether a site's summary fits the run's table (one entry per feature column, in order, of the kind its
 * type has, statistics that agree with each other), or undefined when it does.
 */
export function tableSummaryProblem(summary: TableSummary, spec: TableSpec): string | undefined {
  const features = featureColumns(spec);
  const misaligned = misalignedColumns('summary', summary.columns, features);
  if (misaligned) return misaligned;
  for (const [j, c] of features.entries()) {
    const s = summary.columns[j]!;
    if (isNumberLike(c)) {
      if (s.categories !== undefined || s.mode !== undefined) return `table summary column "${c.name}" names categories, but the column is ${c.type}`;
      if (s.count === undefined) return `table summary column "${c.name}" has no count`;
      if (s.count === 0) continue;
      const { sum, sumSquares, min, max } = s;
      if (sum === undefined || sumSquares === undefined || min === undefined || max === undefined) {
        return `table summary column "${c.name}" counts ${s.count} values but lacks sum, sumSquares, min or max`;
      }
      const mean = sum / s.count;
      const tolerance = 1e-6 * Math.max(1, Math.abs(min), Math.abs(max));
      if (min > max || mean < min - tolerance || mean > max + tolerance || sumSquares + 1e-9 * (1 + sumSquares) < (sum * sum) / s.count) {
        return `table summary column "${c.name}" has statistics that contradict each other (mean, extremes and sum of squares)`;
      }
    } else {
      if (s.count !== undefined || s.sum !== undefined)
        return `table summary column "${c.name}" has numeric statistics, but the column is categorical`;
      if (s.mode !== undefined && !s.categories?.includes(s.mode))
        return `table summary column "${c.name}" has a mode that is not among its categories`;
    }
  }
  return undefined;
}

/** One site's summary and how many training rows are behind it (its weight in the federated mode). */
export interface SiteTableSummary {
  summary: TableSummary;
  rows: number;
}

/**
 * The run's encoding from every site's summary, fixed once before round 1 (the coordinator's side):
 * - number-like columns: the mean over every site's present values fills a missing cell; scaling as
 *   `combineStats` gives on the sites' pooled values (`standard` or `min-max`), or none;
 * - categorical columns: the vocabulary is the union of the names the sites sent, the `categories`
 *   most widely held (by how many sites name them, then by name) when there are more, in name order;
 *   the fill is the mode of the sites whose modes, weighted by their training rows, count most.
 * Deterministic: the same summaries in any order give the same encoding.
 *
 * @throws FtlError(INVALID_MESSAGE) when there is no summary.
 */
export function combineTableSummaries(sites: readonly SiteTableSummary[], spec: TableSpec): TableEncoding {
  if (sites.length === 0) throw new FtlError(ErrorCode.InvalidMessage, 'no site sent a table summary to combine');
  const columns = featureColumns(spec).map((c, j): TableColumnEncoding => {
    const parts = sites.map((s) => s.summary.columns[j]!);
    if (isNumberLike(c)) {
      const present = parts.filter((p) => (p.count ?? 0) > 0);
      if (present.length === 0) return { name: c.name, fill: 0, shift: 0, scale: 1 };
      const stats: ChannelStats[] = present.map((p) => ({
        count: p.count!,
        sum: [p.sum!],
        sumSquares: [p.sumSquares!],
        min: [p.min!],
        max: [p.max!],
      }));
      const n = stats.reduce((a, s) => a + s.count, 0);
      const mean = stats.reduce((a, s) => a + s.sum[0]!, 0) / n;
      if (spec.scaling === 'none') return { name: c.name, fill: mean, shift: 0, scale: 1 };
      const norm = combineStats(stats, spec.scaling);
      return { name: c.name, fill: mean, shift: norm.shift[0]!, scale: norm.scale[0]! };
    }
    const held = new Map<string, number>();
    for (const p of parts) for (const name of new Set(p.categories ?? [])) held.set(name, (held.get(name) ?? 0) + 1);
    const vocabulary = [...held]
      .sort((a, b) => b[1] - a[1] || compareLabels(a[0], b[0]))
      .slice(0, c.categories)
      .map(([name]) => name)
      .sort(compareLabels);
    const modes = new Map<string, number>();
    sites.forEach((s, i) => {
      const m = parts[i]!.mode;
      if (m !== undefined) modes.set(m, (modes.get(m) ?? 0) + s.rows);
    });
    const mode = [...modes].sort((a, b) => b[1] - a[1] || compareLabels(a[0], b[0]))[0]?.[0];
    return { name: c.name, vocabulary, ...(mode !== undefined ? { fill: mode } : {}) };
  });
  return { columns };
}

/** Values a feature column takes in the encoded vector. */
function columnWidth(c: TableColumn): number {
  const indicator = c.missing === 'indicator' ? 1 : 0;
  return isNumberLike(c) ? 1 + indicator : c.categories + 1 + indicator;
}

/**
 * Length of a row's encoded vector: 1 per number-like feature (2 with the indicator policy), and per
 * categorical feature one slot per allowed category plus "other" (plus "missing" with the indicator
 * policy). It depends on the run's columns only, so the backbone's input is known before any site joins.
 *
 * @example
 * encodedWidth({ columns: [age numeric, smoker categorical with 2 categories, outcome label], … }); // 1 + 3 = 4
 */
export function encodedWidth(spec: TableSpec): number {
  return featureColumns(spec).reduce((a, c) => a + columnWidth(c), 0);
}

/**
 * The name of every value of the encoded vector, in order: `age`, `age=missing`, `smoker=yes`,
 * `smoker=(other)`, `smoker=(missing)`; unused category slots are `smoker=(unused 3)`.
 */
export function encodedFeatureNames(spec: TableSpec, encoding: TableEncoding): string[] {
  return featureColumns(spec).flatMap((c, j) => {
    const e = encoding.columns[j]!;
    const indicator = c.missing === 'indicator';
    if (isNumberLike(c)) return [c.name, ...(indicator ? [`${c.name}=missing`] : [])];
    const vocab = e.vocabulary ?? [];
    const slots = Array.from({ length: c.categories }, (_, i) => (i < vocab.length ? `${c.name}=${vocab[i]}` : `${c.name}=(unused ${i + 1})`));
    return [...slots, `${c.name}=(other)`, ...(indicator ? [`${c.name}=(missing)`] : [])];
  });
}

/**
 * Whether an encoding fits the run's table: one entry per feature column in order, scaling for number-like
 * ones and a vocabulary within the allowed slots for categorical ones; undefined when it does.
 */
export function tableEncodingProblem(encoding: TableEncoding, spec: TableSpec): string | undefined {
  const features = featureColumns(spec);
  const misaligned = misalignedColumns('encoding', encoding.columns, features);
  if (misaligned) return misaligned;
  for (const [j, c] of features.entries()) {
    const e = encoding.columns[j]!;
    if (isNumberLike(c)) {
      if (typeof e.fill !== 'number' || e.shift === undefined || e.scale === undefined)
        return `table encoding column "${c.name}" lacks its fill, shift or scale`;
    } else if (!e.vocabulary || e.vocabulary.length > c.categories || (e.fill !== undefined && typeof e.fill !== 'string')) {
      return `table encoding column "${c.name}" needs a vocabulary of at most ${c.categories} names (and a category name as fill)`;
    }
  }
  return undefined;
}

/**
 * Encodes a typed table with the run's encoding: one vector of {@link encodedWidth} values per row (a
 * 1 × width × 1 dataset), labels as indices into the run's `classes`. A missing number-like value takes
 * the column's fill (and sets its indicator); a category outside the vocabulary, unseen anywhere or too
 * rare to be named, takes the "other" slot; a missing one the fill's slot (`impute`) or "missing" (`indicator`).
 *
 * @throws FtlError(DATASET) for a label outside `classes`, naming the line; FtlError(INVALID_MESSAGE) for an
 *   encoding that does not fit the run's table.
 */
export function encodeTable(t: TypedTable, spec: TableSpec, encoding: TableEncoding, classes: readonly string[]): ImageDataset {
  const problem = tableEncodingProblem(encoding, spec);
  if (problem) throw new FtlError(ErrorCode.InvalidMessage, problem);
  const features = featureColumns(spec);
  const width = encodedWidth(spec);
  const n = t.labels.length;
  const images = new Float32Array(n * width);
  const classIndex = new Map(classes.map((c, i) => [c, i]));
  const label = spec.columns.find((c) => c.role === 'label')!.name;
  const labels = Int32Array.from(t.labels, (name, r) => {
    const i = classIndex.get(name);
    if (i === undefined) {
      fail(
        `${t.file} line ${t.lines[r]}, column "${label}": label ${JSON.stringify(name)} is not one of the run's classes (${classes.join(', ')}); ` +
          'relabel the row, or add the class to the run',
      );
    }
    return i;
  });
  let offset = 0;
  features.forEach((c, j) => {
    const e = encoding.columns[j]!;
    const f = t.features[j]!;
    const indicator = c.missing === 'indicator';
    if (f instanceof Float64Array) {
      const fill = e.fill as number;
      for (let r = 0; r < n; r++) {
        const v = f[r]!;
        const missing = Number.isNaN(v);
        images[r * width + offset] = ((missing ? fill : v) - e.shift!) / e.scale!;
        if (indicator) images[r * width + offset + 1] = missing ? 1 : 0;
      }
    } else {
      const slot = new Map(e.vocabulary!.map((name, i) => [name, i]));
      const other = c.categories;
      for (let r = 0; r < n; r++) {
        const v = f[r] as string | undefined;
        const s =
          v === undefined ? (indicator ? other + 1 : e.fill !== undefined ? (slot.get(e.fill as string) ?? other) : other) : (slot.get(v) ?? other);
        images[r * width + offset + s] = 1;
      }
    }
    offset += columnWidth(c);
  });
  return { images, labels, n, height: 1, width, channels: 1, classes: [...classes] };
}

/** Column names that read as pixel positions: a number at the end (`pixel0`, `p12`, `7`). */
const PIXEL_NAME = /\d+$/;

/**
 * Whether a CSV file holds images or a table, when the site does not say (`--csv` without `--kind`): an
 * image file when every column but the label is named by a number (`pixel0`…, `0`…) and there are side²
 * or side²×3 of them; a table otherwise.
 */
export function inferCsvKind(header: readonly string[], labelColumn = 'label'): 'image' | 'table' {
  const values = header.filter((h) => h !== labelColumn);
  const square = (v: number) => v > 0 && Number.isInteger(Math.sqrt(v));
  const imageCount = square(values.length) || (values.length % 3 === 0 && square(values.length / 3));
  return values.length > 1 && imageCount && values.every((h) => PIXEL_NAME.test(h)) ? 'image' : 'table';
}
