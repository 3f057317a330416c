import { ErrorCode, FtlError } from '../errors.js';
import { type RandomBytes, secureRandomBytes } from './key-agreement.js';
import { SHARE_BYTES } from './sizes.js';

// Shamir's t-of-n secret sharing over the prime field of the Mersenne prime 2^521 − 1. A 32-byte secret
// (a private key, a self-mask seed) is one field element, since 2^256 < p; every coefficient is drawn
// uniformly from the whole field, so t − 1 shares say nothing about the secret. A share is its holder's
// id (the evaluation point, never 0) and a 66-byte big-endian field element.

/** The field's prime: 2^521 − 1. */
export const SHAMIR_PRIME = (1n << 521n) - 1n;
/** Bytes of a secret that is shared: one field element below 2^256. */
export const SECRET_BYTES = 32;
const SECRET_LIMIT = 1n << 256n;

/** One holder's share of a secret: the evaluation point `x` (the holder's site id) and the value there. */
export interface Share {
  x: number;
  y: Uint8Array;
}

/** a mod p for p = 2^521 − 1: since 2^521 ≡ 1, the bits above 521 fold onto the low ones (no division). */
const mod = (a: bigint): bigint => {
  let r = a < 0n ? SHAMIR_PRIME - (-a % SHAMIR_PRIME) : a;
  while (r > SHAMIR_PRIME) r = (r & SHAMIR_PRIME) + (r >> 521n);
  return r === SHAMIR_PRIME ? 0n : r;
};

function toBigInt(bytes: Uint8Array): bigint {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

function toBytes(n: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let v = n;
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** a^-1 mod p by the extended Euclidean algorithm (a ≠ 0 mod p). */
function inverse(a: bigint): bigint {
  let [r0, r1] = [mod(a), SHAMIR_PRIME];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return mod(s0);
}

/** A uniform field element: 521 random bits, drawn again in the one case (2^521 − 1 itself) that is not below p. */
function randomElement(random: RandomBytes): bigint {
  for (;;) {
    const bytes = random(SHARE_BYTES);
    bytes[0] = bytes[0]! & 0x01;
    const n = toBigInt(bytes);
    if (n < SHAMIR_PRIME) return n;
  }
}

function checkPoints(xs: readonly number[], what: string): void {
  const seen = new Set<number>();
  for (const x of xs) {
    if (!Number.isSafeInteger(x) || x < 1)
      throw new FtlError(ErrorCode.InvalidMessage, `${what}: a share's point must be a positive integer (got ${x})`);
    if (seen.has(x)) throw new FtlError(ErrorCode.InvalidMessage, `${what}: two shares for point ${x}; each holder has one`);
    seen.add(x);
  }
}

/**
 * Splits a 32-byte secret into one share per point of `xs` (the holders' ids, distinct, ≥ 1), any
 * `threshold` of which give the secret back.
 *
 * @throws FtlError(INVALID_CONFIG) when threshold is not in [1, xs.length].
 * @example
 * const shares = shareSecret(seed, 3, [1, 2, 3, 4, 5]); // any 3 reconstruct `seed`
 */
export function shareSecret(secret: Uint8Array, threshold: number, xs: readonly number[], random: RandomBytes = secureRandomBytes): Share[] {
  if (secret.byteLength !== SECRET_BYTES)
    throw new FtlError(ErrorCode.InternalError, `a shared secret must be ${SECRET_BYTES} bytes (got ${secret.byteLength})`);
  if (!Number.isSafeInteger(threshold) || threshold < 1 || threshold > xs.length) {
    throw new FtlError(ErrorCode.InvalidConfig, `the threshold must be an integer in [1, ${xs.length}] for ${xs.length} holders (got ${threshold})`);
  }
  checkPoints(xs, 'sharing');
  const coefficients = [toBigInt(secret)];
  for (let i = 1; i < threshold; i++) coefficients.push(randomElement(random));
  return xs.map((x) => {
    const bx = BigInt(x);
    let y = 0n;
    for (let i = coefficients.length - 1; i >= 0; i--) y = mod(y * bx + coefficients[i]!);
    return { x, y: toBytes(y, SHARE_BYTES) };
  });
}

/**
 * The value at `at` of the polynomial through `points` (Lagrange interpolation). The denominators are
 * inverted together with one modular inverse (Montgomery's trick), not one each.
 */
function interpolate(points: ReadonlyArray<{ x: bigint; y: bigint }>, at: bigint): bigint {
  const k = points.length;
  const nums: bigint[] = [];
  const dens: bigint[] = [];
  for (let j = 0; j < k; j++) {
    let num = 1n;
    let den = 1n;
    for (let m = 0; m < k; m++) {
      if (m === j) continue;
      num = mod(num * (at - points[m]!.x));
      den = mod(den * (points[j]!.x - points[m]!.x));
    }
    nums.push(num);
    dens.push(den);
  }
  // prefix[j] = dens[0]·…·dens[j−1]; one inverse of the whole product, then each inverse from the back.
  const prefix: bigint[] = [1n];
  for (let j = 0; j < k; j++) prefix.push(mod(prefix[j]! * dens[j]!));
  let inv = inverse(prefix[k]!);
  let sum = 0n;
  for (let j = k - 1; j >= 0; j--) {
    const invDen = mod(inv * prefix[j]!);
    inv = mod(inv * dens[j]!);
    sum = mod(sum + mod(points[j]!.y * nums[j]!) * invDen);
  }
  return sum;
}

/**
 * The secret behind at least `threshold` shares: Lagrange interpolation at 0 through the first
 * `threshold`; any further share must lie on the same polynomial, and the result must be a 32-byte value.
 * That catches a share corrupted at random even among exactly `threshold` (it passes with probability
 * 2^-265), but not one crafted to interpolate to another 32-byte value: callers check what they rebuild
 * against a public key or a commitment.
 *
 * @param what names the secret in errors, e.g. `site 3's self-mask seed`.
 * @param options.checkAll false skips checking the shares beyond `threshold` (each costs an interpolation),
 *   for a caller that checks the secret itself against a public key or a commitment.
 * @throws FtlError(QUORUM) with fewer than `threshold` shares, saying how many there were and how many were needed.
 * @throws FtlError(INVALID_MESSAGE) for malformed, duplicate or inconsistent shares.
 */
export function reconstructSecret(shares: readonly Share[], threshold: number, what = 'secret', options: { checkAll?: boolean } = {}): Uint8Array {
  if (shares.length < threshold) {
    throw new FtlError(ErrorCode.Quorum, `${what}: ${shares.length} shares answered, ${threshold} were needed`);
  }
  checkPoints(
    shares.map((s) => s.x),
    what,
  );
  const points = shares.map((s) => {
    if (s.y.byteLength !== SHARE_BYTES)
      throw new FtlError(ErrorCode.InvalidMessage, `${what}: a share must be ${SHARE_BYTES} bytes (got ${s.y.byteLength})`);
    const y = toBigInt(s.y);
    if (y >= SHAMIR_PRIME) throw new FtlError(ErrorCode.InvalidMessage, `${what}: share ${s.x} is not a field element`);
    return { x: BigInt(s.x), y };
  });
  const basis = points.slice(0, threshold);
  for (const extra of options.checkAll === false ? [] : points.slice(threshold)) {
    if (interpolate(basis, extra.x) !== extra.y) {
      throw new FtlError(ErrorCode.InvalidMessage, `${what}: share ${extra.x} does not agree with the others; a holder sent a wrong share`);
    }
  }
  const secret = interpolate(basis, 0n);
  if (secret >= SECRET_LIMIT)
    throw new FtlError(ErrorCode.InvalidMessage, `${what}: the shares do not give a 32-byte secret; a holder sent a wrong share`);
  return toBytes(secret, SECRET_BYTES);
}
