import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { Server } from 'socket.io';
import { io, type Socket as ClientSocket } from 'socket.io-client';
import { PacketType } from 'socket.io-parser';
import { afterEach, describe, expect, test } from 'vitest';
import { ErrorCode } from '../errors.js';
import { expectFtlError } from '../../test-support/expect-ftl-error.js';
import { MAX_MESSAGEPACK_DEPTH, scanMessagePack } from './msgpack-scan.js';
import { encodeWeights, decodeWeights } from './weights.js';
import { createMsgpackParser, RESERVED_EVENT_NAMES, type ByteCounter, type MsgpackParserOptions } from './socketio-parser.js';

type Coder = { encode(p: unknown): Uint8Array[] };
type Dec = { add(c: unknown): void; on(e: 'decoded', f: (p: unknown) => void): void };

function pair(counter?: ByteCounter, options?: MsgpackParserOptions) {
  const { Encoder, Decoder } = createMsgpackParser(counter, options);
  return { enc: new Encoder() as Coder, dec: new Decoder() as Dec };
}

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

/** The value with binary data as byte lists (the decoder gives Buffers) and -0 as 0 (MessagePack's integer 0). */
function plain(v: unknown): unknown {
  if (Object.is(v, -0)) return 0;
  if (v instanceof Uint8Array) return { bin: Array.from(v) };
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

/** Decodes one frame and returns the packet, or throws what the decoder threw. */
function decode(frame: Uint8Array, options?: MsgpackParserOptions): any {
  const { dec } = pair(undefined, options);
  let got: unknown;
  dec.on('decoded', (p) => (got = p));
  dec.add(frame);
  return got;
}

describe('msgpack socket.io parser', () => {
  test('an event with binary weights round-trips as one binary frame, and the bytes are counted', () => {
    const counter = { sent: 0, received: 0 };
    const { enc, dec } = pair(counter);
    const values = Float32Array.of(0.5, -1.25, 3e-8);
    const packet = {
      type: PacketType.EVENT,
      nsp: '/',
      id: 3,
      data: ['fit-result', { round: 2, weights: encodeWeights({ specs: [{ name: 'w', shape: [3], dtype: 'float32' }], values }) }],
    };
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
    ['a truncated msgpack frame', new Uint8Array([0x92, 0x01]), /refused MessagePack frame: an array of 2 items with only 1 bytes left \(byte 0\)/],
    ['a packet with an unknown type', null, /malformed socket.io packet/],
    ['an event without a name', 'no-name', /malformed socket.io packet/],
  ])('refuses %s', (_, input, message) => {
    const { enc, dec } = pair();
    let chunk: unknown = input;
    if (input === null) chunk = enc.encode({ type: 42, nsp: '/' })[0];
    if (input === 'no-name') chunk = enc.encode({ type: PacketType.EVENT, nsp: '/', data: [17] })[0];
    expectFtlError(() => dec.add(chunk), ErrorCode.InvalidMessage, message);
  });

  test('whatever packet the encoder writes, the decoder accepts and gives back (undefined dropped as JSON drops it)', () => {
    // Keys are names a protocol message could have; values are everything a message can carry.
    const key = fc.string({ minLength: 1, maxLength: 12 }).filter((k) => !['__proto__', 'constructor', 'prototype'].includes(k));
    const value = fc.letrec((tie) => ({
      any: fc.oneof(
        { depthSize: 'small' },
        fc.constant(null),
        fc.boolean(),
        fc.string(),
        fc.double(),
        fc.maxSafeInteger(),
        fc.uint8Array({ maxLength: 64 }),
        fc.array(tie('any'), { maxLength: 5 }),
        fc.dictionary(key, tie('any'), { maxKeys: 5 }),
      ),
    })).any;
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 20 }), value, fc.option(fc.nat()), (name, payload, id) => {
        fc.pre(!RESERVED_EVENT_NAMES.includes(name));
        const packet = { type: PacketType.EVENT, nsp: '/', data: [name, payload, { dropped: undefined }], ...(id === null ? {} : { id }) };
        const got = decode(pair().enc.encode(packet)[0]!);
        expect(plain(got)).toEqual(plain({ ...packet, data: [name, payload, {}] }));
      }),
      { numRuns: 300 },
    );
  });

  test('undefined inside arrays travels as nil, never as the undefined extension the decoder refuses', () => {
    const frame = pair().enc.encode({ type: PacketType.ACK, nsp: '/', id: 1, data: [undefined, { a: undefined }] })[0]!;
    expect(decode(frame).data).toEqual([null, {}]);
  });

  test('a ~400 KB weights frame decodes to the same float32 values', () => {
    const values = Float32Array.from({ length: 100_000 }, (_, i) => Math.sin(i));
    const weights = encodeWeights({ specs: [{ name: 'head/kernel', shape: [1000, 100], dtype: 'float32' }], values });
    const frame = pair().enc.encode({ type: PacketType.EVENT, nsp: '/', data: ['fit-result', { weights }] })[0]!;
    expect(frame.byteLength).toBeGreaterThan(400_000);
    expect(decodeWeights(decode(frame).data[1].weights).values).toEqual(values);
  });
});

describe('hostile MessagePack frames are refused before they are decoded', () => {
  const records = new Packr({ useRecords: true });
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic['self'] = cyclic;

  test.each<[string, Uint8Array, RegExp]>([
    ['an array header claiming 2^32-1 items in 5 bytes', hex('dd ffffffff'), /an array of 4294967295 items with only 0 bytes left \(byte 0\)/],
    ['an array-16 header longer than the frame', hex('dc ffff 01 02'), /an array of 65535 items with only 2 bytes left/],
    ['a map header claiming 2^32-1 entries', hex('df ffffffff a1 61 01'), /a map of 4294967295 entries with only 3 bytes left/],
    ['a str header claiming 4 GB', hex('db ffffffff 61'), /a string of 4294967295 bytes with only 1 left/],
    ['a bin header claiming 4 GB', hex('c6 ffffffff 00'), /binary data of 4294967295 bytes with only 1 left/],
    ['a bin header cut short', hex('91 c6 ff'), /a bin header of 4 bytes with only 1 left/],
    [
      'a msgpackr record definition (real bytes of a records encoder)',
      records.pack({ type: 2, nsp: '/', data: ['x'] }),
      /extension type 114 \(msgpackr record definition\)/,
    ],
    ['a two-byte record definition', hex('d5 72 40 01 91 a1 61 01'), /extension type 114 \(msgpackr record definition\)/],
    [
      'structured-clone id and pointer tags (real bytes)',
      new Packr({ structuredClone: true }).pack(cyclic),
      /extension type 105 \(structured-clone id\)/,
    ],
    ['a structured-clone pointer', hex('d6 70 00000001'), /extension type 112 \(structured-clone pointer\)/],
    ['a timestamp (a packed Date)', new Packr({ useRecords: false }).pack(new Date(0)), /extension type 255 \(timestamp\)/],
    ['a Set (moreTypes)', new Packr({ useRecords: false, moreTypes: true }).pack(new Set([1])), /extension type 115 \(Set\)/],
    ['a typed array (moreTypes)', new Packr({ useRecords: false, moreTypes: true }).pack(new Float32Array(2)), /extension type 116 \(typed array\)/],
    ['a BigInt extension', new Packr({ useRecords: false, useBigIntExtension: true }).pack(2n ** 70n), /extension type 66 \(BigInt\)/],
    ["msgpackr's undefined (fixext 0)", hex('92 01 d4 00 00'), /extension type 0 \(undefined\)/],
    ['an ext 32 with an unknown type', hex('c9 00000001 07 00'), /extension type 7, which the protocol never uses/],
    ['the reserved byte 0xc1', hex('92 c1 01'), /the reserved byte 0xc1 \(byte 1\)/],
    ['a uint64 of 2^53', hex('cf 0020000000000000'), /a uint64 beyond the safe integer range/],
    ['a uint64 of 2^64-1', hex('81 a1 6e cf ffffffffffffffff'), /a uint64 beyond the safe integer range \(byte 3\)/],
    ['an int64 of -2^53', hex('d3 ffe0000000000000'), /an int64 beyond the safe integer range/],
    ['an int64 of 2^63-1', hex('d3 7fffffffffffffff'), /an int64 beyond the safe integer range/],
    [
      `nesting ${MAX_MESSAGEPACK_DEPTH + 1} arrays deep`,
      hex(`${'91'.repeat(MAX_MESSAGEPACK_DEPTH + 1)}c0`),
      new RegExp(`nesting deeper than ${MAX_MESSAGEPACK_DEPTH}`),
    ],
    ['100 000 maps deep', hex(`${'81 a1 61'.repeat(100_000)}c0`), new RegExp(`nesting deeper than ${MAX_MESSAGEPACK_DEPTH}`)],
    ['a __proto__ key', hex(`81 a9${Buffer.from('__proto__').toString('hex')}81 a1 78 01`), /the map key "__proto__"/],
    ['a constructor key as str 8', hex(`81 d9 0b${Buffer.from('constructor').toString('hex')}01`), /the map key "constructor"/],
    ['a prototype key as str 16', hex(`81 da 0009${Buffer.from('prototype').toString('hex')}01`), /the map key "prototype"/],
    ['a map key that is a number', hex('81 01 02'), /a map key that is not a string/],
    ['a map key that is an array', hex('81 91 a1 61 02'), /a map key that is not a string/],
    ['bytes after the value', hex('c0 c0'), /1 bytes after the value \(byte 1\)/],
    ['an empty frame', new Uint8Array(0), /the frame ends before its value/],
  ])('%s', (_, frame, message) => {
    expectFtlError(() => decode(frame), ErrorCode.InvalidMessage, message);
  });

  test('the same frame once it carries no extension is accepted, and 0x40–0x7f are the integers 64–127', () => {
    // What a records encoder would use as record references are plain fixints once definitions are refused.
    const packet = decode(hex('83 a4 74797065 02 a3 6e7370 a1 2f a4 64617461 93 a1 78 40 7f'));
    expect(packet).toEqual({ type: 2, nsp: '/', data: ['x', 64, 127] });
  });

  test('safe 64-bit integers decode as numbers, never BigInts that a log would print in full', () => {
    const packet = decode(hex('83 a4 74797065 00 a3 6e7370 a1 2f a4 64617461 82 a1 61 cf 001fffffffffffff a1 62 d3 ffe0000000000001'));
    expect(packet.data).toEqual({ a: Number.MAX_SAFE_INTEGER, b: -Number.MAX_SAFE_INTEGER });
    expect(typeof packet.data.a).toBe('number');
  });

  test(`${MAX_MESSAGEPACK_DEPTH} levels of nesting are allowed`, () => {
    expect(() => scanMessagePack(hex(`${'91'.repeat(MAX_MESSAGEPACK_DEPTH)}c0`))).not.toThrow();
  });

  test('maxFrameBytes refuses longer frames before reading them, and counts them as received', () => {
    const counter = { sent: 0, received: 0 };
    const frame = pair().enc.encode({ type: PacketType.EVENT, nsp: '/', data: ['x', 'y'.repeat(100)] })[0]!;
    expect(decode(frame, { maxFrameBytes: frame.byteLength }).data[0]).toBe('x');
    const { dec } = pair(counter, { maxFrameBytes: frame.byteLength - 1 });
    expectFtlError(
      () => dec.add(frame),
      ErrorCode.InvalidMessage,
      new RegExp(`^refused a frame of ${frame.byteLength} bytes: the limit is ${frame.byteLength - 1}; send smaller messages$`),
    );
    expect(counter.received).toBe(frame.byteLength);
  });
});

describe('socket.io reserved event names', () => {
  const { Encoder } = createMsgpackParser();
  const enc = new Encoder() as Coder;

  test.each(RESERVED_EVENT_NAMES.map((n) => [n]))('an EVENT named %s is refused', (name) => {
    for (const type of [PacketType.EVENT, PacketType.BINARY_EVENT]) {
      const frame = enc.encode({ type, nsp: '/', data: [name, 'spoofed'] })[0]!;
      expectFtlError(() => decode(frame), ErrorCode.InvalidMessage, new RegExp(`^the event name "${name}" is reserved by socket.io`));
    }
  });

  test("the list is the one socket.io itself reserves, and error, which reports a server socket's connection errors", () => {
    expect([...RESERVED_EVENT_NAMES].sort()).toEqual([
      'connect',
      'connect_error',
      'disconnect',
      'disconnecting',
      'error',
      'newListener',
      'removeListener',
    ]);
  });

  describe('on a real socket.io server', () => {
    let http: HttpServer | undefined;
    let server: Server | undefined;
    const clients: ClientSocket[] = [];
    afterEach(async () => {
      for (const c of clients.splice(0)) c.close();
      await new Promise((r) => server?.close(r) ?? r(undefined));
    });

    async function start(): Promise<{ url: string; log: string[] }> {
      const log: string[] = [];
      http = createServer();
      server = new Server(http, { parser: createMsgpackParser() });
      server.on('connection', (s) => {
        s.on('disconnect', (reason) => log.push(`${s.handshake.auth['name']} disconnect ${String(reason)} connected=${s.connected}`));
        s.on('hello', (_: unknown, ack: (x: string) => void) => ack(`hi ${s.handshake.auth['name']}`));
      });
      await new Promise<void>((r) => http!.listen(0, '127.0.0.1', r));
      return { url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`, log };
    }

    async function connect(url: string, name: string): Promise<ClientSocket> {
      const c = io(url, { parser: createMsgpackParser(), transports: ['websocket'], reconnection: false, auth: { name } });
      clients.push(c);
      await new Promise((r) => c.once('connect', () => r(undefined)));
      return c;
    }

    test('a client that sends "disconnect" is disconnected by the server, not shown as gone while its socket lives, and the others are still served', async () => {
      const { url, log } = await start();
      const hostile = await connect(url, 'hostile');
      const honest = await connect(url, 'honest');
      const closed = new Promise<string>((r) => hostile.once('disconnect', (reason) => r(reason)));
      // socket.io-client refuses to emit a reserved name, so the frame is written to the transport directly.
      hostile.io.engine.write(enc.encode({ type: PacketType.EVENT, nsp: '/', data: ['disconnect', 'spoofed'] })[0]! as Buffer);
      // The server reads frames in order: the next one is answered only if the socket survived the first.
      const answered = hostile
        .timeout(60_000)
        .emitWithAck('hello', 1)
        .then(
          (a: string) => `answered: ${a}`,
          () => 'no answer',
        );
      expect(await Promise.race([closed, answered])).toBe('transport close');
      expect(log).toEqual(['hostile disconnect forced close connected=false']);
      expect(await honest.emitWithAck('hello', 1)).toBe('hi honest');
    });
  });
});
