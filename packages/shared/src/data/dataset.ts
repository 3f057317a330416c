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
