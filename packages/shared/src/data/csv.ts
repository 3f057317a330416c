import { readFileSync } from 'node:fs';
import { ErrorCode, FtlError } from '../errors.js';
import { imageSize } from './dataset.js';
import { DEFAULT_IMAGE_SHAPE, formatImageShape, type ImageShape } from './image-shape.js';
import { compareLabels, type LoadedDataset } from './label-map.js';
import { fitDataset } from './resize.js';

/** Options of {@link parseCsvDataset} and {@link loadCsvFile}. */
export interface CsvOptions {
  /** Name of the label column in the header (default `label`). */
  labelColumn?: string;
  /** The shape every image is brought to (default 28×28×1). */
  shape?: ImageShape;
}

function fail(message: string): never {
  throw new FtlError(ErrorCode.Dataset, message);
}

/**
 * The comma-separated fields of one CSV line; `where` names the line in errors. A field may be
 * double-quoted ("a,b", "say ""hi"""). Quoted line breaks are not supported: one line is one row.
 *
 * @throws FtlError(DATASET) for a quoted field that is never closed.
 */
export function splitCsvFields(line: string, where: string): string[] {
  if (!line.includes('"')) return line.split(',');
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    let field = '';
    if (line[i] === '"') {
      i++;
      for (;;) {
        const q = line.indexOf('"', i);
        if (q < 0) fail(`${where}: a quoted field has no closing quote; close it or remove the quote`);
        field += line.slice(i, q);
        if (line[q + 1] === '"') {
          field += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      const comma = line.indexOf(',', i);
      field += line.slice(i, comma < 0 ? line.length : comma);
      i = comma < 0 ? line.length + 1 : comma + 1;
    } else {
      const comma = line.indexOf(',', i);
      field = line.slice(i, comma < 0 ? line.length : comma);
      i = comma < 0 ? line.length + 1 : comma + 1;
    }
    fields.push(field);
    if (i > line.length) return fields;
  }
}

function isSquare(n: number): number | undefined {
  const s = Math.round(Math.sqrt(n));
  return s > 0 && s * s === n ? s : undefined;
}

// How many values a row has decides the images' shape before they are brought to `target`.
function sourceShape(values: number, target: ImageShape, file: string): ImageShape {
  if (values === imageSize(target)) return target;
  const gray = isSquare(values);
  if (gray) return { height: gray, width: gray, channels: 1 };
  const rgb = values % 3 === 0 ? isSquare(values / 3) : undefined;
  if (rgb) return { height: rgb, width: rgb, channels: 3 };
  return fail(
    `${file}: rows have ${values} pixel columns, which is not an image: use ${imageSize(target)} (${formatImageShape(target)}), ` +
      'a square grayscale image (side² columns) or a square RGB one (side²×3 columns, the 3 channels of a pixel side by side)',
  );
}

/**
 * Reads a labelled image table: a header line naming the columns, then one image per line, one column
 * the label (any text; trimmed) and every other column a pixel value in row-major order
 * (`label,pixel0,…,pixel783` as in Kaggle's MNIST CSV). Rows are reshaped to the image they describe —
 * the target shape if the count matches, else a square grayscale (side² values) or RGB (side²×3) image —
 * and then resized/converted to `shape`. Blank lines are skipped; a UTF-8 BOM and CRLF line ends are fine.
 *
 * Value scale, decided for the whole file: if every value is an integer and some exceed 1, the file holds
 * 8-bit pixels, which must be 0–255 and are divided by 255; otherwise every value must already be in
 * [0, 1] and is kept as it is.
 *
 * @param file names the source in errors ("data.csv line 12").
 * @throws FtlError(DATASET) for a missing label column, a row with the wrong number of columns, an
 *   empty label, a value that is not a number or out of range — naming the file, line and column.
 * @example
 * parseCsvDataset('label,p0,p1,p2,p3\n7,0,255,255,0\n', 'tiny.csv', { shape: { height: 2, width: 2, channels: 1 } });
 */
export function parseCsvDataset(text: string, file: string, options: CsvOptions = {}): LoadedDataset {
  const labelColumn = options.labelColumn ?? 'label';
  const target = options.shape ?? DEFAULT_IMAGE_SHAPE;
  const lines = (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text).split(/\r?\n/);
  const headerAt = lines.findIndex((l) => l.trim() !== '');
  if (headerAt < 0) fail(`${file} is empty; it needs a header line (e.g. label,pixel0,pixel1,…) and one line per image`);
  const header = splitCsvFields(lines[headerAt]!, `${file} line ${headerAt + 1}`).map((h) => h.trim());
  const li = header.indexOf(labelColumn);
  if (li < 0) {
    const shown = header.length > 6 ? [...header.slice(0, 5), '…'] : header;
    const headerless = header.every((h) => h !== '' && Number.isFinite(Number(h)));
    fail(
      `${file} has no column "${labelColumn}" (line ${headerAt + 1} names: ${shown.join(', ')}); ` +
        (headerless
          ? 'the first line must be a header naming the columns, e.g. label,pixel0,pixel1,…'
          : 'name the label column with --label-column NAME'),
    );
  }
  const columns = header.length;
  const perRow = columns - 1;
  if (perRow === 0) fail(`${file} has only the label column "${labelColumn}"; add one column per pixel value`);
  const rows: number[] = [];
  for (let l = headerAt + 1; l < lines.length; l++) if (lines[l]!.trim() !== '') rows.push(l);
  if (rows.length === 0) fail(`${file} has a header but no data lines; add one line per image`);

  const raw = new Float32Array(rows.length * perRow);
  const labelText: string[] = new Array(rows.length);
  let integers = true;
  let max = 0;
  // The first value outside [0, 1] and outside [0, 255], and the first fractional one, for error messages.
  let over1: string | undefined;
  let over255: string | undefined;
  let fractional: string | undefined;
  rows.forEach((l, r) => {
    const where = `${file} line ${l + 1}`;
    const fields = splitCsvFields(lines[l]!, where);
    if (fields.length !== columns) {
      fail(
        `${where} has ${fields.length} columns but the header has ${columns}; every line needs the label and ${perRow} values ` +
          '(look for a missing or extra comma)',
      );
    }
    const label = fields[li]!.trim();
    if (label === '') fail(`${where}: the label column "${labelColumn}" is empty; give every image its label`);
    labelText[r] = label;
    let k = r * perRow;
    for (let c = 0; c < columns; c++) {
      if (c === li) continue;
      const s = fields[c]!;
      const v = Number(s);
      if (!Number.isFinite(v) || s.trim() === '') {
        fail(
          `${where}, column "${header[c]}": ${JSON.stringify(s.trim())} is not a number; pixel columns hold numbers (0–255 integers or values in [0, 1])`,
        );
      }
      if (v < 0) fail(`${where}, column "${header[c]}": ${s.trim()} is negative; pixel values are 0–255 integers or values in [0, 1]`);
      if (v > max) max = v;
      if (v > 1) over1 ??= `${where}, column "${header[c]}": ${s.trim()}`;
      if (v > 255) over255 ??= `${where}, column "${header[c]}": ${s.trim()}`;
      if (integers && !Number.isInteger(v)) {
        integers = false;
        fractional = `${where}, column "${header[c]}": ${s.trim()}`;
      }
      raw[k++] = v;
    }
  });
  const eightBit = integers && max > 1;
  if (eightBit && over255) fail(`${over255} is above 255; 8-bit pixel values are integers 0–255`);
  if (!eightBit && over1) {
    fail(`${over1} is above 1 but the file also has fractional values (${fractional}); use 0–255 integers throughout or values in [0, 1] throughout`);
  }
  if (eightBit) for (let i = 0; i < raw.length; i++) raw[i]! /= 255;

  const classes = [...new Set(labelText)].sort(compareLabels);
  const index = new Map(classes.map((c, i) => [c, i]));
  const labelOrigins: Record<string, string> = {};
  labelText.forEach((t, r) => (labelOrigins[t] ??= `${file} line ${rows[r]! + 1}`));
  const shape = sourceShape(perRow, target, file);
  const dataset = fitDataset({ images: raw, labels: Int32Array.from(labelText, (t) => index.get(t)!), n: rows.length, ...shape, classes }, target);
  return { dataset, labelOrigins };
}

/**
 * Reads a CSV file of labelled images ({@link parseCsvDataset}).
 *
 * @throws FtlError(DATASET) when the file cannot be read, or for any problem {@link parseCsvDataset} finds.
 * @example
 * const { dataset } = loadCsvFile('train.csv'); // Kaggle MNIST: label,pixel0,…,pixel783
 */
export function loadCsvFile(file: string, options: CsvOptions = {}): LoadedDataset {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'does not exist'
        : code === 'EISDIR'
          ? 'is a folder (use --data-dir for image folders)'
          : `cannot be read (${(err as Error).message})`;
    throw new FtlError(ErrorCode.Dataset, `CSV file ${file} ${why}`, { cause: err });
  }
  return parseCsvDataset(text, file, options);
}
