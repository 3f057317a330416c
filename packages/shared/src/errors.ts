/**
 * Every error code ftl raises. Callers switch on `code`, never on the message. Each says whose fault it
 * is: the input's (bad config or message, unknown id, conflicting state) or the server's (its storage,
 * or a bug); docs/api.md lists them with the HTTP status the operator API answers each with.
 */
export const ErrorCode = {
  BackendUnavailable: 'BACKEND_UNAVAILABLE',
  InvalidConfig: 'INVALID_CONFIG',
  InvalidMessage: 'INVALID_MESSAGE',
  ProtocolMismatch: 'PROTOCOL_MISMATCH',
  WeightsMismatch: 'WEIGHTS_MISMATCH',
  NonFiniteWeights: 'NON_FINITE_WEIGHTS',
  SampleCount: 'SAMPLE_COUNT',
  BackboneDigestMismatch: 'BACKBONE_DIGEST_MISMATCH',
  BackboneLoad: 'BACKBONE_LOAD',
  Dataset: 'DATASET',
  Timeout: 'TIMEOUT',
  Quorum: 'QUORUM',
  Unauthorized: 'UNAUTHORIZED',
  NotFound: 'NOT_FOUND',
  Conflict: 'CONFLICT',
  /** The coordinator's database could not be read or written (disk full, file removed or locked, closed store). */
  StorageError: 'STORAGE_ERROR',
  /** A fault of the program itself, not of its input: the message is for its log, not for the peer. */
  InternalError: 'INTERNAL_ERROR',
} as const;

/** One of the values of {@link ErrorCode}. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * The one error class of ftl. Messages say what went wrong and how to fix it; `cause` keeps the
 * underlying error.
 *
 * @example
 * throw new FtlError(ErrorCode.InvalidConfig, 'rounds must be a positive integer (got -1)');
 */
export class FtlError extends Error {
  override readonly name = 'FtlError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** True when `err` is an {@link FtlError}, optionally of the given code. */
export function isFtlError(err: unknown, code?: ErrorCode): err is FtlError {
  return err instanceof FtlError && (code === undefined || err.code === code);
}
