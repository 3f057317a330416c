import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { ErrorCode } from '../errors.js';
import type { TableSpec } from '../protocol/messages.js';
import { expectFtlError } from '../../test-support/expect-ftl-error.js';
import {
  combineTableSummaries,
  concatRawTables,
  encodedFeatureNames,
  encodedWidth,
  encodeTable,
  inferCsvKind,
  parseCsvTable,
  splitTypedTable,
  summarizeTable,
  tableEncodingProblem,
  tableSummaryProblem,
  typeTable,
} from './table.js';

/** A run's table: age (numeric, imputed), smoker (categorical, 2 slots, indicator), admitted (date), vip (boolean), outcome (label), note (ignored). */
const SPEC: TableSpec = {
  columns: [
    { name: 'age', type: 'numeric', role: 'feature', missing: 'impute', categories: 16 },
    { name: 'smoker', type: 'categorical', role: 'feature', missing: 'indicator', categories: 2 },
    { name: 'admitted', type: 'date', role: 'feature', missing: 'error', categories: 16 },
    { name: 'vip', type: 'boolean', role: 'feature', missing: 'error', categories: 16 },
    { name: 'outcome', type: 'categorical', role: 'label', missing: 'error', categories: 16 },
    { name: 'note', type: 'numeric', role: 'ignore', missing: 'error', categories: 16 },
  ],
  minCategoryRows: 2,
  scaling: 'standard',
};

const HEADER = 'age,smoker,admitted,vip,outcome,note';

/** A message's text as a pattern that matches it literally (the start of a longer message too). */
function literal(text: string): RegExp {
  return new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
}

function table(rows: string[], file = 'site.csv') {
  return parseCsvTable([HEADER, ...rows].join('\n'), file);
}

describe('reading a table against the run columns', () => {
  test.each([
    ['a non-numeric cell in a numeric column', '4x,yes,2024-01-02,true,ill,', 'site.csv line 2, column "age": "4x" is not a number'],
    ['a missing cell where the policy is error', '40,yes,,true,ill,', 'site.csv line 2, column "admitted": the value is missing ("")'],
    ['a date that is not ISO', '40,yes,02/01/2024,true,ill,', 'site.csv line 2, column "admitted": "02/01/2024" is not a date'],
    ['a boolean that is not one', '40,yes,2024-01-02,maybe,ill,', 'site.csv line 2, column "vip": "maybe" is not a boolean'],
    ['a missing label', '40,yes,2024-01-02,true,,', 'site.csv line 2, column "outcome": the label is missing'],
  ])('%s is an error naming the line and column', (_, row, message) => {
    expectFtlError(() => typeTable(table([row]), SPEC), ErrorCode.Dataset, literal(message));
  });

  test('a missing and an extra column are named in one line', () => {
    const raw = parseCsvTable('age,smoker,admitted,outcome,note,ward\n40,yes,2024-01-02,ill,,3\n', 'b.csv');
    expectFtlError(
      () => typeTable(raw, SPEC),
      ErrorCode.Dataset,
      literal(
        `b.csv: its columns differ from the run's table: missing "vip"; extra "ward"; give the file exactly the run's columns (table.columns of the run config), in any order`,
      ),
    );
  });

  test('a ragged row names its line before any column is read', () => {
    expectFtlError(
      () => table(['40,yes,2024-01-02,true,ill,', '41,no']),
      ErrorCode.Dataset,
      literal('site.csv line 3 has 2 cells but the header has 6 columns'),
    );
  });

  test('columns may come in any order and ignored ones are never read', () => {
    const raw = parseCsvTable('outcome,note,vip,admitted,smoker,age\nill,whatever,yes,1970-01-11,no,40\n', 'c.csv');
    const t = typeTable(raw, SPEC);
    expect(t.labels).toEqual(['ill']);
    expect(Array.from(t.features[0] as Float64Array)).toEqual([40]);
    expect(t.features[1]).toEqual(['no']);
    expect(Array.from(t.features[2] as Float64Array)).toEqual([10]); // days since 1970-01-01
    expect(Array.from(t.features[3] as Float64Array)).toEqual([1]);
  });
});

describe('summaries, the encoding and encoded rows', () => {
  const rows = [
    '40,yes,2024-01-02,true,ill,',
    '50,yes,2024-01-03,false,well,',
    ',no,2024-01-04,no,well,', // age missing: imputed
    '60,no,2024-01-05,yes,ill,',
    '70,pipe,2024-01-06,no,well,', // "pipe" held by one row: below k = 2, never named
    '30,,2024-01-07,no,ill,', // smoker missing: its "missing" slot
  ];
  const typed = typeTable(table(rows), SPEC);

  test('a site names only categories at least k of its rows hold, and never counts', () => {
    const summary = summarizeTable(typed, SPEC);
    expect(summary.columns[1]).toEqual({ name: 'smoker', categories: ['no', 'yes'], mode: 'no' });
    expect(summary.columns[0]).toMatchObject({ name: 'age', count: 5, sum: 250 });
    expect(tableSummaryProblem(summary, SPEC)).toBeUndefined();
  });

  test("a summary or an encoding whose columns are not the run's feature columns, in order, is refused naming the first that differs", () => {
    const summary = summarizeTable(typed, SPEC);
    expect(tableSummaryProblem({ columns: summary.columns.slice(1) }, SPEC)).toBe(
      "the table summary has 3 columns but the run's table has 4 feature columns",
    );
    const swapped = [summary.columns[1]!, summary.columns[0]!, ...summary.columns.slice(2)];
    expect(tableSummaryProblem({ columns: swapped }, SPEC)).toBe('table summary column 1 is "smoker" but the run\'s feature column 1 is "age"');
    const encoding = combineTableSummaries([{ summary, rows: typed.labels.length }], SPEC);
    expect(tableEncodingProblem(encoding, SPEC)).toBeUndefined();
    const renamed = { columns: encoding.columns.map((c, i) => (i === 2 ? { ...c, name: 'admission' } : c)) };
    expect(tableEncodingProblem(renamed, SPEC)).toBe('table encoding column 3 is "admission" but the run\'s feature column 3 is "admitted"');
  });

  test('the encoding pools the sites as if their rows were one table, and any order of sites gives the same', () => {
    const a = typeTable(table(rows.slice(0, 3)), SPEC);
    const b = typeTable(table(rows.slice(3)), SPEC);
    const parts = [a, b].map((t) => ({ summary: summarizeTable(t, SPEC), rows: t.labels.length }));
    const encoding = combineTableSummaries(parts, SPEC);
    expect(combineTableSummaries([...parts].reverse(), SPEC)).toEqual(encoding);
    const ages = [40, 50, 60, 70, 30];
    const mean = ages.reduce((x, y) => x + y, 0) / ages.length;
    const std = Math.sqrt(ages.reduce((x, y) => x + (y - mean) ** 2, 0) / ages.length);
    expect(encoding.columns[0]!.fill).toBeCloseTo(mean, 10);
    expect(encoding.columns[0]!.shift).toBeCloseTo(mean, 10);
    expect(encoding.columns[0]!.scale).toBeCloseTo(std, 10);
    // Site a names "yes" only (2 rows), site b nothing (one row each): the union.
    expect(encoding.columns[1]!.vocabulary).toEqual(['yes']);
  });

  test('an unseen category takes the "other" slot, a missing one the "missing" slot, a missing number the mean', () => {
    const encoding = combineTableSummaries([{ summary: summarizeTable(typed, SPEC), rows: typed.labels.length }], SPEC);
    const ds = encodeTable(typed, SPEC, encoding, ['ill', 'well']);
    const width = encodedWidth(SPEC);
    expect(width).toBe(1 + (2 + 1 + 1) + 1 + 1);
    expect(encodedFeatureNames(SPEC, encoding)).toEqual(['age', 'smoker=no', 'smoker=yes', 'smoker=(other)', 'smoker=(missing)', 'admitted', 'vip']);
    const row = (r: number) => Array.from(ds.images.subarray(r * width, (r + 1) * width));
    expect(row(4).slice(1, 5)).toEqual([0, 0, 1, 0]); // "pipe": other
    expect(row(5).slice(1, 5)).toEqual([0, 0, 0, 1]); // missing
    expect(row(2)[0]).toBeCloseTo(0, 6); // the mean, standardised
    expect(Array.from(ds.labels)).toEqual([0, 1, 1, 0, 1, 0]);
    expect([ds.height, ds.width, ds.channels]).toEqual([1, width, 1]);
  });

  test('a label outside the run classes is an error naming the line', () => {
    const encoding = combineTableSummaries([{ summary: summarizeTable(typed, SPEC), rows: 6 }], SPEC);
    expectFtlError(() => encodeTable(typed, SPEC, encoding, ['ill']), ErrorCode.Dataset, literal('site.csv line 3, column "outcome": label "well"'));
  });

  test('a summary that contradicts itself is refused', () => {
    const summary = summarizeTable(typed, SPEC);
    const bad = { columns: summary.columns.map((c, i) => (i === 0 ? { ...c, min: 100 } : c)) };
    expect(tableSummaryProblem(bad, SPEC)).toMatch(/contradict/);
  });
});

describe('CSV tables (properties)', () => {
  // Cells of plain text, never blank (a blank line is skipped, as a table of no cells has no row).
  const cell = fc.stringMatching(/^[a-z0-9][a-z0-9 .-]{0,5}$/);
  test('any grid of plain cells reads back as written, trimmed, with its line numbers', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.array(cell, { minLength: 5, maxLength: 5 }), { minLength: 1, maxLength: 20 }),
        (cols, grid) => {
          const rows = grid.map((r) => r.slice(0, cols));
          const header = Array.from({ length: cols }, (_, i) => `c${i}`);
          const t = parseCsvTable([header.join(','), ...rows.map((r) => r.join(','))].join('\r\n'), 'p.csv');
          expect(t.rows).toEqual(rows.map((r) => r.map((c) => c.trim())));
          expect(t.lines).toEqual(rows.map((_, i) => i + 2));
        },
      ),
    );
  });

  test('a split of any table keeps every row once', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 60 }), fc.integer({ min: 0, max: 1000 }), (n, seed) => {
        const rows = Array.from({ length: n }, (_, i) => `${i},yes,2024-01-02,true,${i % 2 ? 'ill' : 'well'},`);
        const { train, val } = splitTypedTable(typeTable(table(rows), SPEC), { seed });
        const ages = [...(train.features[0] as Float64Array), ...(val.features[0] as Float64Array)].sort((a, b) => a - b);
        expect(ages).toEqual(Array.from({ length: n }, (_, i) => i));
        expect(val.labels.length).toBeGreaterThanOrEqual(1);
      }),
    );
  });

  test('pooled tables reorder columns to the first', () => {
    const a = parseCsvTable('x,y\n1,2\n', 'a.csv');
    const b = parseCsvTable('y,x\n4,3\n', 'b.csv');
    expect(concatRawTables([a, b]).rows).toEqual([
      ['1', '2'],
      ['3', '4'],
    ]);
  });
});

describe('what a --csv file holds', () => {
  test.each([
    [['label', ...Array.from({ length: 784 }, (_, i) => `pixel${i}`)], 'image'],
    [['label', ...Array.from({ length: 12 }, (_, i) => `${i}`)], 'image'], // 2×2×3
    [['label', ...Array.from({ length: 30 }, (_, i) => `p${i}`)], 'table'], // 30 is no image
    [['age', 'smoker', 'label'], 'table'],
  ])('%#: %s', (header, kind) => {
    expect(inferCsvKind(header as string[])).toBe(kind);
  });
});
