import { createCipheriv, createDecipheriv } from 'node:crypto';
import { ErrorCode, FtlError } from '../errors.js';
import { type RandomBytes, secureRandomBytes } from './key-agreement.js';
import { SEALED_SHARES_BYTES, SHARE_BYTES } from './sizes.js';

// A site's two shares for one peer (of its mask private key and of its self-mask seed) travel through the
// coordinator sealed with AES-256-GCM under the pair's share key, so the coordinator relays them without
// reading them. The associated data binds a ciphertext to its run, round, sender and recipient: one
// replayed to another pair or round fails to open.

const IV_BYTES = 12;
const PLAIN_BYTES = 8 + 2 * SHARE_BYTES;

/** What one site gives one peer: its shares of its own mask private key and self-mask seed, at the peer's point. */
export interface ShareBundle {
  from: number;
  to: number;
  keyShare: Uint8Array;
  seedShare: Uint8Array;
}

function associatedData(runId: string, round: number, from: number, to: number): Uint8Array {
  return new TextEncoder().encode(`ftl-secagg/v1 shares|${runId.length}:${runId}|${round}|${from}|${to}`);
}

/** Seals a share bundle for its recipient under their 32-byte pairwise share key. */
export function sealShares(
  key: Uint8Array,
  bundle: ShareBundle,
  ctx: { runId: string; round: number },
  random: RandomBytes = secureRandomBytes,
): Uint8Array {
  const plain = new Uint8Array(PLAIN_BYTES);
  const view = new DataView(plain.buffer);
  view.setUint32(0, bundle.from, true);
  view.setUint32(4, bundle.to, true);
  plain.set(bundle.keyShare, 8);
  plain.set(bundle.seedShare, 8 + SHARE_BYTES);
  const iv = random(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(associatedData(ctx.runId, ctx.round, bundle.from, bundle.to));
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  const out = new Uint8Array(SEALED_SHARES_BYTES);
  out.set(iv, 0);
  out.set(body, IV_BYTES);
  out.set(cipher.getAuthTag(), IV_BYTES + PLAIN_BYTES);
  return out;
}

/**
 * Opens a share bundle sealed by `from` for `to`.
 *
 * @throws FtlError(INVALID_MESSAGE) when it is not the right size, fails authentication (another key,
 *   pair, round or run, or altered on the way), or names another sender or recipient.
 */
export function openShares(key: Uint8Array, sealed: Uint8Array, ctx: { runId: string; round: number; from: number; to: number }): ShareBundle {
  if (sealed.byteLength !== SEALED_SHARES_BYTES) {
    throw new FtlError(
      ErrorCode.InvalidMessage,
      `sealed shares from site ${ctx.from} must be ${SEALED_SHARES_BYTES} bytes (got ${sealed.byteLength})`,
    );
  }
  let plain: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_BYTES));
    decipher.setAAD(associatedData(ctx.runId, ctx.round, ctx.from, ctx.to));
    decipher.setAuthTag(sealed.subarray(IV_BYTES + PLAIN_BYTES));
    plain = Buffer.concat([decipher.update(sealed.subarray(IV_BYTES, IV_BYTES + PLAIN_BYTES)), decipher.final()]);
  } catch (err) {
    throw new FtlError(
      ErrorCode.InvalidMessage,
      `sealed shares from site ${ctx.from} to site ${ctx.to} fail authentication; they were altered or are not for this pair and round`,
      {
        cause: err,
      },
    );
  }
  const view = new DataView(plain.buffer, plain.byteOffset, plain.byteLength);
  const from = view.getUint32(0, true);
  const to = view.getUint32(4, true);
  if (from !== ctx.from || to !== ctx.to) {
    throw new FtlError(ErrorCode.InvalidMessage, `sealed shares claim to be from site ${from} to site ${to}, not from ${ctx.from} to ${ctx.to}`);
  }
  return {
    from,
    to,
    keyShare: new Uint8Array(plain.subarray(8, 8 + SHARE_BYTES)),
    seedShare: new Uint8Array(plain.subarray(8 + SHARE_BYTES, 8 + 2 * SHARE_BYTES)),
  };
}
