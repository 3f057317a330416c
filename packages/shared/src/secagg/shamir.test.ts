import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { expectFtlError } from '../../test-support/expect-ftl-error.js';
import { ErrorCode } from '../errors.js';
import { reconstructSecret, SHAMIR_PRIME, shareSecret } from './shamir.js';

const secret32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** n holders with ids drawn from [1, 10 000], t in [1, n], and a subset of the shares of a given size. */
const sharing = fc.integer({ min: 1, max: 12 }).chain((n) =>
  fc.record({
    xs: fc.uniqueArray(fc.integer({ min: 1, max: 10_000 }), { minLength: n, maxLength: n }),
    t: fc.integer({ min: 1, max: n }),
    secret: secret32,
    order: fc.array(fc.nat(), { minLength: n, maxLength: n }),
  }),
);

describe('Shamir sharing over GF(2^521 − 1)', () => {
  test('the field is larger than any 32-byte secret', () => {
    expect(SHAMIR_PRIME > 1n << 256n).toBe(true);
    expect(SHAMIR_PRIME).toBe(2n ** 521n - 1n);
  });

  test('any t of the n shares, in any order, give the secret back', () => {
    fc.assert(
      fc.property(sharing, ({ xs, t, secret, order }) => {
        const shares = shareSecret(secret, t, xs);
        const picked = shares.map((s, i) => ({ s, k: order[i]! })).sort((a, b) => a.k - b.k);
        expect(
          hex(
            reconstructSecret(
              picked.slice(0, t).map((p) => p.s),
              t,
            ),
          ),
        ).toBe(hex(secret));
        expect(hex(reconstructSecret(shares, t))).toBe(hex(secret));
      }),
    );
  });

  test('fewer than t shares is a QUORUM error saying how many answered and how many were needed', () => {
    fc.assert(
      fc.property(
        sharing.filter(({ t }) => t >= 2),
        ({ xs, t, secret }) => {
          const shares = shareSecret(secret, t, xs);
          expectFtlError(
            () => reconstructSecret(shares.slice(0, t - 1), t, 'site 4’s seed'),
            ErrorCode.Quorum,
            new RegExp(`^site 4’s seed: ${t - 1} shares answered, ${t} were needed$`),
          );
        },
      ),
    );
  });

  test('a wrong share is caught: by the others beyond t, or, if it is random, because the result is no 32-byte secret', () => {
    fc.assert(
      fc.property(
        sharing.filter(({ xs, t }) => t >= 2 && xs.length > t),
        fc.integer({ min: 0, max: 65 }),
        ({ xs, t, secret }, byte) => {
          const shares = shareSecret(secret, t, xs);
          const bad = shares.map((s) => ({ ...s }));
          const y = Uint8Array.from(bad[t]!.y);
          y[byte] = y[byte]! ^ (byte === 0 ? 1 : 0x40);
          bad[t] = { ...bad[t]!, y };
          expectFtlError(() => reconstructSecret(bad, t), ErrorCode.InvalidMessage, /does not agree with the others/);
          // With exactly t shares, one replaced by a random field element: the value is almost surely ≥ 2^256.
          const random = shareSecret(randomBytes(32), 1, [bad[t]!.x])[0]!;
          const exact = [...shares.slice(1, t), random];
          expectFtlError(() => reconstructSecret(exact, t), ErrorCode.InvalidMessage, /do not give a 32-byte secret/);
        },
      ),
    );
  });

  test('t − 1 shares fix nothing: the same points share two secrets with fresh coefficients each time', () => {
    const xs = [1, 2, 3, 4, 5];
    const a = shareSecret(randomBytes(32), 3, xs);
    const b = shareSecret(randomBytes(32), 3, xs);
    const again = shareSecret(new Uint8Array(32), 3, xs);
    const again2 = shareSecret(new Uint8Array(32), 3, xs);
    expect(hex(a[0]!.y)).not.toBe(hex(b[0]!.y));
    // The same secret shared twice gives other shares: the coefficients are random, not derived from it.
    expect(hex(again[0]!.y)).not.toBe(hex(again2[0]!.y));
  });

  test('duplicate or zero points, bad thresholds and malformed shares are refused', () => {
    expectFtlError(() => shareSecret(new Uint8Array(32), 2, [1, 1, 2]), ErrorCode.InvalidMessage, /two shares for point 1/);
    expectFtlError(() => shareSecret(new Uint8Array(32), 2, [0, 1, 2]), ErrorCode.InvalidMessage, /positive integer/);
    expectFtlError(() => shareSecret(new Uint8Array(32), 4, [1, 2, 3]), ErrorCode.InvalidConfig, /threshold must be an integer in \[1, 3\]/);
    const shares = shareSecret(new Uint8Array(32), 2, [1, 2, 3]);
    expectFtlError(() => reconstructSecret([shares[0]!, { x: 2, y: new Uint8Array(65) }], 2), ErrorCode.InvalidMessage, /must be 66 bytes/);
    expectFtlError(() => reconstructSecret([shares[0]!, { ...shares[1]!, x: 1 }], 2), ErrorCode.InvalidMessage, /two shares for point 1/);
    expectFtlError(
      () => reconstructSecret([shares[0]!, { x: 2, y: new Uint8Array(66).fill(0xff) }], 2),
      ErrorCode.InvalidMessage,
      /not a field element/,
    );
  });
});
