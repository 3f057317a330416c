import type { EncodedWeights } from '../codec/weights.js';
import { ErrorCode, FtlError } from '../errors.js';
import {
  AckSchema,
  ClassSumsInstructionSchema,
  ClassSumsResultSchema,
  ClientFailureSchema,
  EncodedWeightsSchema,
  EvaluateInstructionSchema,
  EvaluateResultSchema,
  FitInstructionSchema,
  FitResultSchema,
  GoodbyeSchema,
  HandshakeAuthSchema,
  PersonalizeInstructionSchema,
  PersonalizeResultSchema,
  ReadySchema,
  RunEndSchema,
  SiteNameSchema,
  WelcomeSchema,
  type Ack,
  type ClassSumsInstruction,
  type ClassSumsResult,
  type ClientFailure,
  type EvaluateInstruction,
  type EvaluateResult,
  type FitInstruction,
  type FitResult,
  type Goodbye,
  type HandshakeAuth,
  type PersonalizeInstruction,
  type PersonalizeResult,
  type Ready,
  type RejectReason,
  type Rejection,
  type RunEnd,
  type Welcome,
} from './messages.js';
import { validate } from './validate.js';

// Validators turn `unknown` (a decoded msgpack value) into a protocol type by its schema (messages.ts),
// or throw an FtlError whose message names the field, what it must be and what it was.

/** Validates wire weights: specs, and binary data of 4 bytes per value they describe (else `wrong-shape`). */
export function parseEncodedWeights(v: unknown, path = 'weights'): EncodedWeights {
  return validate(EncodedWeightsSchema, v, path);
}

/**
 * Checks a site (client) name, wherever one comes from: the handshake, the operator's `clients add`, a
 * token file. A name is 1–128 letters, digits, `.`, `_` or `-` and starts with a letter or digit, which
 * also rules out `.`, `..` and `__proto__`; `constructor` and `prototype` are refused too.
 *
 * @throws FtlError(INVALID_MESSAGE) saying the rule.
 * @example
 * const name = checkSiteName(body.name, 'clients add name');
 */
export function checkSiteName(name: unknown, path = 'site name'): string {
  return validate(SiteNameSchema, name, path);
}

/** Validates the socket.io handshake's `auth`. */
export function parseHandshakeAuth(v: unknown): HandshakeAuth {
  return validate(HandshakeAuthSchema, v, 'auth');
}

/** Validates a `ready` message. */
export function parseReady(v: unknown): Ready {
  return validate(ReadySchema, v, 'ready');
}

/** Validates a `fit-result` message (structure only; the coordinator then checks it against the round). */
export function parseFitResult(v: unknown): FitResult {
  return validate(FitResultSchema, v, 'fit-result');
}

/** Validates an `evaluate-result` message. */
export function parseEvaluateResult(v: unknown): EvaluateResult {
  return validate(EvaluateResultSchema, v, 'evaluate-result');
}

/** Validates a `failure` message. */
export function parseClientFailure(v: unknown): ClientFailure {
  return validate(ClientFailureSchema, v, 'failure');
}

/** Validates a `welcome` message. */
export function parseWelcome(v: unknown): Welcome {
  return validate(WelcomeSchema, v, 'welcome');
}

/** Validates a `fit` instruction. */
export function parseFitInstruction(v: unknown): FitInstruction {
  return validate(FitInstructionSchema, v, 'fit');
}

/** Validates an `evaluate` instruction. */
export function parseEvaluateInstruction(v: unknown): EvaluateInstruction {
  return validate(EvaluateInstructionSchema, v, 'evaluate');
}

/** Validates a `personalize` instruction. */
export function parsePersonalizeInstruction(v: unknown): PersonalizeInstruction {
  return validate(PersonalizeInstructionSchema, v, 'personalize');
}

/** Validates a `personalize-result` message. */
export function parsePersonalizeResult(v: unknown): PersonalizeResult {
  return validate(PersonalizeResultSchema, v, 'personalize-result');
}

/** Validates a `class-sums` instruction. */
export function parseClassSumsInstruction(v: unknown): ClassSumsInstruction {
  return validate(ClassSumsInstructionSchema, v, 'class-sums');
}

/**
 * Validates a `class-sums-result` message's structure: one tensor named `class-sums` of shape
 * `[classes, featureDim]`, and one count per class, each a non-negative integer, adding up to at least 1.
 * A count that is a number but no such integer is a `bad-sample-count` (FtlError SAMPLE_COUNT). The
 * coordinator then checks the shape against the run, the values for finiteness and the total against
 * what the site declared.
 */
export function parseClassSumsResult(v: unknown): ClassSumsResult {
  return validate(ClassSumsResultSchema, v, 'class-sums-result');
}

/** Validates a `run-end` message. */
export function parseRunEnd(v: unknown): RunEnd {
  return validate(RunEndSchema, v, 'run-end');
}

/** Validates a `goodbye` message. */
export function parseGoodbye(v: unknown): Goodbye {
  return validate(GoodbyeSchema, v, 'goodbye');
}

/** Validates an acknowledgement; a refusal's reason must be one of the protocol's {@link RejectReason}s. */
export function parseAck(v: unknown): Ack {
  return validate(AckSchema, v, 'ack');
}

/**
 * Builds a rejection from an error thrown by a validator or a check on a message, by its code:
 * PROTOCOL_MISMATCH → `protocol-mismatch`, WEIGHTS_MISMATCH → `wrong-shape`, NON_FINITE_WEIGHTS →
 * `non-finite`, SAMPLE_COUNT → `bad-sample-count`, DATASET (channel statistics) → `bad-statistics`,
 * anything else → `malformed`.
 */
export function rejectionFor(err: unknown): Rejection {
  if (err instanceof FtlError) {
    const reason: RejectReason =
      err.code === ErrorCode.ProtocolMismatch
        ? 'protocol-mismatch'
        : err.code === ErrorCode.WeightsMismatch
          ? 'wrong-shape'
          : err.code === ErrorCode.NonFiniteWeights
            ? 'non-finite'
            : err.code === ErrorCode.SampleCount
              ? 'bad-sample-count'
              : err.code === ErrorCode.Dataset
                ? 'bad-statistics'
                : 'malformed';
    return { accepted: false, reason, message: err.message };
  }
  return { accepted: false, reason: 'malformed', message: err instanceof Error ? err.message : String(err) };
}
