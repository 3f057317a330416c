import { Emitter } from '@socket.io/component-emitter';
import { Packr } from 'msgpackr';
import { PacketType } from 'socket.io-parser';
import { ErrorCode, FtlError } from '../errors.js';
import { scanMessagePack } from './msgpack-scan.js';

/** Counts the bytes a parser writes and reads: the payloads of socket.io packets on the wire. */
export interface ByteCounter {
  sent: number;
  received: number;
}

/** A socket.io packet as socket.io hands it to the parser. */
interface Packet {
  type: PacketType;
  nsp: string;
  data?: unknown;
  id?: number;
}

/**
 * Event names socket.io keeps for itself, and `error`, on which a server socket reports its
 * connection's errors. A peer's EVENT packet with one of them would run the receiving side's own
 * handler (a client emitting `disconnect` ran the server's disconnect handler), so the decoder
 * refuses them.
 */
export const RESERVED_EVENT_NAMES: readonly string[] = [
  'connect',
  'connect_error',
  'disconnect',
  'disconnecting',
  'newListener',
  'removeListener',
  'error',
];

/** Options of {@link createMsgpackParser}. */
export interface MsgpackParserOptions {
  /** Frames longer than this many bytes are refused before any decoding (default: no limit here). */
  maxFrameBytes?: number;
}

// Plain MessagePack (no msgpackr records), so any MessagePack peer can read the frames. Uint8Arrays
// travel as `bin`, which is how weight buffers stay binary end to end. `undefined` is dropped from
// objects and written as nil elsewhere, as JSON does: the decoder refuses every extension type,
// msgpackr's `undefined` (fixext 0) included. 64-bit integers decode as numbers; the scan has already
// refused those outside the safe range, which would otherwise come back as BigInts.
// (`skipValues` is a msgpackr option its type declarations do not list.)
const packr = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  encodeUndefinedAsNil: true,
  int64AsType: 'number',
  ...{ skipValues: [undefined] },
});

/**
 * The MessagePack bytes of `value` exactly as the socket.io parser writes it inside a packet's frame:
 * a message's payload as it leaves (a site's audit log hashes these). MessagePack nests values as they
 * are, so these bytes appear unchanged in the frame that carries the message.
 *
 * @example
 * createHash('sha256').update(encodeMessagePack(fitResult)).digest('hex');
 */
export function encodeMessagePack(value: unknown): Uint8Array {
  // packr writes into a buffer it reuses: copy, so the caller's bytes stay as they were.
  return Uint8Array.from(packr.pack(value));
}

const reserved = new Set(RESERVED_EVENT_NAMES);

function checkPacket(p: unknown): Packet {
  const o = p as Partial<Packet> | null;
  const isEvent = o?.type === PacketType.EVENT || o?.type === PacketType.BINARY_EVENT;
  const isAck = o?.type === PacketType.ACK || o?.type === PacketType.BINARY_ACK;
  const valid =
    typeof o === 'object' &&
    o !== null &&
    typeof o.type === 'number' &&
    o.type >= PacketType.CONNECT &&
    o.type <= PacketType.BINARY_ACK &&
    typeof o.nsp === 'string' &&
    (o.id === undefined || (Number.isSafeInteger(o.id) && o.id >= 0)) &&
    (!isEvent || (Array.isArray(o.data) && typeof o.data[0] === 'string')) &&
    (!isAck || Array.isArray(o.data));
  if (!valid) throw new FtlError(ErrorCode.InvalidMessage, 'malformed socket.io packet');
  if (isEvent && reserved.has((o.data as unknown[])[0] as string)) {
    throw new FtlError(
      ErrorCode.InvalidMessage,
      `the event name "${(o.data as unknown[])[0] as string}" is reserved by socket.io; emit one of the protocol's events instead`,
    );
  }
  return o as Packet;
}

/**
 * Creates a socket.io parser (pass it as the `parser` option on both sides) that encodes every packet
 * as one binary MessagePack frame with msgpackr. Text frames, frames over `maxFrameBytes`, frames whose
 * structure {@link scanMessagePack} refuses, malformed packets and events with a name in
 * {@link RESERVED_EVENT_NAMES} are refused with FtlError(INVALID_MESSAGE), which makes socket.io drop
 * the connection rather than deliver them.
 *
 * @example
 * const parser = createMsgpackParser(counter, { maxFrameBytes: 64 << 20 });
 * new Server(http, { parser }); io(url, { parser });
 */
export function createMsgpackParser(
  counter?: ByteCounter,
  options: MsgpackParserOptions = {},
): { Encoder: new () => unknown; Decoder: new () => unknown } {
  const maxFrameBytes = options.maxFrameBytes ?? Infinity;
  class Encoder {
    encode(packet: Packet): Uint8Array[] {
      const frame = packr.pack(packet);
      if (counter) counter.sent += frame.byteLength;
      return [frame];
    }
  }
  class Decoder extends Emitter<Record<string, never>, Record<string, never>, { decoded: (packet: Packet) => void }> {
    add(chunk: unknown): void {
      if (!(chunk instanceof Uint8Array) && !(chunk instanceof ArrayBuffer)) {
        throw new FtlError(ErrorCode.InvalidMessage, 'ftl expects binary MessagePack frames, got text');
      }
      const bytes = chunk instanceof Uint8Array ? chunk : new Uint8Array(chunk);
      if (counter) counter.received += bytes.byteLength;
      if (bytes.byteLength > maxFrameBytes) {
        throw new FtlError(
          ErrorCode.InvalidMessage,
          `refused a frame of ${bytes.byteLength} bytes: the limit is ${maxFrameBytes}; send smaller messages`,
        );
      }
      scanMessagePack(bytes);
      let packet: unknown;
      try {
        packet = packr.unpack(bytes);
      } catch (err) {
        throw new FtlError(ErrorCode.InvalidMessage, `undecodable MessagePack frame: ${(err as Error).message}`, { cause: err });
      }
      this.emitReserved('decoded', checkPacket(packet));
    }
    destroy(): void {}
  }
  return { Encoder, Decoder };
}
