import { ErrorCode, FtlError } from '../errors.js';

/**
 * An in-memory labelled image set: `images` holds `n` images of `height × width × channels` floats
 * in [0, 1], row-major (NHWC), and `labels` their class indices into `classes`.
 */
export interface ImageDataset {
  readonly images: Float32Array;
  readonly labels: Int32Array;
  readonly n: number;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  readonly classes: readonly string[];
}

/** Values per image. */
export function imageSize(ds: Pick<ImageDataset, 'height' | 'width' | 'channels'>): number {
  return ds.height * ds.width * ds.channels;
}

/** The images and labels at `indices`, in that order, as a new dataset. */
export function subset(ds: ImageDataset, indices: ArrayLike<number>): ImageDataset {
  const size = imageSize(ds);
  const images = new Float32Array(indices.length * size);
  const labels = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const src = indices[i]!;
    images.set(ds.images.subarray(src * size, (src + 1) * size), i * size);
    labels[i] = ds.labels[src]!;
  }
  return { ...ds, images, labels, n: indices.length };
}

/**
 * Several datasets of the same image shape and classes as one, in order.
 *
 * @example
 * concatDatasets(shards.map((s) => s.train)); // the pooled training data of every site
 */
export function concatDatasets(parts: readonly ImageDataset[]): ImageDataset {
  const first = parts[0];
  if (!first) throw new FtlError(ErrorCode.Dataset, 'no datasets to concatenate');
  const size = imageSize(first);
  const n = parts.reduce((a, p) => a + p.n, 0);
  const images = new Float32Array(n * size);
  const labels = new Int32Array(n);
  let at = 0;
  for (const p of parts) {
    if (imageSize(p) !== size || p.classes.join('\u0000') !== first.classes.join('\u0000')) {
      throw new FtlError(ErrorCode.Dataset, 'datasets to concatenate must share their image shape and classes');
    }
    images.set(p.images.subarray(0, p.n * size), at * size);
    labels.set(p.labels.subarray(0, p.n), at);
    at += p.n;
  }
  return { ...first, images, labels, n };
}

/**
 * The images of some classes only, relabelled 0…k−1 in the order given, with those classes' names: a
 * target task made of part of a dataset (e.g. Fashion-MNIST classes 5–9 for a backbone pretrained on 0–4).
 *
 * @example
 * keepClasses(fashion, [5, 6, 7, 8, 9]).classes; // ['Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']
 */
export function keepClasses(ds: ImageDataset, classes: readonly number[]): ImageDataset {
  const label = new Map(classes.map((c, i) => [c, i]));
  const indices: number[] = [];
  for (let i = 0; i < ds.n; i++) if (label.has(ds.labels[i]!)) indices.push(i);
  const kept = subset(ds, indices);
  const labels = kept.labels.map((l) => label.get(l)!);
  return { ...kept, labels, classes: classes.map((c) => ds.classes[c]!) };
}
