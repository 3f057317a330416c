import pngjs from 'pngjs';
import { describe, expect, test } from 'vitest';
import { ErrorCode } from '../errors.js';
import { expectFtlError } from '../../test-support/expect-ftl-error.js';
import { loadBuiltinDataset } from './builtin.js';
import { decodeImage, encodeJpeg, encodePng, isImageFile, sniffImageFormat } from './image-codec.js';
import type { Pixels } from './resize.js';

const digits = loadBuiltinDataset('mnist');
const digit = (i: number): Pixels => ({ data: digits.images.slice(i * 784, (i + 1) * 784), height: 28, width: 28, channels: 1 });

// A smooth colour gradient: JPEG's lossy steps stay small on it.
function gradient(height: number, width: number): Pixels {
  const data = new Float32Array(height * width * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = 3 * (y * width + x);
      data[o] = x / (width - 1);
      data[o + 1] = y / (height - 1);
      data[o + 2] = 0.5;
    }
  }
  return { data, height, width, channels: 3 };
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe('PNG and JPEG decoding', () => {
  test('a real MNIST digit survives PNG encode → decode to within 8-bit rounding, as one channel', () => {
    const img = digit(3);
    const png = encodePng(img);
    expect(sniffImageFormat(png)).toBe('png');
    const back = decodeImage(png, 'digit.png');
    expect([back.height, back.width, back.channels]).toEqual([28, 28, 1]);
    expect(maxDiff(back.data, img.data)).toBeLessThanOrEqual(0.5 / 255 + 1e-6);
  });

  test('an RGB PNG decodes to three channels', () => {
    const img = gradient(10, 12);
    const back = decodeImage(encodePng(img), 'g.png');
    expect([back.height, back.width, back.channels]).toEqual([10, 12, 3]);
    expect(maxDiff(back.data, img.data)).toBeLessThanOrEqual(0.5 / 255 + 1e-6);
  });

  test('an RGBA PNG written by pngjs itself: alpha is dropped, colour kept', () => {
    const png = new pngjs.PNG({ width: 2, height: 1 });
    png.data = Buffer.from([255, 0, 0, 0, 0, 0, 255, 128]); // transparent red, half-transparent blue
    const back = decodeImage(pngjs.PNG.sync.write(png), 'rgba.png');
    expect(back.channels).toBe(3);
    expect(Array.from(back.data)).toEqual([1, 0, 0, 0, 0, 1]);
  });

  test('a 16-bit grayscale PNG is scaled to [0, 1]', () => {
    const png = new pngjs.PNG({ width: 2, height: 1, bitDepth: 16, colorType: 0, inputColorType: 0, inputHasAlpha: false });
    png.data = Buffer.from(new Uint16Array([0, 65535]).buffer); // pngjs reads 16-bit input from the buffer's start
    const bytes = pngjs.PNG.sync.write(png, { bitDepth: 16, colorType: 0, inputColorType: 0, inputHasAlpha: false });
    const back = decodeImage(bytes, 'deep.png');
    expect(back.channels).toBe(1);
    expect(Array.from(back.data)).toEqual([0, 1]);
  });

  test('JPEG: a gradient and a real digit come back close to the original (lossy at quality 95)', () => {
    const g = gradient(16, 16);
    const jpg = encodeJpeg(g, 95);
    expect(sniffImageFormat(jpg)).toBe('jpeg');
    const back = decodeImage(jpg, 'g.jpg');
    expect([back.height, back.width, back.channels]).toEqual([16, 16, 3]);
    expect(maxDiff(back.data, g.data)).toBeLessThan(0.06);
    const d = decodeImage(encodeJpeg(digit(0), 95), 'd.jpg');
    const mean = d.data.reduce((s, v, i) => s + Math.abs(v - digit(0).data[i % 784]!), 0) / d.data.length;
    expect(mean).toBeLessThan(0.03);
  });

  test('content decides the format: a PNG named .jpg still decodes', () => {
    expect(decodeImage(encodePng(digit(1)), 'misnamed.jpg').height).toBe(28);
  });

  test.each([
    [
      'text named .png',
      new TextEncoder().encode('hello, not an image'),
      'notes.png',
      /^notes\.png is not a PNG or JPEG image \(its first bytes are neither signature; 19 bytes\); re-export it as PNG or JPEG, or remove it$/,
    ],
    ['an empty file', new Uint8Array(0), 'empty.jpg', /^empty\.jpg is not a PNG or JPEG image/],
    [
      'a truncated PNG',
      encodePng(digit(2)).slice(0, 60),
      'cut.png',
      /^cut\.png is a corrupt or unreadable PNG image \(.+\); re-export it or remove it$/,
    ],
    [
      'a PNG with a broken chunk checksum',
      (() => {
        const b = encodePng(digit(2));
        b[40] = b[40]! ^ 0xff;
        return b;
      })(),
      'crc.png',
      /^crc\.png is a corrupt or unreadable PNG image/,
    ],
    [
      'a truncated JPEG',
      encodeJpeg(digit(2)).slice(0, 30),
      'cut.jpg',
      /^cut\.jpg is a corrupt or unreadable JPEG image \(.+\); re-export it or remove it$/,
    ],
  ])('%s is a DATASET error naming the file', (_, bytes, file, message) => {
    expectFtlError(() => decodeImage(bytes, file), ErrorCode.Dataset, message);
  });

  test.each([
    ['a.png', true],
    ['B.JPG', true],
    ['c.jpeg', true],
    ['d.gif', false],
    ['e.txt', false],
    ['png', false],
  ])('isImageFile(%j) is %j', (name, ok) => {
    expect(isImageFile(name)).toBe(ok);
  });
});
