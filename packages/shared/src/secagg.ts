/**
 * `@ftl/shared/secagg`: secure aggregation (Bonawitz et al. 2017, with the SecAgg+ neighbourhoods of Bell
 * et al. 2020), so the coordinator learns only the sum of the sites' updates. Fixed-point quantisation into
 * the ring Z_{2^32}; X25519 key agreement and HKDF-SHA256; masks expanded with AES-256-CTR; Shamir sharing
 * over the field of 2^521 − 1; shares sealed with AES-256-GCM; and the two state machines, a site's and
 * the coordinator's, with no sockets. Uses `node:crypto`; the phases' wire schemas are in `phase-messages`,
 * which the protocol imports without crypto.
 *
 * @example
 * import { SecAggServer, SecAggSite, quantize, ringScale } from '@ftl/shared/secagg';
 */
export {
  addInto,
  checkNoWrap,
  dequantizeSum,
  quantize,
  type Quantization,
  RING_BITS,
  ringScale,
  type Rounding,
  subtractFrom,
} from './secagg/quantize.js';
export { aes256CtrKeystream, expandMask, MASK_KEY_BYTES } from './secagg/mask-prg.js';
export {
  agreeKey,
  deriveKey,
  generateKeyPair,
  type KeyPair,
  type KeyPurpose,
  type PairContext,
  type RandomBytes,
  secureRandomBytes,
  x25519,
  x25519PublicKey,
} from './secagg/key-agreement.js';
export { reconstructSecret, SECRET_BYTES, SHAMIR_PRIME, type Share, shareSecret } from './secagg/shamir.js';
export { openShares, sealShares, type ShareBundle } from './secagg/share-cipher.js';
export { SEALED_SHARES_BYTES, SHARE_BYTES, X25519_KEY_BYTES } from './secagg/sizes.js';
export { graphDegree, neighbourGraph } from './secagg/neighbour-graph.js';
export { checkThreshold, defaultThreshold } from './secagg/threshold.js';
export { noiseShareStd } from './secagg/noise-share.js';
export {
  ADVERTISE_KEYS_FIELDS,
  type AdvertiseKeys,
  AdvertiseKeysSchema,
  bytesToWords,
  KEY_DIRECTORY_FIELDS,
  type KeyDirectory,
  KeyDirectorySchema,
  MASKED_INPUT_FIELDS,
  type MaskedInput,
  MaskedInputSchema,
  MAX_SECAGG_SITES,
  SECAGG_SETUP_FIELDS,
  type SecAggSetup,
  SecAggSetupSchema,
  SHARES_IN_FIELDS,
  SHARES_OUT_FIELDS,
  type SharesIn,
  SharesInSchema,
  type SharesOut,
  SharesOutSchema,
  siteId,
  UNMASK_REQUEST_FIELDS,
  UNMASK_SHARES_FIELDS,
  type UnmaskRequest,
  UnmaskRequestSchema,
  type UnmaskShares,
  UnmaskSharesSchema,
  wordsToBytes,
} from './secagg/phase-messages.js';
export { type SecAggRound, SecAggSite } from './secagg/secagg-site.js';
export { type SecAggOutcome, SecAggServer, type SecAggServerOptions, type SecAggServerPhase } from './secagg/secagg-server.js';
