import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { ErrorCode, FtlError } from '../errors.js';
import type { Logger } from '../log.js';
import { imageSize } from './dataset.js';
import { decodeImage, IMAGE_EXTENSIONS, isImageFile } from './image-codec.js';
import { DEFAULT_IMAGE_SHAPE, type ImageShape } from './image-shape.js';
import { compareLabels, type LoadedDataset } from './label-map.js';
import { fitImage } from './resize.js';

const SUPPORTED = `PNG and JPEG files (${IMAGE_EXTENSIONS.join(', ')})`;

// Names starting with a dot (.DS_Store, .git, editor files) are not data and are skipped everywhere.
const hidden = (name: string) => name.startsWith('.');

function readDir(dir: string, what: string): string[] {
  try {
    return readdirSync(dir)
      .filter((n) => !hidden(n))
      .sort(compareLabels);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'ENOTDIR' ? 'is not a folder' : `cannot be read (${(err as Error).message})`;
    throw new FtlError(ErrorCode.Dataset, `${what} ${dir} ${why}; give a folder with one sub-folder of PNG or JPEG images per class`, { cause: err });
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch (err) {
    throw new FtlError(ErrorCode.Dataset, `cannot read ${path} (${(err as Error).message}); fix its permissions or remove it`, { cause: err });
  }
}

// Every image file below a class folder, at any depth, in a stable order; anything else is an error.
function classFiles(dir: string): string[] {
  const files: string[] = [];
  for (const name of readDir(dir, 'class folder')) {
    const path = join(dir, name);
    if (isDirectory(path)) files.push(...classFiles(path));
    else if (isImageFile(name)) files.push(path);
    else {
      const ext = extname(name);
      throw new FtlError(
        ErrorCode.Dataset,
        `${path}: unsupported file type ${ext ? `"${ext}"` : '(no extension)'}; the image folder takes ${SUPPORTED}: convert it or move it out of the folder`,
      );
    }
  }
  return files;
}

/**
 * Reads an image folder: one sub-folder per class, named by its label, holding PNG or JPEG files (at any
 * depth below it). Each image is decoded and brought to `shape` (bilinear resize, grayscale ↔ RGB);
 * classes are the sub-folder names in {@link compareLabels} order. Files and folders whose names start
 * with a dot are skipped; other files at the top level are ignored with a warning.
 *
 * @throws FtlError(DATASET) naming the folder or file: a missing or empty folder, a class folder with no
 *   images, an unsupported file type, an image directly in the top folder, a corrupt image.
 * @example
 * // xray/normal/*.png, xray/pneumonia/*.jpg
 * const { dataset } = loadImageFolder('xray', { shape: { height: 28, width: 28, channels: 1 } });
 */
export function loadImageFolder(dir: string, options: { shape?: ImageShape; log?: Logger } = {}): LoadedDataset {
  const shape = options.shape ?? DEFAULT_IMAGE_SHAPE;
  const classes: string[] = [];
  const perClass: string[][] = [];
  for (const name of readDir(dir, 'image folder')) {
    const path = join(dir, name);
    if (isDirectory(path)) {
      const files = classFiles(path);
      if (files.length === 0) {
        throw new FtlError(ErrorCode.Dataset, `class folder ${path} has no images; add ${SUPPORTED} or remove the folder`);
      }
      classes.push(name);
      perClass.push(files);
    } else if (isImageFile(name)) {
      throw new FtlError(
        ErrorCode.Dataset,
        `${path} is directly in the image folder, so it has no label; move it into its class's sub-folder (${join(dir, '<label>', name)})`,
      );
    } else {
      options.log?.warn('image-folder-file-ignored', { file: path });
    }
  }
  if (classes.length === 0) {
    throw new FtlError(
      ErrorCode.Dataset,
      `image folder ${dir} has no class sub-folders; put the images in one sub-folder per class, named by its label (${join(dir, '<label>', 'image.png')})`,
    );
  }
  const n = perClass.reduce((s, f) => s + f.length, 0);
  const size = imageSize(shape);
  const images = new Float32Array(n * size);
  const labels = new Int32Array(n);
  let i = 0;
  perClass.forEach((files, c) => {
    for (const file of files) {
      let bytes: Uint8Array;
      try {
        bytes = readFileSync(file);
      } catch (err) {
        throw new FtlError(ErrorCode.Dataset, `cannot read ${file} (${(err as Error).message}); fix its permissions or remove it`, { cause: err });
      }
      images.set(fitImage(decodeImage(bytes, file), shape), i * size);
      labels[i++] = c;
    }
  });
  const labelOrigins = Object.fromEntries(classes.map((c) => [c, `folder ${join(dir, c)}`]));
  return { dataset: { images, labels, n, ...shape, classes }, labelOrigins };
}
