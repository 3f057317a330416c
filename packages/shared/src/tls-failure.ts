// Node's TLS verification codes, grouped by what the person at the failing end has to do about them.

/** Verification codes meaning "no CA this side trusts signed the certificate". */
const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_CHAIN_TOO_LONG',
  'INVALID_CA',
]);
const NOT_VALID_NOW = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CRL_HAS_EXPIRED']);

/** Why a TLS peer's certificate was refused: not signed by a trusted CA, outside its dates, or for another host. */
export type TlsFailure = 'untrusted' | 'not-valid-now' | 'wrong-name';

/**
 * Classifies a Node error code from a TLS connection; `undefined` when the code is no certificate refusal.
 *
 * @example
 * tlsFailure('DEPTH_ZERO_SELF_SIGNED_CERT') // 'untrusted'
 */
export function tlsFailure(code: string): TlsFailure | undefined {
  if (UNTRUSTED.has(code)) return 'untrusted';
  if (NOT_VALID_NOW.has(code)) return 'not-valid-now';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return 'wrong-name';
  return undefined;
}
