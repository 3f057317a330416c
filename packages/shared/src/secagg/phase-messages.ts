import { z } from 'zod';
import { integerIn, list, record } from '../protocol/fields.js';
import { SEALED_SHARES_BYTES, SHARE_BYTES, X25519_KEY_BYTES } from './sizes.js';

// What the sites and the coordinator say to each other in each phase of secure aggregation, as zod
// schemas: plain data (numbers, lists, bytes) that msgpackr carries as it is. The protocol's messages
// (protocol/messages.ts) spread these fields beside the run envelope; the state machines take the types.
// This file imports no crypto, so the protocol stays free of Node built-ins.

/** The most sites one round of secure aggregation takes. */
export const MAX_SECAGG_SITES = 10_000;

/** A site's id in one round of secure aggregation: its Shamir point, 1…MAX_SECAGG_SITES. */
export const siteId = () => integerIn(1, MAX_SECAGG_SITES);
// Binary data of any backing buffer (msgpackr hands out views into its own), never read byte by byte here.
const bytes = () => z.custom<Uint8Array>((v) => v instanceof Uint8Array, { error: 'binary data' });
const bytesOf = (n: number) => bytes().refine((b) => b.byteLength === n, { error: `${n} bytes`, abort: true });
const siteIds = () => list(siteId(), MAX_SECAGG_SITES);

/** Server → site: who the site is this round, its neighbours (ids, not itself) and the threshold t. */
export const SECAGG_SETUP_FIELDS = {
  self: siteId(),
  neighbours: siteIds(),
  threshold: integerIn(1, MAX_SECAGG_SITES),
};
export const SecAggSetupSchema = record(SECAGG_SETUP_FIELDS);
export type SecAggSetup = z.infer<typeof SecAggSetupSchema>;

/** Phase 0, site → server: its two fresh X25519 public keys, for share encryption (c) and for masks (s). */
export const ADVERTISE_KEYS_FIELDS = {
  cPublicKey: bytesOf(X25519_KEY_BYTES),
  sPublicKey: bytesOf(X25519_KEY_BYTES),
};
export const AdvertiseKeysSchema = record(ADVERTISE_KEYS_FIELDS);
export type AdvertiseKeys = z.infer<typeof AdvertiseKeysSchema>;

/** Phase 1, server → site: the keys of the neighbours who advertised theirs. */
export const KEY_DIRECTORY_FIELDS = {
  keys: list(record({ id: siteId(), ...ADVERTISE_KEYS_FIELDS }), MAX_SECAGG_SITES),
};
export const KeyDirectorySchema = record(KEY_DIRECTORY_FIELDS);
export type KeyDirectory = z.infer<typeof KeyDirectorySchema>;

/**
 * Phase 1, site → server: for each neighbour in its directory, that neighbour's shares, sealed for it; and
 * a SHA-256 commitment to its self-mask seed, against which the coordinator checks the seed it rebuilds.
 */
export const SHARES_OUT_FIELDS = {
  shares: list(record({ to: siteId(), sealed: bytesOf(SEALED_SHARES_BYTES) }), MAX_SECAGG_SITES),
  seedCommitment: bytesOf(32),
};
export const SharesOutSchema = record(SHARES_OUT_FIELDS);
export type SharesOut = z.infer<typeof SharesOutSchema>;

/** Phase 2, server → site: the sealed shares its neighbours made for it. Their senders are the peers it masks with. */
export const SHARES_IN_FIELDS = {
  shares: list(record({ from: siteId(), sealed: bytesOf(SEALED_SHARES_BYTES) }), MAX_SECAGG_SITES),
};
export const SharesInSchema = record(SHARES_IN_FIELDS);
export type SharesIn = z.infer<typeof SharesInSchema>;

/** Phase 2, site → server: its masked input, ring words as little-endian bytes (4 per word; the length is checked against the round). */
export const MASKED_INPUT_FIELDS = {
  masked: bytes(),
};
export const MaskedInputSchema = record(MASKED_INPUT_FIELDS);
export type MaskedInput = z.infer<typeof MaskedInputSchema>;

/**
 * Phase 3, server → site: which of the peers it masked with sent masked inputs (`survivors`, the site
 * itself among them) and which did not (`dropped`). The site reveals self-mask seed shares of the first
 * and mask-key shares of the second, never both for one peer.
 */
export const UNMASK_REQUEST_FIELDS = {
  survivors: siteIds(),
  dropped: siteIds(),
};
export const UnmaskRequestSchema = record(UNMASK_REQUEST_FIELDS);
export type UnmaskRequest = z.infer<typeof UnmaskRequestSchema>;

const revealed = () => list(record({ of: siteId(), share: bytesOf(SHARE_BYTES) }), MAX_SECAGG_SITES);

/** Phase 3, site → server: its shares of each survivor's self-mask seed and of each dropped peer's mask private key. */
export const UNMASK_SHARES_FIELDS = {
  seedShares: revealed(),
  keyShares: revealed(),
};
export const UnmaskSharesSchema = record(UNMASK_SHARES_FIELDS);
export type UnmaskShares = z.infer<typeof UnmaskSharesSchema>;

/** Ring words as the bytes a {@link MaskedInput} carries (little-endian, 4 per word). */
export function wordsToBytes(words: Uint32Array): Uint8Array {
  const out = new Uint8Array(words.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < words.length; i++) view.setUint32(i * 4, words[i]!, true);
  return out;
}

/** The ring words a {@link MaskedInput}'s bytes hold; the byte length must be 4 per word. */
export function bytesToWords(bytes: Uint8Array): Uint32Array {
  const out = new Uint32Array(bytes.byteLength >>> 2);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = view.getUint32(i * 4, true);
  return out;
}
