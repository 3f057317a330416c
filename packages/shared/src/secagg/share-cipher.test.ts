import { describe, expect, test } from 'vitest';
import { expectFtlError } from '../../test-support/expect-ftl-error.js';
import { ErrorCode } from '../errors.js';
import { secureRandomBytes } from './key-agreement.js';
import { openShares, sealShares } from './share-cipher.js';
import { SEALED_SHARES_BYTES } from './sizes.js';

const bundle = { from: 3, to: 7, keyShare: secureRandomBytes(66), seedShare: secureRandomBytes(66) };
const ctx = { runId: 'r', round: 2 };
const key = secureRandomBytes(32);

describe('sealing a pair of shares for its holder', () => {
  test('opens to the same shares with the same key, pair and round', () => {
    const sealed = sealShares(key, bundle, ctx);
    expect(sealed.byteLength).toBe(SEALED_SHARES_BYTES);
    expect(openShares(key, sealed, { ...ctx, from: 3, to: 7 })).toEqual(bundle);
  });

  test('hides the shares: neither appears in the sealed bytes, and two sealings differ', () => {
    const a = Buffer.from(sealShares(key, bundle, ctx));
    const b = Buffer.from(sealShares(key, bundle, ctx));
    expect(a.equals(b)).toBe(false);
    expect(a.includes(Buffer.from(bundle.keyShare.subarray(0, 8)))).toBe(false);
    expect(a.includes(Buffer.from(bundle.seedShare.subarray(0, 8)))).toBe(false);
  });

  test.each([
    ['another key', () => ({ k: secureRandomBytes(32), c: { ...ctx, from: 3, to: 7 } })],
    ['another round', () => ({ k: key, c: { ...ctx, round: 3, from: 3, to: 7 } })],
    ['another run', () => ({ k: key, c: { runId: 'other', round: 2, from: 3, to: 7 } })],
    ['another recipient', () => ({ k: key, c: { ...ctx, from: 3, to: 8 } })],
    ['another sender', () => ({ k: key, c: { ...ctx, from: 4, to: 7 } })],
  ])('fails to open with %s', (_, make) => {
    const sealed = sealShares(key, bundle, ctx);
    const { k, c } = make();
    expectFtlError(() => openShares(k, sealed, c), ErrorCode.InvalidMessage, /fail authentication/);
  });

  test('fails to open when any byte was altered on the way, or the size is wrong', () => {
    const sealed = sealShares(key, bundle, ctx);
    for (const at of [0, 12, 100, SEALED_SHARES_BYTES - 1]) {
      const bad = Uint8Array.from(sealed);
      bad[at]! ^= 1;
      expectFtlError(() => openShares(key, bad, { ...ctx, from: 3, to: 7 }), ErrorCode.InvalidMessage, /fail authentication/);
    }
    expectFtlError(() => openShares(key, sealed.subarray(1), { ...ctx, from: 3, to: 7 }), ErrorCode.InvalidMessage, /must be 168 bytes/);
  });
});
