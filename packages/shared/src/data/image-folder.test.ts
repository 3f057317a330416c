import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { ErrorCode } from '../errors.js';
import { expectFtlError } from '../../test-support/expect-ftl-error.js';
import { loadBuiltinDataset } from './builtin.js';
import { encodeJpeg, encodePng } from './image-codec.js';
import { loadImageFolder } from './image-folder.js';
import { parseImageShape } from './image-shape.js';
import { convertChannels, resizeBilinear, type Pixels } from './resize.js';

const root = mkdtempSync(join(tmpdir(), 'ftl-image-folder-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let count = 0;
const fresh = () => {
  const dir = join(root, `case-${count++}`);
  mkdirSync(dir);
  return dir;
};

const mnist = loadBuiltinDataset('mnist');
// The i-th image of digit `d` in the mnist package (images are grouped by class).
function digit(d: number, i: number): Pixels {
  const first = mnist.labels.indexOf(d) + i;
  return { data: mnist.images.slice(first * 784, (first + 1) * 784), height: 28, width: 28, channels: 1 };
}

function write(path: string, bytes: Uint8Array | string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, bytes);
}

describe('image folder loader', () => {
  test('reads PNG and JPEG digits from one sub-folder per class, labelled by folder name', () => {
    const dir = fresh();
    for (let i = 0; i < 3; i++) write(join(dir, 'seven', `s${i}.png`), encodePng(digit(7, i)));
    for (let i = 0; i < 2; i++) write(join(dir, 'one', `o${i}.JPG`), encodeJpeg(digit(1, i), 95));
    write(join(dir, 'one', 'more', 'deeper.jpeg'), encodeJpeg(digit(1, 2), 95)); // nested folders belong to the class
    write(join(dir, '.DS_Store'), 'junk');
    write(join(dir, 'seven', '.hidden.png'), 'not read');
    const { dataset: ds, labelOrigins } = loadImageFolder(dir);
    expect(ds.classes).toEqual(['one', 'seven']);
    expect([ds.n, ds.height, ds.width, ds.channels]).toEqual([6, 28, 28, 1]);
    expect(Array.from(ds.labels)).toEqual([0, 0, 0, 1, 1, 1]);
    expect(labelOrigins).toEqual({ one: `folder ${join(dir, 'one')}`, seven: `folder ${join(dir, 'seven')}` });
    // PNG is lossless: the seven at index 3 is digit(7, 0) to within 8-bit rounding.
    const seven = ds.images.subarray(3 * 784, 4 * 784);
    expect(seven.every((v, p) => Math.abs(v - digit(7, 0).data[p]!) <= 0.5 / 255 + 1e-6)).toBe(true);
  });

  test('images of another size and RGB are resized and converted to the target shape', () => {
    const dir = fresh();
    // A 56×56 RGB copy of a digit; asked for 28×28×1 it comes back close to the original.
    const big = convertChannels(resizeBilinear(digit(3, 0), 56, 56), 3);
    write(join(dir, 'three', 'big.png'), encodePng(big));
    const small = loadImageFolder(dir).dataset;
    expect([small.height, small.width, small.channels]).toEqual([28, 28, 1]);
    const err = small.images.reduce((s, v, p) => s + Math.abs(v - digit(3, 0).data[p]!), 0) / 784;
    expect(err).toBeLessThan(0.05);
    // And asked for 32×32×3, a grey PNG becomes three equal channels.
    write(join(dir, 'three', 'grey.png'), encodePng(digit(3, 1)));
    const rgb = loadImageFolder(dir, { shape: parseImageShape('32x32x3') }).dataset;
    expect([rgb.n, rgb.height, rgb.width, rgb.channels]).toEqual([2, 32, 32, 3]);
    const second = rgb.images.subarray(32 * 32 * 3);
    for (let p = 0; p < 32 * 32; p++) expect(second[3 * p]).toBe(second[3 * p + 2]);
  });

  test('other files at the top level are ignored with a warning', () => {
    const dir = fresh();
    write(join(dir, 'a', 'x.png'), encodePng(digit(0, 0)));
    write(join(dir, 'README.txt'), 'about this data');
    const warnings: unknown[] = [];
    const log = { warn: (event: string, fields: unknown) => warnings.push([event, fields]) } as never;
    expect(loadImageFolder(dir, { log }).dataset.n).toBe(1);
    expect(warnings).toEqual([['image-folder-file-ignored', { file: join(dir, 'README.txt') }]]);
  });

  describe('errors name the folder or file and say how to fix it', () => {
    test('a folder that does not exist', () => {
      const dir = join(root, 'nowhere');
      expectFtlError(
        () => loadImageFolder(dir),
        ErrorCode.Dataset,
        new RegExp(`^image folder ${dir} does not exist; give a folder with one sub-folder of PNG or JPEG images per class$`),
      );
    });

    test('a file instead of a folder', () => {
      const file = join(fresh(), 'x.png');
      write(file, encodePng(digit(0, 0)));
      expectFtlError(() => loadImageFolder(file), ErrorCode.Dataset, /^image folder .*x\.png is not a folder; give a folder/);
    });

    test('an empty folder', () => {
      const dir = fresh();
      expectFtlError(
        () => loadImageFolder(dir),
        ErrorCode.Dataset,
        new RegExp(
          `^image folder ${dir} has no class sub-folders; put the images in one sub-folder per class, named by its label \\(${dir}/<label>/image\\.png\\)$`,
        ),
      );
    });

    test('a class sub-folder with no images', () => {
      const dir = fresh();
      write(join(dir, 'cat', 'a.png'), encodePng(digit(0, 0)));
      mkdirSync(join(dir, 'dog', 'empty-inside'), { recursive: true });
      expectFtlError(
        () => loadImageFolder(dir),
        ErrorCode.Dataset,
        new RegExp(`^class folder ${join(dir, 'dog')} has no images; add PNG and JPEG files \\(\\.png, \\.jpg, \\.jpeg\\) or remove the folder$`),
      );
    });

    test.each([['.gif'], ['.txt'], ['']])('an unsupported file type %j', (ext) => {
      const dir = fresh();
      write(join(dir, 'cat', 'a.png'), encodePng(digit(0, 0)));
      write(join(dir, 'cat', `b${ext}`), 'GIF89a');
      const type = ext ? `"${ext}"` : '\\(no extension\\)';
      expectFtlError(
        () => loadImageFolder(dir),
        ErrorCode.Dataset,
        new RegExp(
          `^${join(dir, 'cat', `b${ext}`)}: unsupported file type ${type}; the image folder takes PNG and JPEG files \\(\\.png, \\.jpg, \\.jpeg\\): convert it or move it out of the folder$`,
        ),
      );
    });

    test('an image directly in the top folder has no label', () => {
      const dir = fresh();
      write(join(dir, 'cat', 'a.png'), encodePng(digit(0, 0)));
      write(join(dir, 'stray.png'), encodePng(digit(0, 1)));
      expectFtlError(
        () => loadImageFolder(dir),
        ErrorCode.Dataset,
        /stray\.png is directly in the image folder, so it has no label; move it into its class's sub-folder \(.*\/<label>\/stray\.png\)$/,
      );
    });

    test.each([
      [
        'a truncated PNG',
        'bad.png',
        encodePng(digit(5, 0)).slice(0, 50),
        /bad\.png is a corrupt or unreadable PNG image \(.+\); re-export it or remove it$/,
      ],
      ['a truncated JPEG', 'bad.jpg', encodeJpeg(digit(5, 0)).slice(0, 40), /bad\.jpg is a corrupt or unreadable JPEG image/],
      ['text named .jpeg', 'bad.jpeg', new TextEncoder().encode('not really'), /bad\.jpeg is not a PNG or JPEG image/],
    ])('%s', (_, name, bytes, message) => {
      const dir = fresh();
      write(join(dir, 'five', 'ok.png'), encodePng(digit(5, 1)));
      write(join(dir, 'five', name), bytes);
      expectFtlError(
        () => loadImageFolder(dir),
        ErrorCode.Dataset,
        new RegExp(`${join(dir, 'five').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/${message.source}`),
      );
    });

    test('an image that cannot be read (a broken link; as root, permissions cannot make one)', () => {
      const dir = fresh();
      write(join(dir, 'five', 'ok.png'), encodePng(digit(5, 1)));
      symlinkSync(join(dir, 'gone.png'), join(dir, 'five', 'link.png'));
      expectFtlError(() => loadImageFolder(dir), ErrorCode.Dataset, /^cannot read .*five\/link\.png \(ENOENT.*\); fix its permissions or remove it$/);
    });

    test.skipIf(process.getuid?.() === 0)('an image without read permission', () => {
      const dir = fresh();
      const file = join(dir, 'five', 'locked.png');
      write(file, encodePng(digit(5, 1)));
      chmodSync(file, 0);
      expectFtlError(() => loadImageFolder(dir), ErrorCode.Dataset, /^cannot read .*locked\.png \(EACCES.*\); fix its permissions or remove it$/);
    });
  });
});
