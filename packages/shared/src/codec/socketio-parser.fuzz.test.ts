import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { PacketType } from 'socket.io-parser';
import { describe, expect, test } from 'vitest';
import { ErrorCode } from '../errors.js';
import { corpusFiles, guardHostileSuite, HOSTILE_ANYTHING, onlyFtlError, validMessages } from '../../test-support/fuzz-support.js';
import { createMsgpackParser } from './socketio-parser.js';

type Dec = { add(c: unknown): void; on(e: 'decoded', f: (p: unknown) => void): void };
type Enc = { encode(p: unknown): Uint8Array[] };

const { Encoder, Decoder } = createMsgpackParser(undefined, { maxFrameBytes: 1 << 20 });
const encoder = new Encoder() as Enc;

/** Feeds one frame to a fresh decoder: it either emits one packet or throws a one-line FtlError. */
function feed(frame: Uint8Array): unknown {
  const dec = new Decoder() as Dec;
  let packet: unknown;
  dec.on('decoded', (p) => (packet = p));
  const err = onlyFtlError(() => dec.add(frame));
  if (!err) expect(packet).toBeDefined();
  return err ? undefined : packet;
}

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// Every valid message as the frame that carries it: the seeds that get cut and mutated.
const seeds = Object.entries(validMessages()).map(
  ([event, payload]) =>
    encoder.encode(
      event === 'auth' ? { type: PacketType.CONNECT, nsp: '/', data: payload } : { type: PacketType.EVENT, nsp: '/', id: 7, data: [event, payload] },
    )[0]!,
);
const seed = fc.constantFrom(...seeds);

// MessagePack pieces a hostile peer would splice: lying length headers, extension types, big ints,
// deep nesting, prototype keys, the reserved byte, and ordinary tokens between them.
const hostilePiece = fc
  .constantFrom(
    'dd ffffffff',
    'dc ffff',
    'df ffffffff',
    'de ffff',
    'db ffffffff',
    'da ffff',
    'c6 ffffffff',
    'c5 ffff',
    'c9 ffffffff 01',
    'd4 72 40',
    'd5 72 40 01',
    '40',
    '7f',
    'd6 69 00000001',
    'd6 70 00000001',
    'd6 ff 00000000',
    'd7 ff 0000000000000000',
    'd4 00 00',
    'd4 73 00',
    'c7 05 74 07 00000000',
    'c7 01 42 ff',
    'cf ffffffffffffffff',
    'd3 8000000000000000',
    'cf 001fffffffffffff',
    '91'.repeat(40),
    '81 a1 61'.repeat(40),
    '81 a9 5f5f70726f746f5f5f',
    '81 ab 636f6e7374727563746f72',
    '81 a9 70726f746f74797065',
    'c1',
    'c0',
    'c3',
    'cb 7ff8000000000000',
    'cb 7ff0000000000000',
    'a0',
    'a3 616263',
    '92',
    '81',
    'c4 02 0102',
    '00',
    'ff',
  )
  .map(hex);

const frameOf = (parts: Uint8Array[]) => Uint8Array.from(Buffer.concat(parts));

/**
 * What the decoder may hand to socket.io: plain data only (nil, booleans, safe numbers, strings, bytes,
 * arrays and plain objects without prototype keys), never a BigInt, Date, Set, typed array, Error or record.
 */
function expectPlainData(v: unknown, depth = 0): void {
  expect(depth).toBeLessThanOrEqual(32);
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return;
  if (typeof v === 'number') return;
  if (v instanceof Uint8Array) {
    expect(v.constructor === Buffer || v.constructor === Uint8Array).toBe(true);
    return;
  }
  if (Array.isArray(v)) {
    for (const x of v) expectPlainData(x, depth + 1);
    return;
  }
  expect(typeof v).toBe('object');
  expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
  for (const k of Object.keys(v as object)) {
    expect(['__proto__', 'constructor', 'prototype']).not.toContain(k);
    expectPlainData((v as Record<string, unknown>)[k], depth + 1);
  }
}

const corpus = corpusFiles('frame-');
guardHostileSuite();

describe('the socket.io parser under hostile input', () => {
  test('the committed corpus of hostile frames is refused, each with a one-line FtlError', () => {
    expect(corpus.length).toBeGreaterThanOrEqual(20);
    for (const [name, frame] of corpus) {
      const err = onlyFtlError(() => (new Decoder() as Dec).add(frame));
      expect(err?.code, name).toBe(ErrorCode.InvalidMessage);
    }
  });

  test('random bytes: only FtlError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => void feed(bytes)),
      { numRuns: 10_000 },
    );
  });

  test('valid frames cut anywhere are refused', () => {
    fc.assert(
      fc.property(seed, fc.nat(), (frame, at) => {
        const cut = frame.subarray(0, at % frame.length);
        expect(feed(cut)).toBeUndefined();
      }),
      { numRuns: 1500 },
    );
  });

  test('valid frames with bytes changed, inserted or dropped: only FtlError', () => {
    const edit = fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'insert', 'drop'));
    fc.assert(
      fc.property(seed, fc.array(edit, { minLength: 1, maxLength: 6 }), (frame, edits) => {
        const bytes = Array.from(frame);
        for (const [at, value, how] of edits) {
          const i = at % (bytes.length + 1);
          if (how === 'set' && i < bytes.length) bytes[i] = value;
          else if (how === 'insert') bytes.splice(i, 0, value);
          else bytes.splice(i, 1);
        }
        feed(Uint8Array.from(bytes));
      }),
      { numRuns: 3000 },
    );
  });

  test('hostile pieces spliced into valid frames: only FtlError, and whatever still decodes is plain data', () => {
    fc.assert(
      fc.property(seed, fc.nat(), fc.array(hostilePiece, { minLength: 1, maxLength: 4 }), (frame, at, pieces) => {
        const i = at % frame.length;
        expectPlainData(feed(frameOf([frame.subarray(0, i), ...pieces, frame.subarray(i)])) ?? null);
      }),
      { numRuns: 4000 },
    );
  });

  test("a hostile piece in place of a valid frame's value is refused", () => {
    // Replaces the payload of an event (after `data: [name,`) with a piece: a structural position, so
    // the piece is read as a header, never as bytes inside a string.
    // The pieces that are one complete plain value: the only ones that may decode.
    const harmless = new Set([
      '40',
      '7f',
      'c0',
      'c3',
      'a0',
      'a3616263',
      'c4020102',
      '00',
      'ff',
      'cb7ff8000000000000',
      'cb7ff0000000000000',
      'cf001fffffffffffff',
    ]);
    const prefix = hex('83 a4 74797065 02 a3 6e7370 a1 2f a4 64617461 92 a5 7265616479');
    fc.assert(
      fc.property(hostilePiece, (piece) => {
        const out = feed(frameOf([prefix, piece]));
        if (out !== undefined) expectPlainData(out);
        expect(out === undefined || harmless.has(Buffer.from(piece).toString('hex')), Buffer.from(piece).toString('hex')).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  test('values packed by msgpackr with records, structured clones, extra types or BigInts: only FtlError, and never a BigInt', () => {
    const packers = [
      new Packr({ useRecords: true }),
      new Packr({ structuredClone: true }),
      new Packr({ useRecords: false, moreTypes: true }),
      new Packr({ useRecords: false, useBigIntExtension: true }),
      new Packr({ useRecords: false }),
    ];
    const payload = fc.anything(HOSTILE_ANYTHING);
    fc.assert(
      fc.property(fc.nat(packers.length - 1), fc.string({ maxLength: 12 }), payload, (k, event, data) => {
        let frame: Uint8Array;
        try {
          frame = packers[k]!.pack({ type: PacketType.EVENT, nsp: '/', data: [event, data] });
        } catch {
          return; // msgpackr cannot pack it (a BigInt beyond 64 bits without the extension): no frame to send
        }
        expectPlainData(feed(frame) ?? null);
      }),
      { numRuns: 1500 },
    );
  });

  test('nesting far deeper than the limit, in every container form, is refused without a stack overflow', () => {
    for (const open of ['91', 'dc0001', 'dd00000001', '81a161', 'de0001a161', 'df00000001a161']) {
      const frame = hex(`${open.repeat(100_000)}c0`);
      expect(onlyFtlError(() => (new Decoder() as Dec).add(frame))?.message).toMatch(/nesting deeper than 32/);
    }
  });
});
