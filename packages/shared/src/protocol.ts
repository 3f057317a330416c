/**
 * `@ftl/shared/protocol`: what the coordinator and the clients say to each other. The message schemas
 * and their types, the `parse*` validators for every inbound message, the typed socket.io event maps,
 * the weights codec and the msgpack socket.io parser, the live channel's interfaces and its in-process
 * hub (`createInprocHub`). Imports no tfjs and does no I/O; the package's boundary test fails if a
 * file reachable from here does.
 *
 * @example
 * import { parseFitResult, type ServerToClientEvents } from '@ftl/shared/protocol';
 */
export * from './protocol/messages.js';
export type { ClientToServerEvents, ServerToClientEvents } from './protocol/events.js';
export {
  checkSiteName,
  parseAck,
  parseClassSumsInstruction,
  parseClassSumsResult,
  parseClientFailure,
  parseEncodedWeights,
  parseEvaluateInstruction,
  parseEvaluateResult,
  parseFitInstruction,
  parseFitResult,
  parseGoodbye,
  parseHandshakeAuth,
  parsePayload,
  parsePersonalizeInstruction,
  parsePersonalizeResult,
  parseReady,
  parseRunEnd,
  parseTableEncodingMessage,
  parseWelcome,
  rejectionFor,
  type ProtocolPayload,
  type ProtocolPayloadName,
} from './protocol/parse.js';
export { statsInconsistency, type ChannelSummary } from './protocol/stats-consistency.js';
export type * from './protocol/channel.js';
export { createInprocHub, type InprocHub } from './protocol/inproc-channel.js';

export {
  assertSameSpecs,
  decodeWeights,
  encodeWeights,
  firstNonFinite,
  shapeSize,
  specsSize,
  tensorsByName,
  type EncodedWeights,
  type WeightDtype,
  type WeightSpec,
  type Weights,
} from './codec/weights.js';
export {
  createMsgpackParser,
  encodeMessagePack,
  RESERVED_EVENT_NAMES,
  type ByteCounter,
  type MsgpackParserOptions,
} from './codec/socketio-parser.js';
export { FORBIDDEN_MAP_KEYS, MAX_MESSAGEPACK_DEPTH, scanMessagePack } from './codec/msgpack-scan.js';
