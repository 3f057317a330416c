import { describe, expect, test } from 'vitest';
import { expectFtlError } from '../../test-support/expect-ftl-error.js';
import { ErrorCode } from '../errors.js';
import { aes256CtrKeystream, expandMask } from './mask-prg.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s/g, ''), 'hex'));

describe('the mask generator', () => {
  test('is AES-256-CTR: NIST SP 800-38A F.5.5 (CTR-AES256.Encrypt)', () => {
    const key = hex('603deb1015ca71be2b73aef0857d7781 1f352c073b6108d72d9810a30914dff4');
    const counter = hex('f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff');
    const plain = hex(`6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51
      30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710`);
    const cipher = hex(`601ec313775789a5b7a7f504bbf3d228 f443e3ca4d62b59aca84e990cacaf5c5
      2b0930daa23de94ce87017ba2d84988d dfc9c58db67aada613c2dd08457941a6`);
    const stream = aes256CtrKeystream(key, plain.length, counter);
    expect(Buffer.from(plain.map((b, i) => b ^ stream[i]!)).toString('hex')).toBe(Buffer.from(cipher).toString('hex'));
  });

  test('reads the keystream from a zero counter as little-endian words', () => {
    const key = hex('603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4');
    const stream = aes256CtrKeystream(key, 8);
    const words = expandMask(key, 2);
    const le = (at: number) => (stream[at]! | (stream[at + 1]! << 8) | (stream[at + 2]! << 16) | (stream[at + 3]! << 24)) >>> 0;
    expect(Array.from(words)).toEqual([le(0), le(4)]);
  });

  test('uses every byte of its 32-byte key: keys differing only in their first or last byte give unrelated masks', () => {
    const base = new Uint8Array(32).map((_, i) => i * 7 + 1);
    const mask = expandMask(base, 1024);
    for (const at of [0, 15, 31]) {
      const other = Uint8Array.from(base);
      other[at]! ^= 1;
      const diff = expandMask(other, 1024);
      // Unrelated 32-bit words agree with probability 2^-32: over 1024 words none should.
      expect(mask.filter((w, i) => w === diff[i]).length, `flipping byte ${at}`).toBe(0);
      // And about half of all bits differ, as between independent uniform streams.
      let bits = 0;
      mask.forEach((w, i) => {
        let x = (w ^ diff[i]!) >>> 0;
        while (x) {
          bits += x & 1;
          x >>>= 1;
        }
      });
      expect(bits / (1024 * 32)).toBeGreaterThan(0.48);
      expect(bits / (1024 * 32)).toBeLessThan(0.52);
    }
  });

  test.each([0, 16, 31, 33])('refuses a key of %i bytes: a mask is only as strong as its key', (bytes) => {
    expectFtlError(() => expandMask(new Uint8Array(bytes), 4), ErrorCode.InternalError, /a mask key must be 32 bytes/);
  });
});
