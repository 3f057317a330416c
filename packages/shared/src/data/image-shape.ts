import { ErrorCode, FtlError } from '../errors.js';

/** The shape of one image: rows, columns and channels (1 = grayscale, 3 = RGB), as the backbone takes it. */
export interface ImageShape {
  readonly height: number;
  readonly width: number;
  readonly channels: number;
}

/** The default backbone's input: 28×28 grayscale. */
export const DEFAULT_IMAGE_SHAPE: ImageShape = { height: 28, width: 28, channels: 1 };

const MAX_SIDE = 4096;

/** `28x28x1`: the form {@link parseImageShape} reads. */
export function formatImageShape(s: ImageShape): string {
  return `${s.height}x${s.width}x${s.channels}`;
}

/**
 * Parses `HxWxC` (e.g. `28x28x1`, `32x32x3`): sides 1–4096, 1 or 3 channels.
 *
 * @example
 * parseImageShape('32x32x3'); // { height: 32, width: 32, channels: 3 }
 */
export function parseImageShape(text: string): ImageShape {
  const m = /^(\d+)x(\d+)x(\d+)$/.exec(text.trim());
  const [height, width, channels] = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [0, 0, 0];
  if (!m || height < 1 || width < 1 || height > MAX_SIDE || width > MAX_SIDE || (channels !== 1 && channels !== 3)) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `image shape must be HEIGHTxWIDTHxCHANNELS with sides 1–${MAX_SIDE} and 1 (grayscale) or 3 (RGB) channels, e.g. 28x28x1 (got "${text}")`,
    );
  }
  return { height, width, channels };
}

/** True when both shapes are the same. */
export function sameImageShape(a: ImageShape, b: ImageShape): boolean {
  return a.height === b.height && a.width === b.width && a.channels === b.channels;
}
