import { createCipheriv, createHash } from 'node:crypto';
import { ErrorCode, FtlError } from '../errors.js';

// A mask is AES-256-CTR's keystream under a 32-byte key: the whole key drives the cipher, so a mask is as
// hard to guess as its key (2^256 choices), never as a 32-bit seed. Each key masks one vector of one round
// (pairwise keys are derived per run, round and pair, self-mask seeds are drawn fresh per round), so a
// zero counter block never repeats under one key.

/** Bytes of a mask key and of a self-mask seed. */
export const MASK_KEY_BYTES = 32;
const ZERO_IV = new Uint8Array(16);

/**
 * AES-256-CTR's keystream: `bytes` bytes of the encryption of zeros under `key`, from counter block `iv`
 * (16 bytes; zero by default). Exposed so the cipher can be checked against published test vectors.
 *
 * @throws FtlError(INTERNAL_ERROR) for a key that is not exactly 32 bytes or an IV that is not 16.
 */
export function aes256CtrKeystream(key: Uint8Array, bytes: number, iv: Uint8Array = ZERO_IV): Uint8Array {
  if (key.byteLength !== MASK_KEY_BYTES) {
    throw new FtlError(ErrorCode.InternalError, `a mask key must be ${MASK_KEY_BYTES} bytes (got ${key.byteLength})`);
  }
  if (iv.byteLength !== 16) throw new FtlError(ErrorCode.InternalError, `an AES-CTR counter block must be 16 bytes (got ${iv.byteLength})`);
  const cipher = createCipheriv('aes-256-ctr', key, iv);
  const out = cipher.update(zeros(bytes));
  cipher.final();
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

// The plaintext of every keystream is zeros: one buffer, grown as needed and never written, serves all.
let zeroBuffer = new Uint8Array(0);
function zeros(bytes: number): Uint8Array {
  if (zeroBuffer.byteLength < bytes) zeroBuffer = new Uint8Array(bytes);
  return zeroBuffer.subarray(0, bytes);
}

const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/**
 * The mask a key expands to: `length` ring words, each 4 bytes of the keystream read little-endian.
 *
 * @example
 * const mask = expandMask(pairKey, update.length); // Uint32Array, uniform in Z_{2^32}^length
 */
export function expandMask(key: Uint8Array, length: number): Uint32Array {
  const stream = aes256CtrKeystream(key, length * 4);
  // On a little-endian machine the keystream's bytes are the words already: a view when aligned, else one copy.
  if (LITTLE_ENDIAN && stream.byteOffset % 4 === 0) return new Uint32Array(stream.buffer, stream.byteOffset, length);
  const out = new Uint32Array(length);
  if (LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(stream);
    return out;
  }
  const view = new DataView(stream.buffer, stream.byteOffset, stream.byteLength);
  for (let i = 0; i < length; i++) out[i] = view.getUint32(i * 4, true);
  return out;
}

/**
 * A site's commitment to its self-mask seed for one round: SHA-256 over the seed, bound to the run, round
 * and site. Sent with its shares, it lets the coordinator check the seed it rebuilds from shares, since a
 * holder could otherwise craft a wrong share that still interpolates to some 32-byte value. The seed is
 * 256 random bits, so the digest gives nothing away.
 */
export function seedCommitment(seed: Uint8Array, ctx: { runId: string; round: number; site: number }): Uint8Array {
  const hash = createHash('sha256');
  hash.update(`ftl-secagg/v1 seed|${ctx.runId.length}:${ctx.runId}|${ctx.round}|${ctx.site}|`);
  hash.update(seed);
  return new Uint8Array(hash.digest());
}
