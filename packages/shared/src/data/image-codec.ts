import { extname } from 'node:path';
import jpeg from 'jpeg-js';
import pngjs from 'pngjs';
import { ErrorCode, FtlError } from '../errors.js';
import type { Pixels } from './resize.js';

/** File name endings the image loaders read (case-insensitive). */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg'] as const;

/** True when `file` ends in one of {@link IMAGE_EXTENSIONS}. */
export function isImageFile(file: string): boolean {
  return (IMAGE_EXTENSIONS as readonly string[]).includes(extname(file).toLowerCase());
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const JPEG_SIGNATURE = [0xff, 0xd8, 0xff];

function startsWith(bytes: Uint8Array, signature: readonly number[]): boolean {
  return bytes.length >= signature.length && signature.every((b, i) => bytes[i] === b);
}

/** The format by content, not by name: a PNG named `.jpg` still decodes. */
export function sniffImageFormat(bytes: Uint8Array): 'png' | 'jpeg' | undefined {
  if (startsWith(bytes, PNG_SIGNATURE)) return 'png';
  if (startsWith(bytes, JPEG_SIGNATURE)) return 'jpeg';
  return undefined;
}

// Both decoders give 8-bit RGBA or RGB. Alpha is dropped (as PIL's convert('RGB') does); an image whose
// every pixel has R = G = B comes back with one channel, so grayscale stays exact.
function toPixels(data: Uint8Array, width: number, height: number, stride: number): Pixels {
  const pixels = width * height;
  let gray = true;
  for (let p = 0; p < pixels && gray; p++) {
    const o = p * stride;
    gray = data[o] === data[o + 1] && data[o] === data[o + 2];
  }
  const channels = gray ? 1 : 3;
  const out = new Float32Array(pixels * channels);
  for (let p = 0; p < pixels; p++) {
    const o = p * stride;
    if (gray) out[p] = data[o]! / 255;
    else for (let c = 0; c < 3; c++) out[3 * p + c] = data[o + c]! / 255;
  }
  return { data: out, height, width, channels };
}

/**
 * Decodes a PNG (any bit depth, palette, interlaced; 16-bit is scaled to 8) or a baseline/progressive
 * JPEG to values in [0, 1]: one channel if the image is gray, else three (RGB); alpha is dropped.
 * `file` only names the image in errors.
 *
 * @throws FtlError(DATASET) naming `file` when the bytes are neither format or the image is corrupt.
 * @example
 * decodeImage(readFileSync('scan.png'), 'scan.png'); // { data, height, width, channels: 1 }
 */
export function decodeImage(bytes: Uint8Array, file: string): Pixels {
  const format = sniffImageFormat(bytes);
  if (!format) {
    throw new FtlError(
      ErrorCode.Dataset,
      `${file} is not a PNG or JPEG image (its first bytes are neither signature; ${bytes.length} bytes); re-export it as PNG or JPEG, or remove it`,
    );
  }
  try {
    if (format === 'png') {
      const png = pngjs.PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      return toPixels(png.data, png.width, png.height, 4);
    }
    const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false });
    return toPixels(img.data, img.width, img.height, 3);
  } catch (err) {
    throw new FtlError(
      ErrorCode.Dataset,
      `${file} is a corrupt or unreadable ${format.toUpperCase()} image (${err instanceof Error ? err.message : String(err)}); re-export it or remove it`,
      { cause: err },
    );
  }
}

function toRgba(img: Pixels): Buffer {
  if (img.channels !== 1 && img.channels !== 3) {
    throw new FtlError(ErrorCode.Dataset, `only grayscale (1) or RGB (3) images can be encoded (got ${img.channels} channels)`);
  }
  const pixels = img.height * img.width;
  const rgba = Buffer.alloc(pixels * 4);
  const byte = (v: number) => Math.round(Math.min(1, Math.max(0, v)) * 255);
  for (let p = 0; p < pixels; p++) {
    for (let c = 0; c < 3; c++) rgba[4 * p + c] = byte(img.data[img.channels === 1 ? p : 3 * p + c]!);
    rgba[4 * p + 3] = 255;
  }
  return rgba;
}

/**
 * Encodes an image (values in [0, 1]) as an 8-bit PNG: grayscale for one channel, RGB for three.
 *
 * @example
 * writeFileSync('digit.png', encodePng({ data, height: 28, width: 28, channels: 1 }));
 */
export function encodePng(img: Pixels): Uint8Array {
  const png = new pngjs.PNG({ width: img.width, height: img.height });
  png.data = toRgba(img);
  return pngjs.PNG.sync.write(png, { colorType: img.channels === 1 ? 0 : 2 });
}

/** Encodes an image (values in [0, 1]) as a baseline JPEG of the given quality (1–100). */
export function encodeJpeg(img: Pixels, quality = 90): Uint8Array {
  return jpeg.encode({ data: toRgba(img), width: img.width, height: img.height }, quality).data;
}
