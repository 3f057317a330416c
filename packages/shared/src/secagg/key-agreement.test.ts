import { describe, expect, test } from 'vitest';
import { expectFtlError } from '../../test-support/expect-ftl-error.js';
import { ErrorCode } from '../errors.js';
import { agreeKey, generateKeyPair, x25519, x25519PublicKey } from './key-agreement.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('X25519 key agreement and HKDF-SHA256 derivation', () => {
  test('matches RFC 7748 §6.1: both public keys and the shared secret', () => {
    const alice = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    const bob = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
    expect(toHex(x25519PublicKey(alice))).toBe('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    expect(toHex(x25519PublicKey(bob))).toBe('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
    expect(toHex(x25519(alice, x25519PublicKey(bob)))).toBe('4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742');
  });

  test('both sites of a pair derive the same key, and it is bound to purpose, run, round and pair', () => {
    const u = generateKeyPair();
    const v = generateKeyPair();
    const w = generateKeyPair();
    const ctx = { runId: 'run-a', round: 3, a: 1, b: 2 };
    const k = agreeKey(u.privateKey, v.publicKey, 'mask', ctx);
    expect(k.byteLength).toBe(32);
    expect(toHex(agreeKey(v.privateKey, u.publicKey, 'mask', { ...ctx, a: 2, b: 1 }))).toBe(toHex(k));
    const others = [
      agreeKey(u.privateKey, v.publicKey, 'share', ctx),
      agreeKey(u.privateKey, v.publicKey, 'mask', { ...ctx, runId: 'run-b' }),
      agreeKey(u.privateKey, v.publicKey, 'mask', { ...ctx, round: 4 }),
      agreeKey(u.privateKey, v.publicKey, 'mask', { ...ctx, b: 3 }),
      agreeKey(u.privateKey, w.publicKey, 'mask', ctx),
      // A run id that ends in what looks like a round is still another run.
      agreeKey(u.privateKey, v.publicKey, 'mask', { ...ctx, runId: 'run-a|3', round: 0 }),
    ].map(toHex);
    expect(new Set([toHex(k), ...others]).size).toBe(others.length + 1);
  });

  test('fresh key pairs differ', () => {
    const keys = Array.from({ length: 20 }, () => toHex(generateKeyPair().publicKey));
    expect(new Set(keys).size).toBe(20);
  });

  test('a low-order public key (all zeros) is refused, not turned into a zero secret', () => {
    expectFtlError(() => x25519(generateKeyPair().privateKey, new Uint8Array(32)), ErrorCode.InvalidMessage, /low-order point|all-zero/);
  });

  test('a key of the wrong length is refused', () => {
    expectFtlError(() => x25519(new Uint8Array(31), generateKeyPair().publicKey), ErrorCode.InvalidMessage, /private key must be 32 bytes/);
    expectFtlError(() => x25519(generateKeyPair().privateKey, new Uint8Array(33)), ErrorCode.InvalidMessage, /public key must be 32 bytes/);
  });
});
