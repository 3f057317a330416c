import { Emitter } from '@socket.io/component-emitter';
import { Packr } from 'msgpackr';
import { PacketType } from 'socket.io-parser';
import { ErrorCode, FtlError } from '../errors.js';

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

// Plain MessagePack (no msgpackr records), so any MessagePack peer can read the frames. Uint8Arrays
// travel as `bin`, which is how weight buffers stay binary end to end.
const packr = new Packr({ useRecords: false, mapsAsObjects: true });

function checkPacket(p: unknown): Packet {
  const o = p as Partial<Packet> | null;
  const valid =
    typeof o === 'object' && o !== null &&
    typeof o.type === 'number' && o.type >= PacketType.CONNECT && o.type <= PacketType.BINARY_ACK &&
    typeof o.nsp === 'string' &&
    (o.id === undefined || (Number.isInteger(o.id) && o.id >= 0)) &&
    (o.type !== PacketType.EVENT || (Array.isArray(o.data) && typeof o.data[0] === 'string')) &&
    (o.type !== PacketType.ACK || Array.isArray(o.data));
  if (!valid) throw new FtlError(ErrorCode.InvalidMessage, 'malformed socket.io packet');
  return o as Packet;
}

/**
 * Creates a socket.io parser (pass it as the `parser` option on both sides) that encodes every packet
 * as one binary MessagePack frame with msgpackr. Text frames and malformed packets are refused, which
 * makes socket.io drop the connection rather than deliver garbage.
 *
 * @example
 * const parser = createMsgpackParser(counter);
 * new Server(http, { parser }); io(url, { parser });
 */
export function createMsgpackParser(counter?: ByteCounter): { Encoder: new () => unknown; Decoder: new () => unknown } {
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
