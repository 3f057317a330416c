import type { z } from 'zod';
import {
  AckSchema,
  ClassSumsInstructionSchema,
  ClassSumsResultSchema,
  ClientFailureSchema,
  EvaluateInstructionSchema,
  EvaluateResultSchema,
  FitInstructionSchema,
  FitResultSchema,
  GoodbyeSchema,
  HandshakeAuthSchema,
  PersonalizeInstructionSchema,
  PersonalizeResultSchema,
  ReadySchema,
  SecAggAdvertiseSchema,
  SecAggDeliverySchema,
  SecAggDirectorySchema,
  SecAggMaskedInputSchema,
  SecAggSharesSchema,
  SecAggUnmaskSchema,
  SecAggUnmaskSharesSchema,
  RunEndSchema,
  TableEncodingMessageSchema,
  WelcomeSchema,
  type Ack,
  type ClassSumsInstruction,
  type ClassSumsResult,
  type ClientFailure,
  type EvaluateInstruction,
  type Goodbye,
  type EvaluateResult,
  type FitInstruction,
  type FitResult,
  type PersonalizeInstruction,
  type PersonalizeResult,
  type Ready,
  type SecAggAdvertise,
  type SecAggDelivery,
  type SecAggDirectory,
  type SecAggMaskedInput,
  type SecAggShares,
  type SecAggUnmask,
  type SecAggUnmaskShares,
  type RunEnd,
  type TableEncodingMessage,
  type Welcome,
} from './messages.js';

/**
 * Events the coordinator emits to a client. Typed for `new Server<ClientToServerEvents, ServerToClientEvents>()`
 * and `io(): Socket<ServerToClientEvents, ClientToServerEvents>`.
 */
export interface ServerToClientEvents {
  welcome: (message: Welcome) => void;
  fit: (message: FitInstruction) => void;
  evaluate: (message: EvaluateInstruction) => void;
  personalize: (message: PersonalizeInstruction) => void;
  'class-sums': (message: ClassSumsInstruction) => void;
  'table-encoding': (message: TableEncodingMessage) => void;
  /** Secure aggregation, phases 1–3 of a round (the fit instruction starts phase 0). */
  'secagg-directory': (message: SecAggDirectory) => void;
  'secagg-delivery': (message: SecAggDelivery) => void;
  'secagg-unmask': (message: SecAggUnmask) => void;
  'run-end': (message: RunEnd) => void;
  goodbye: (message: Goodbye) => void;
}

/**
 * Events a client emits to the coordinator. The coordinator receives every payload as `unknown` and
 * runs it through the matching `parse*` validator before use; the acknowledgement says accepted or why not.
 */
export interface ClientToServerEvents {
  ready: (message: Ready, ack: (ack: Ack) => void) => void;
  'fit-result': (message: FitResult, ack: (ack: Ack) => void) => void;
  'evaluate-result': (message: EvaluateResult, ack: (ack: Ack) => void) => void;
  'personalize-result': (message: PersonalizeResult, ack: (ack: Ack) => void) => void;
  'class-sums-result': (message: ClassSumsResult, ack: (ack: Ack) => void) => void;
  /** Secure aggregation, phases 0–3 of a round: a site's answers in place of a fit-result. */
  'secagg-advertise': (message: SecAggAdvertise, ack: (ack: Ack) => void) => void;
  'secagg-shares': (message: SecAggShares, ack: (ack: Ack) => void) => void;
  'secagg-masked-input': (message: SecAggMaskedInput, ack: (ack: Ack) => void) => void;
  'secagg-unmask-shares': (message: SecAggUnmaskShares, ack: (ack: Ack) => void) => void;
  failure: (message: ClientFailure) => void;
}

/** The payload an event's listener receives. */
type PayloadOf<F> = F extends (message: infer M, ...rest: never[]) => void ? M : never;
/** One schema per event, whose output is the event's payload: an event without one does not compile. */
type SchemaPerEvent<Events> = { [E in keyof Events]: z.ZodType<PayloadOf<Events[E]>> };

/** The schema of every event the coordinator emits, by event name. */
export const SERVER_TO_CLIENT_SCHEMAS = {
  welcome: WelcomeSchema,
  fit: FitInstructionSchema,
  evaluate: EvaluateInstructionSchema,
  personalize: PersonalizeInstructionSchema,
  'class-sums': ClassSumsInstructionSchema,
  'table-encoding': TableEncodingMessageSchema,
  'secagg-directory': SecAggDirectorySchema,
  'secagg-delivery': SecAggDeliverySchema,
  'secagg-unmask': SecAggUnmaskSchema,
  'run-end': RunEndSchema,
  goodbye: GoodbyeSchema,
} as const satisfies SchemaPerEvent<ServerToClientEvents>;

/** The schema of every event a client emits, by event name. */
export const CLIENT_TO_SERVER_SCHEMAS = {
  ready: ReadySchema,
  'fit-result': FitResultSchema,
  'evaluate-result': EvaluateResultSchema,
  'personalize-result': PersonalizeResultSchema,
  'class-sums-result': ClassSumsResultSchema,
  'secagg-advertise': SecAggAdvertiseSchema,
  'secagg-shares': SecAggSharesSchema,
  'secagg-masked-input': SecAggMaskedInputSchema,
  'secagg-unmask-shares': SecAggUnmaskSharesSchema,
  failure: ClientFailureSchema,
} as const satisfies SchemaPerEvent<ClientToServerEvents>;

/**
 * Every payload the protocol validates, by event name, plus the handshake's `auth` and the coordinator's
 * acknowledgement `ack`.
 */
export const PROTOCOL_SCHEMAS = {
  ...SERVER_TO_CLIENT_SCHEMAS,
  ...CLIENT_TO_SERVER_SCHEMAS,
  auth: HandshakeAuthSchema,
  ack: AckSchema,
} as const;
