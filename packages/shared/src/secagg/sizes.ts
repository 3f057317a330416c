// The byte sizes of what secure aggregation sends, in one place: the wire schemas check them and the
// cryptography produces them. Nothing here imports crypto, so the protocol can use these too.

/** Bytes of an X25519 public or private key. */
export const X25519_KEY_BYTES = 32;
/** Bytes of a share's value: one element of the field of 2^521 − 1, big-endian. */
export const SHARE_BYTES = 66;
/** Bytes of one sealed pair of shares: a 12-byte IV, the sender and recipient ids (4 bytes each), two shares, a 16-byte GCM tag. */
export const SEALED_SHARES_BYTES = 12 + 8 + 2 * SHARE_BYTES + 16;
