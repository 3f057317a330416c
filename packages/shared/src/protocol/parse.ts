import type { z } from 'zod';
import type { EncodedWeights } from '../codec/weights.js';
import { ErrorCode, FtlError } from '../errors.js';
import { PROTOCOL_SCHEMAS } from './events.js';
import { EncodedWeightsSchema, SiteNameSchema, type RejectReason, type Rejection } from './messages.js';
import { validate } from './validate.js';

// Validators turn `unknown` (a decoded msgpack value) into a protocol type by its schema (messages.ts),
// or throw an FtlError whose message names the field, what it must be and what it was. Every message's
// validator is its event's schema in PROTOCOL_SCHEMAS (events.ts), with the event's name as the path.

/** The name of every payload the protocol validates: the events both ways, `auth` and `ack`. */
export type ProtocolPayloadName = keyof typeof PROTOCOL_SCHEMAS;
/** The type of a payload by its name, as its schema outputs it. */
export type ProtocolPayload<N extends ProtocolPayloadName> = z.output<(typeof PROTOCOL_SCHEMAS)[N]>;

/**
 * Validates a payload by its event name against the event's schema.
 *
 * @throws FtlError (INVALID_MESSAGE, or the code the failed rule carries) naming the field.
 * @example
 * const result = parsePayload('fit-result', decoded);
 */
export function parsePayload<N extends ProtocolPayloadName>(name: N, v: unknown): ProtocolPayload<N> {
  // The table pairs each name with its schema; TypeScript cannot follow a generic index into it.
  return validate<unknown>(PROTOCOL_SCHEMAS[name], v, name) as ProtocolPayload<N>;
}

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

/** A validator for one payload, named for its event. */
const parserFor =
  <N extends ProtocolPayloadName>(name: N) =>
  (v: unknown): ProtocolPayload<N> =>
    parsePayload(name, v);

/** The socket.io handshake's `auth`. */
export const parseHandshakeAuth = parserFor('auth');
/** A `ready` message. */
export const parseReady = parserFor('ready');
/** A `fit-result` message (structure only; the coordinator then checks it against the round). */
export const parseFitResult = parserFor('fit-result');
/** An `evaluate-result` message. */
export const parseEvaluateResult = parserFor('evaluate-result');
/** A `failure` message. */
export const parseClientFailure = parserFor('failure');
/** A `welcome` message. */
export const parseWelcome = parserFor('welcome');
/** A `fit` instruction. */
export const parseFitInstruction = parserFor('fit');
/** An `evaluate` instruction. */
export const parseEvaluateInstruction = parserFor('evaluate');
/** A `personalize` instruction. */
export const parsePersonalizeInstruction = parserFor('personalize');
/** A `personalize-result` message. */
export const parsePersonalizeResult = parserFor('personalize-result');
/** A `table-encoding` message: how a tabular run encodes its columns. */
export const parseTableEncodingMessage = parserFor('table-encoding');
/** A `class-sums` instruction. */
export const parseClassSumsInstruction = parserFor('class-sums');
/**
 * A `class-sums-result` message's structure: one tensor named `class-sums` of shape `[classes, featureDim]`,
 * and one count per class, each a non-negative integer, adding up to at least 1. A count that is a number
 * but no such integer is a `bad-sample-count` (FtlError SAMPLE_COUNT). The coordinator then checks the
 * shape against the run, the values for finiteness and the total against what the site declared.
 */
export const parseClassSumsResult = parserFor('class-sums-result');
/** A `run-end` message. */
export const parseRunEnd = parserFor('run-end');
/** A `goodbye` message. */
export const parseGoodbye = parserFor('goodbye');
/** An acknowledgement; a refusal's reason must be one of the protocol's {@link RejectReason}s. */
export const parseAck = parserFor('ack');

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
