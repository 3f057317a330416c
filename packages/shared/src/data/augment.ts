import { ErrorCode, FtlError } from '../errors.js';
import { createRng } from '../random.js';
import { imageSize, type ImageDataset } from './dataset.js';

/** Random training-time transformations; evaluation never uses them. */
export interface AugmentOptions {
  /** Largest shift, as a fraction of the side (0.1 = up to 10% up/down/left/right). */
  shift?: number;
  /** Mirror left–right with probability 0.5 (wrong for digits and text; right for most photos and scans). */
  flip?: boolean;
  /** Largest rotation in degrees, either way. */
  rotation?: number;
}

/**
 * One randomly transformed copy of every image (shift, flip, rotation about the centre; bilinear
 * sampling, zero outside), seeded, so the same seed gives the same copies on every run. Labels and shape
 * are kept.
 *
 * @example
 * const extra = augmentDataset(shard.train, { shift: 0.1, rotation: 10 }, seed);
 */
export function augmentDataset(ds: ImageDataset, o: AugmentOptions, seed: number): ImageDataset {
  const shift = o.shift ?? 0;
  const rotation = o.rotation ?? 0;
  if (!(shift >= 0 && shift < 0.5) || !(rotation >= 0 && rotation <= 180)) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `augmentation needs shift in [0, 0.5) and rotation in [0, 180] degrees (got shift ${shift}, rotation ${rotation})`,
    );
  }
  const rng = createRng(seed);
  const { height: h, width: w, channels: c } = ds;
  const size = imageSize(ds);
  const out = new Float32Array(ds.images.length);
  const cy = (h - 1) / 2;
  const cx = (w - 1) / 2;
  for (let n = 0; n < ds.n; n++) {
    const dy = (rng.next() * 2 - 1) * shift * h;
    const dx = (rng.next() * 2 - 1) * shift * w;
    const angle = ((rng.next() * 2 - 1) * rotation * Math.PI) / 180;
    const flip = o.flip === true && rng.next() < 0.5;
    const cos = Math.cos(angle);
    const sin = Math.sin(angle);
    const src = ds.images.subarray(n * size, (n + 1) * size);
    const dst = out.subarray(n * size, (n + 1) * size);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        // Inverse map: where in the source does this output pixel come from?
        const ox = (flip ? w - 1 - x : x) - cx - dx;
        const oy = y - cy - dy;
        const sx = cos * ox + sin * oy + cx;
        const sy = -sin * ox + cos * oy + cy;
        const x0 = Math.floor(sx);
        const y0 = Math.floor(sy);
        const fx = sx - x0;
        const fy = sy - y0;
        for (let k = 0; k < c; k++) {
          const at = (yy: number, xx: number) => (yy >= 0 && yy < h && xx >= 0 && xx < w ? src[(yy * w + xx) * c + k]! : 0);
          dst[(y * w + x) * c + k] =
            at(y0, x0) * (1 - fx) * (1 - fy) + at(y0, x0 + 1) * fx * (1 - fy) + at(y0 + 1, x0) * (1 - fx) * fy + at(y0 + 1, x0 + 1) * fx * fy;
        }
      }
    }
  }
  return { ...ds, images: out };
}

/**
 * The training split grown by `copies` augmented copies of itself (copy k seeded with `seed + k`), so a
 * frozen backbone's features of the copies can be extracted and cached once like the originals.
 */
export function withAugmentedCopies(ds: ImageDataset, o: AugmentOptions & { copies: number }, seed: number): ImageDataset {
  if (o.copies <= 0) return ds;
  const parts = [ds, ...Array.from({ length: o.copies }, (_, k) => augmentDataset(ds, o, seed + k + 1))];
  const images = new Float32Array(ds.images.length * parts.length);
  const labels = new Int32Array(ds.n * parts.length);
  parts.forEach((p, i) => {
    images.set(p.images, i * ds.images.length);
    labels.set(p.labels, i * ds.n);
  });
  return { ...ds, images, labels, n: ds.n * parts.length };
}
