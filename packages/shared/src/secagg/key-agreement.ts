import { createPrivateKey, createPublicKey, diffieHellman, hkdfSync, randomBytes as systemRandomBytes, type KeyObject } from 'node:crypto';
import { ErrorCode, FtlError } from '../errors.js';
import { X25519_KEY_BYTES } from './sizes.js';

// X25519 key agreement and HKDF-SHA256 key derivation. Each derived key is bound to what it is for
// (a mask or a share-encryption key), the run, the round and the two site ids, so one Diffie–Hellman
// secret never yields the same key twice, and a key from one round says nothing about another.

/** A source of secret random bytes; the system's CSPRNG unless a test supplies a deterministic one. */
export type RandomBytes = (n: number) => Uint8Array;

/** The system's cryptographically secure random bytes. */
export const secureRandomBytes: RandomBytes = (n) => new Uint8Array(systemRandomBytes(n));

// The fixed DER prefixes of an X25519 key (RFC 8410): 32 raw bytes follow.
const PKCS8_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20]);
const SPKI_PREFIX = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00]);

/** An X25519 key pair as raw bytes, which travel and are secret-shared as they are. */
export interface KeyPair {
  publicKey: Uint8Array;
  privateKey: Uint8Array;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a, 0);
  out.set(b, a.byteLength);
  return out;
}

// Decoding a DER private key costs about half a millisecond, and a site agrees keys with every neighbour
// from the same two key pairs: each key's object is kept for as long as its bytes are.
const privateObjects = new WeakMap<Uint8Array, KeyObject>();
const publicObjects = new WeakMap<Uint8Array, KeyObject>();

function privateKeyObject(raw: Uint8Array): KeyObject {
  if (raw.byteLength !== X25519_KEY_BYTES) {
    throw new FtlError(ErrorCode.InvalidMessage, `an X25519 private key must be 32 bytes (got ${raw.byteLength})`);
  }
  let key = privateObjects.get(raw);
  if (!key) privateObjects.set(raw, (key = createPrivateKey({ key: Buffer.from(concat(PKCS8_PREFIX, raw)), format: 'der', type: 'pkcs8' })));
  return key;
}

function publicKeyObject(raw: Uint8Array): KeyObject {
  if (raw.byteLength !== X25519_KEY_BYTES) {
    throw new FtlError(ErrorCode.InvalidMessage, `an X25519 public key must be 32 bytes (got ${raw.byteLength})`);
  }
  let key = publicObjects.get(raw);
  if (!key) publicObjects.set(raw, (key = createPublicKey({ key: Buffer.from(concat(SPKI_PREFIX, raw)), format: 'der', type: 'spki' })));
  return key;
}

/** The public key of a raw X25519 private key. */
export function x25519PublicKey(privateKey: Uint8Array): Uint8Array {
  const der = createPublicKey(privateKeyObject(privateKey)).export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(SPKI_PREFIX.byteLength));
}

/**
 * A fresh X25519 key pair: 32 secret random bytes as the private key (X25519 clamps them itself), and
 * its public key.
 */
export function generateKeyPair(random: RandomBytes = secureRandomBytes): KeyPair {
  const privateKey = random(X25519_KEY_BYTES);
  return { privateKey, publicKey: x25519PublicKey(privateKey) };
}

/**
 * The raw X25519 shared secret of a private key and a peer's public key.
 *
 * @throws FtlError(INVALID_MESSAGE) for a malformed or low-order public key (the secret would be all zeros).
 */
export function x25519(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  let secret: Buffer;
  try {
    secret = diffieHellman({ privateKey: privateKeyObject(privateKey), publicKey: publicKeyObject(publicKey) });
  } catch (err) {
    if (err instanceof FtlError) throw err;
    throw new FtlError(
      ErrorCode.InvalidMessage,
      'a peer public key gives no X25519 shared secret (a low-order point); the peer must send a real key',
      {
        cause: err,
      },
    );
  }
  if (secret.every((b) => b === 0))
    throw new FtlError(ErrorCode.InvalidMessage, 'a peer public key gives an all-zero X25519 secret; the peer must send a real key');
  return new Uint8Array(secret);
}

/** What a derived key is for: masking an input, or encrypting the secret shares sent to a peer. */
export type KeyPurpose = 'mask' | 'share';

/** Where a derived pairwise key belongs: a run, a round and an unordered pair of site ids. */
export interface PairContext {
  runId: string;
  round: number;
  a: number;
  b: number;
}

const SALT = new TextEncoder().encode('ftl-secagg/v1');

/**
 * HKDF-SHA256 of a shared secret into a 32-byte key bound to its purpose, run, round and pair (in either
 * order: both sites of a pair derive the same key).
 */
export function deriveKey(sharedSecret: Uint8Array, purpose: KeyPurpose, ctx: PairContext): Uint8Array {
  const lo = Math.min(ctx.a, ctx.b);
  const hi = Math.max(ctx.a, ctx.b);
  // Length-prefixed run id: no run id can be read as another run id plus a round.
  const info = new TextEncoder().encode(`${purpose}|${ctx.runId.length}:${ctx.runId}|${ctx.round}|${lo}|${hi}`);
  return new Uint8Array(hkdfSync('sha256', sharedSecret, SALT, info, 32));
}

/**
 * The pairwise key two sites share for `purpose`: X25519 of one's private key with the other's public
 * key, then {@link deriveKey}. Both sides of a pair get the same key.
 *
 * @example
 * const sUV = agreeKey(mine.privateKey, theirs.publicKey, 'mask', { runId, round, a: u, b: v });
 */
export function agreeKey(privateKey: Uint8Array, peerPublicKey: Uint8Array, purpose: KeyPurpose, ctx: PairContext): Uint8Array {
  return deriveKey(x25519(privateKey, peerPublicKey), purpose, ctx);
}
