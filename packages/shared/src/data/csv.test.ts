import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { ErrorCode } from '../errors.js';
import { expectFtlError } from '../../test-support/expect-ftl-error.js';
import { loadBuiltinDataset } from './builtin.js';
import { loadCsvFile, parseCsvDataset } from './csv.js';
import { parseImageShape } from './image-shape.js';

const root = mkdtempSync(join(tmpdir(), 'ftl-csv-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const mnist = loadBuiltinDataset('mnist');
const header = ['label', ...Array.from({ length: 784 }, (_, p) => `pixel${p}`)].join(',');
// Kaggle's MNIST layout: label, then 784 integers 0–255.
const kaggleRow = (i: number) =>
  [mnist.classes[mnist.labels[i]!], ...Array.from(mnist.images.subarray(i * 784, (i + 1) * 784), (v) => Math.round(v * 255))].join(',');
const tiny = parseImageShape('2x2x1');

describe('CSV loader', () => {
  test('a Kaggle-style MNIST CSV file: labels by value, 0–255 integers scaled to [0, 1]', () => {
    const picks = [0, 1500, 3000, 4500, 9999];
    const file = join(root, 'train.csv');
    writeFileSync(file, `${[header, ...picks.map(kaggleRow)].join('\n')}\n`);
    const { dataset: ds, labelOrigins } = loadCsvFile(file);
    expect([ds.n, ds.height, ds.width, ds.channels]).toEqual([5, 28, 28, 1]);
    const names = picks.map((i) => mnist.classes[mnist.labels[i]!]!);
    expect(ds.classes).toEqual([...new Set(names)].sort((a, b) => Number(a) - Number(b)));
    expect(Array.from(ds.labels, (l) => ds.classes[l])).toEqual(names);
    expect(labelOrigins[names[0]!]).toBe(`${file} line 2`);
    picks.forEach((src, r) => {
      for (let p = 0; p < 784; p++) expect(Math.abs(ds.images[r * 784 + p]! - mnist.images[src * 784 + p]!)).toBeLessThanOrEqual(0.5 / 255 + 1e-6);
    });
  });

  test('values already in [0, 1] are kept; the label column may be anywhere and named; quotes, CRLF and a BOM are fine', () => {
    const text = '\uFEFFa,b,"diagnosis",c,d\r\n0,0.5,"pneumonia, mild",1,0.25\r\n\r\n1,1,normal,1,1\r\n';
    const ds = parseCsvDataset(text, 'x.csv', { labelColumn: 'diagnosis', shape: tiny }).dataset;
    expect(ds.classes).toEqual(['normal', 'pneumonia, mild']);
    expect(Array.from(ds.labels)).toEqual([1, 0]);
    expect(Array.from(ds.images)).toEqual([0, 0.5, 1, 0.25, 1, 1, 1, 1]);
  });

  test('a file of 0/1 integers is read as [0, 1] values, not as 8-bit', () => {
    expect(Array.from(parseCsvDataset('label,a,b,c,d\nx,0,1,1,0\n', 'bits.csv', { shape: tiny }).dataset.images)).toEqual([0, 1, 1, 0]);
  });

  test('rows of another square size are resized; side²×3 columns are RGB', () => {
    // 4×4 grey → 2×2: each output averages (with a triangle filter) a 2×2 block region.
    const grey = parseCsvDataset(
      `label,${Array.from({ length: 16 }, (_, i) => `p${i}`).join(',')}\nk,${new Array(16).fill(255).join(',')}\n`,
      'g.csv',
      { shape: tiny },
    ).dataset;
    expect(Array.from(grey.images)).toEqual([1, 1, 1, 1]);
    // 2×2×3 → 2×2×1: the luma of each pixel.
    const rgb = parseCsvDataset(`label,${Array.from({ length: 12 }, (_, i) => `p${i}`).join(',')}\nk,255,0,0,0,255,0,0,0,255,0,0,0\n`, 'c.csv', {
      shape: tiny,
    }).dataset;
    [0.299, 0.587, 0.114, 0].forEach((v, i) => expect(rgb.images[i]).toBeCloseTo(v, 5));
  });

  describe('errors name the file, line and column and say how to fix them', () => {
    test.each<[string, string, string | undefined, RegExp]>([
      [
        'a missing label column',
        'kind,a,b,c,d\nx,0,0,0,0\n',
        undefined,
        /^t\.csv has no column "label" \(line 1 names: kind, a, b, c, d\); name the label column with --label-column NAME$/,
      ],
      [
        'a missing named label column',
        'label,a,b,c,d\nx,0,0,0,0\n',
        'y',
        /^t\.csv has no column "y" \(line 1 names: label, a, b, c, d\); name the label column/,
      ],
      [
        'no header line',
        '7,0,0,0,0\n3,0,0,0,0\n',
        undefined,
        /^t\.csv has no column "label" \(line 1 names: 7, 0, 0, 0, 0\); the first line must be a header naming the columns, e\.g\. label,pixel0,pixel1,…$/,
      ],
      [
        'a short row',
        'label,a,b,c,d\nx,0,0,0,0\ny,0,0,0\n',
        undefined,
        /^t\.csv line 3 has 4 columns but the header has 5; every line needs the label and 4 values \(look for a missing or extra comma\)$/,
      ],
      ['a long row', 'label,a,b,c,d\n\nx,0,0,0,0,0\n', undefined, /^t\.csv line 3 has 6 columns but the header has 5;/],
      [
        'a word among the pixels',
        'label,a,b,c,d\nx,0,0,0,0\nx,0,zero,0,0\n',
        undefined,
        /^t\.csv line 3, column "b": "zero" is not a number; pixel columns hold numbers \(0–255 integers or values in \[0, 1\]\)$/,
      ],
      ['an empty pixel value', 'label,a,b,c,d\nx,0,0,,0\n', undefined, /^t\.csv line 2, column "c": "" is not a number;/],
      ['an empty label', 'label,a,b,c,d\n ,0,0,0,0\n', undefined, /^t\.csv line 2: the label column "label" is empty; give every image its label$/],
      ['a negative value', 'label,a,b,c,d\nx,0,-3,0,0\n', undefined, /^t\.csv line 2, column "b": -3 is negative;/],
      [
        'a value above 255',
        'label,a,b,c,d\nx,0,3,0,0\nx,0,256,0,0\n',
        undefined,
        /^t\.csv line 3, column "b": 256 is above 255; 8-bit pixel values are integers 0–255$/,
      ],
      [
        'fractions mixed with values above 1',
        'label,a,b,c,d\nx,0,0.5,0,0\nx,0,200,0,0\n',
        undefined,
        /^t\.csv line 3, column "b": 200 is above 1 but the file also has fractional values \(t\.csv line 2, column "b": 0\.5\); use 0–255 integers throughout or values in \[0, 1\] throughout$/,
      ],
      ['an unclosed quote', 'label,a,b,c,d\n"x,0,0,0,0\n', undefined, /^t\.csv line 2: a quoted field has no closing quote/],
      ['an empty file', '\n\n', undefined, /^t\.csv is empty; it needs a header line/],
      ['a header with no rows', 'label,a,b,c,d\n', undefined, /^t\.csv has a header but no data lines; add one line per image$/],
      ['only a label column', 'label\nx\n', undefined, /^t\.csv has only the label column "label"; add one column per pixel value$/],
      [
        'a pixel count that is no image',
        'label,a,b,c,d,e\nx,0,0,0,0,0\n',
        undefined,
        /^t\.csv: rows have 5 pixel columns, which is not an image: use 4 \(2x2x1\), a square grayscale image/,
      ],
    ])('%s', (_, text, labelColumn, message) => {
      expectFtlError(() => parseCsvDataset(text, 't.csv', { shape: tiny, ...(labelColumn ? { labelColumn } : {}) }), ErrorCode.Dataset, message);
    });

    test('a file that does not exist', () => {
      expectFtlError(() => loadCsvFile(join(root, 'missing.csv')), ErrorCode.Dataset, /^CSV file .*missing\.csv does not exist$/);
    });

    test('a folder given as the CSV file', () => {
      expectFtlError(() => loadCsvFile(root), ErrorCode.Dataset, /^CSV file .* is a folder \(use --data-dir for image folders\)$/);
    });
  });
});
