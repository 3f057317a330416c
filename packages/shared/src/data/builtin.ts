import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { ErrorCode, FtlError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ImageDataset } from './dataset.js';

/** The data sets that ship in npm packages. */
export const BUILTIN_DATASETS = ['mnist', 'fashion-mnist'] as const;
/** One of {@link BUILTIN_DATASETS}. */
export type BuiltinDatasetName = (typeof BUILTIN_DATASETS)[number];

const FASHION_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
const SIDE = 28;
const PIXELS = SIDE * SIDE;

/** The optional package whose dependencies are the built-in datasets' npm packages. */
export const DATASETS_PACKAGE = '@ftl/datasets';

const require = createRequire(import.meta.url);

/**
 * The folder of a dataset's npm package, found through {@link DATASETS_PACKAGE}. Resolved only when a
 * built-in dataset is asked for, so a site that trains on its own files never needs the package; and
 * resolved from it rather than from here, so its dependencies are found wherever npm placed them.
 */
function packageDir(pkg: string): string {
  let datasets: NodeJS.Require;
  try {
    datasets = createRequire(require.resolve(`${DATASETS_PACKAGE}/package.json`));
  } catch (err) {
    throw new FtlError(
      ErrorCode.Dataset,
      `the built-in datasets are in the optional package ${DATASETS_PACKAGE}, which is not installed; ` +
        `install it beside ftl (npm install ${DATASETS_PACKAGE}, or its packed tarball) or train on your own data with --data-dir or --csv`,
      { cause: err },
    );
  }
  try {
    return dirname(datasets.resolve(`${pkg}/package.json`));
  } catch (err) {
    throw new FtlError(
      ErrorCode.Dataset,
      `${DATASETS_PACKAGE} is installed without its dependency "${pkg}"; reinstall it (npm install ${DATASETS_PACKAGE})`,
      {
        cause: err,
      },
    );
  }
}

/**
 * Loads the `mnist` package (10,000 digits, values already in [0, 1], one flat array per class).
 */
function loadMnist(): ImageDataset {
  const dir = join(packageDir('mnist'), 'src', 'digits');
  const perClass = DIGITS.map((_, c) => (JSON.parse(readFileSync(join(dir, `${c}.json`), 'utf8')) as { data: number[] }).data);
  const n = perClass.reduce((s, d) => s + Math.floor(d.length / PIXELS), 0);
  const images = new Float32Array(n * PIXELS);
  const labels = new Int32Array(n);
  let i = 0;
  perClass.forEach((data, c) => {
    const count = Math.floor(data.length / PIXELS);
    images.set(data.slice(0, count * PIXELS), i * PIXELS);
    labels.fill(c, i, i + count);
    i += count;
  });
  return { images, labels, n, height: SIDE, width: SIDE, channels: 1, classes: DIGITS };
}

/**
 * Loads the `fashion-mnist` package (70,000 images as rows of 784 values 0–255). Rows that are not
 * 784 values long (class 0 has two empty ones) are skipped with a warning.
 */
function loadFashionMnist(log?: Logger): ImageDataset {
  const dir = join(packageDir('fashion-mnist'), 'src', 'clothes');
  const perClass = FASHION_CLASSES.map((_, c) => (JSON.parse(readFileSync(join(dir, `${c}.json`), 'utf8')) as { data: unknown[] }).data);
  const valid = perClass.map(
    (rows, c) =>
      rows.filter((row, r) => {
        const ok = Array.isArray(row) && row.length === PIXELS;
        if (!ok) log?.warn('dataset-row-skipped', { dataset: 'fashion-mnist', class: c, row: r, length: Array.isArray(row) ? row.length : -1 });
        return ok;
      }) as number[][],
  );
  const n = valid.reduce((s, rows) => s + rows.length, 0);
  const images = new Float32Array(n * PIXELS);
  const labels = new Int32Array(n);
  let i = 0;
  valid.forEach((rows, c) => {
    for (const row of rows) {
      const base = i * PIXELS;
      for (let p = 0; p < PIXELS; p++) images[base + p] = row[p]! / 255;
      labels[i++] = c;
    }
  });
  return { images, labels, n, height: SIDE, width: SIDE, channels: 1, classes: FASHION_CLASSES };
}

/**
 * Loads a built-in dataset from its npm package.
 *
 * @example
 * const digits = loadBuiltinDataset('mnist'); // 10,000 images, 28×28×1
 */
export function loadBuiltinDataset(name: BuiltinDatasetName, log?: Logger): ImageDataset {
  if (name === 'mnist') return loadMnist();
  if (name === 'fashion-mnist') return loadFashionMnist(log);
  throw new FtlError(ErrorCode.Dataset, `unknown dataset "${String(name)}"; use one of ${BUILTIN_DATASETS.join(', ')}`);
}
