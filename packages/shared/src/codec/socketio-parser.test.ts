import { PacketType } from 'socket.io-parser';
import { describe, expect, test } from 'vitest';
import { encodeWeights, decodeWeights } from './weights.js';
import { createMsgpackParser, type ByteCounter } from './socketio-parser.js';

type Coder = { encode(p: unknown): Uint8Array[] };
type Dec = { add(c: unknown): void; on(e: 'decoded', f: (p: unknown) => void): void };

function pair(counter?: ByteCounter) {
  const { Encoder, Decoder } = createMsgpackParser(counter);
  return { enc: new Encoder() as Coder, dec: new Decoder() as Dec };
}

describe('msgpack socket.io parser', () => {
  test('an event with binary weights round-trips as one binary frame, and the bytes are counted', () => {
    const counter = { sent: 0, received: 0 };
    const { enc, dec } = pair(counter);
    const values = Float32Array.of(0.5, -1.25, 3e-8);
    const packet = { type: PacketType.EVENT, nsp: '/', id: 3, data: ['fit-result', { round: 2, weights: encodeWeights({ specs: [{ name: 'w', shape: [3], dtype: 'float32' }], values }) }] };
    const frames = enc.encode(packet);
    expect(frames).toHaveLength(1);
    expect(frames[0]).toBeInstanceOf(Uint8Array);
    let got: any;
    dec.on('decoded', (p) => (got = p));
    dec.add(frames[0]);
    expect(got.type).toBe(PacketType.EVENT);
    expect(got.id).toBe(3);
    expect(got.data[0]).toBe('fit-result');
    expect(Array.from(decodeWeights(got.data[1].weights).values)).toEqual(Array.from(values));
    expect(counter.sent).toBe(frames[0]!.byteLength);
    expect(counter.received).toBe(frames[0]!.byteLength);
  });

  test.each([
    ['a text frame', '2["fit"]', /binary MessagePack frames, got text/],
    ['a truncated msgpack frame', new Uint8Array([0x92, 0x01]), /undecodable MessagePack frame/],
    ['a packet with an unknown type', null, /malformed socket.io packet/],
    ['an event without a name', 'no-name', /malformed socket.io packet/],
  ])('refuses %s', (_, input, message) => {
    const { enc, dec } = pair();
    let chunk: unknown = input;
    if (input === null) chunk = enc.encode({ type: 42, nsp: '/' })[0];
    if (input === 'no-name') chunk = enc.encode({ type: PacketType.EVENT, nsp: '/', data: [17] })[0];
    expect(() => dec.add(chunk)).toThrow(message);
  });
});
