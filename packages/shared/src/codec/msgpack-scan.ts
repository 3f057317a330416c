import { ErrorCode, FtlError } from '../errors.js';

/** The deepest nesting of arrays and maps a frame may have; ftl's own packets nest about 6 deep. */
export const MAX_MESSAGEPACK_DEPTH = 32;

/**
 * Map keys refused in every frame: they name an object's prototype machinery, and a validator that
 * copies fields must never meet them.
 */
export const FORBIDDEN_MAP_KEYS: readonly string[] = ['__proto__', 'constructor', 'prototype'];

// The forbidden keys as bytes, so keys are compared without decoding them into strings.
const forbiddenKeyBytes = FORBIDDEN_MAP_KEYS.map((k) => Uint8Array.from(k, (c) => c.charCodeAt(0)));

// Extension types msgpackr would decode by default; named in the refusal so a peer's author knows what
// their encoder did (for example a Date, a Set or a typed array packed with `moreTypes`).
const extensionNames: Record<number, string> = {
  0: 'undefined',
  66: 'BigInt',
  98: 'msgpackr bundled strings',
  101: 'Error',
  105: 'structured-clone id',
  112: 'structured-clone pointer',
  114: 'msgpackr record definition',
  115: 'Set',
  116: 'typed array',
  120: 'RegExp',
  255: 'timestamp',
};

function refuse(reason: string, at: number): never {
  throw new FtlError(ErrorCode.InvalidMessage, `refused MessagePack frame: ${reason} (byte ${at}); send plain MessagePack within these limits`);
}

/**
 * Walks the structure of one MessagePack value without building it, and throws FtlError(INVALID_MESSAGE)
 * when decoding it could cost more than its bytes or yield a value the protocol never uses: a length
 * header larger than the bytes left, nesting deeper than {@link MAX_MESSAGEPACK_DEPTH}, any extension type
 * (msgpackr records, structured clones, timestamps…), the reserved byte 0xc1, a 64-bit integer outside
 * the safe range (it would decode as a BigInt), a map key that is not a string or is one of
 * {@link FORBIDDEN_MAP_KEYS}, or bytes after the value.
 *
 * It allocates nothing and reads each header once, so it costs little next to the decode it guards;
 * run it before `unpack`. Since record definitions are refused, the bytes 0x40–0x7f can only be the
 * integers 64–127 they are in plain MessagePack.
 */
export function scanMessagePack(bytes: Uint8Array): void {
  const end = scanValue(bytes, 0, 0);
  if (end !== bytes.length) refuse(`${bytes.length - end} bytes after the value`, end);
}

function u16(b: Uint8Array, p: number): number {
  return (b[p]! << 8) | b[p + 1]!;
}

function u32(b: Uint8Array, p: number): number {
  return ((b[p]! << 24) >>> 0) + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!);
}

/** Checks that `n` bytes starting at `p` are in the frame, for a header read at `at`. */
function need(b: Uint8Array, p: number, n: number, what: string, at: number): void {
  if (n > b.length - p) refuse(`${what} of ${n} bytes with only ${Math.max(0, b.length - p)} left`, at);
}

/** The length in the `size` big-endian bytes (1, 2 or 4) after the type byte at `p`, checked to be in the frame. */
function lengthAt(b: Uint8Array, p: number, size: number, what: string): number {
  need(b, p + 1, size, what, p);
  return size === 1 ? b[p + 1]! : size === 2 ? u16(b, p + 1) : u32(b, p + 1);
}

// The fixed-size numbers: the bytes after their type byte, and the name a refusal gives them.
const NUMBERS: Record<number, { bytes: number; name: string }> = {
  [0xca]: { bytes: 4, name: 'a float32' },
  [0xcb]: { bytes: 8, name: 'a float64' },
  [0xcc]: { bytes: 1, name: 'a uint8' },
  [0xcd]: { bytes: 2, name: 'a uint16' },
  [0xce]: { bytes: 4, name: 'a uint32' },
  [0xcf]: { bytes: 8, name: 'a uint64' },
  [0xd0]: { bytes: 1, name: 'an int8' },
  [0xd1]: { bytes: 2, name: 'an int16' },
  [0xd2]: { bytes: 4, name: 'an int32' },
  [0xd3]: { bytes: 8, name: 'an int64' },
};

// Returns the position after the value that starts at `p`.
function scanValue(b: Uint8Array, p: number, depth: number): number {
  if (p >= b.length) refuse('the frame ends before its value', p);
  const t = b[p]!;
  if (t <= 0x7f || t >= 0xe0) return p + 1;
  if (t <= 0x8f) return scanMap(b, p + 1, t & 0x0f, depth, p);
  if (t <= 0x9f) return scanArray(b, p + 1, t & 0x0f, depth, p);
  if (t <= 0xbf) return scanBytes(b, p + 1, t & 0x1f, 'a string', p);
  const number = NUMBERS[t];
  if (number !== undefined) return scanNumber(b, p, number.bytes, number.name);
  switch (t) {
    case 0xc0:
    case 0xc2:
    case 0xc3:
      return p + 1;
    case 0xc1:
      return refuse('the reserved byte 0xc1', p);
    case 0xc4:
    case 0xc5:
    case 0xc6:
      return scanSized(b, p, 1 << (t - 0xc4), 'a bin header', 'binary data');
    case 0xc7:
      return extension(b, p, 2);
    case 0xc8:
      return extension(b, p, 3);
    case 0xc9:
      return extension(b, p, 5);
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
      return extension(b, p, 1);
    case 0xd9:
    case 0xda:
    case 0xdb:
      return scanSized(b, p, 1 << (t - 0xd9), 'a str header', 'a string');
    case 0xdc:
    case 0xdd: {
      const size = 2 << (t - 0xdc); // array 16 and 32
      return scanArray(b, p + 1 + size, lengthAt(b, p, size, 'an array header'), depth, p);
    }
    case 0xde:
    case 0xdf: {
      const size = 2 << (t - 0xde); // map 16 and 32
      return scanMap(b, p + 1 + size, lengthAt(b, p, size, 'a map header'), depth, p);
    }
  }
  return refuse(`the byte 0x${t.toString(16)}`, p);
}

// The position after a bin or str (8, 16 or 32: its length in `size` = 1, 2 or 4 bytes after the type byte).
function scanSized(b: Uint8Array, p: number, size: number, header: string, what: string): number {
  return scanBytes(b, p + 1 + size, lengthAt(b, p, size, header), what, p);
}

// The position after a fixed-size number; a 64-bit integer beyond the safe range is refused, since it
// would decode as a BigInt, which the protocol never uses.
function scanNumber(b: Uint8Array, p: number, bytes: number, name: string): number {
  const end = scanBytes(b, p + 1, bytes, name, p);
  if (b[p] === 0xcf && u32(b, p + 1) > 0x1fffff) refuse('a uint64 beyond the safe integer range', p);
  if (b[p] === 0xd3) {
    // Exact for every safe value; anything the float rounds lies beyond 2^53 and stays unsafe.
    const v = (u32(b, p + 1) | 0) * 0x100000000 + u32(b, p + 5);
    if (!Number.isSafeInteger(v)) refuse('an int64 beyond the safe integer range', p);
  }
  return end;
}

// `typeAt` is the offset of the extension's type byte from its header byte.
function extension(b: Uint8Array, p: number, typeAt: number): never {
  if (p + typeAt >= b.length) refuse('a truncated extension header', p);
  const type = b[p + typeAt]!;
  const name = extensionNames[type];
  return refuse(`MessagePack extension type ${type}${name ? ` (${name})` : ''}, which the protocol never uses`, p);
}

function scanBytes(b: Uint8Array, p: number, n: number, what: string, at: number): number {
  need(b, p, n, what, at);
  return p + n;
}

function scanArray(b: Uint8Array, p: number, n: number, depth: number, at: number): number {
  // Every element takes at least one byte: a longer header is a lie told to make the decoder allocate.
  if (n > b.length - p) refuse(`an array of ${n} items with only ${b.length - p} bytes left`, at);
  if (depth >= MAX_MESSAGEPACK_DEPTH) refuse(`nesting deeper than ${MAX_MESSAGEPACK_DEPTH}`, at);
  for (let i = 0; i < n; i++) p = scanValue(b, p, depth + 1);
  return p;
}

function scanMap(b: Uint8Array, p: number, n: number, depth: number, at: number): number {
  if (n > (b.length - p) / 2) refuse(`a map of ${n} entries with only ${b.length - p} bytes left`, at);
  if (depth >= MAX_MESSAGEPACK_DEPTH) refuse(`nesting deeper than ${MAX_MESSAGEPACK_DEPTH}`, at);
  for (let i = 0; i < n; i++) {
    p = scanKey(b, p);
    p = scanValue(b, p, depth + 1);
  }
  return p;
}

function scanKey(b: Uint8Array, p: number): number {
  if (p >= b.length) refuse('the frame ends before a map key', p);
  const t = b[p]!;
  let start = p + 1;
  let n = t & 0x1f;
  if (t >= 0xd9 && t <= 0xdb) {
    const size = 1 << (t - 0xd9); // str 8, 16 and 32
    n = lengthAt(b, p, size, 'a str header');
    start = p + 1 + size;
  } else if (t < 0xa0 || t > 0xbf) refuse('a map key that is not a string', p);
  need(b, start, n, 'a string', p);
  for (const k of forbiddenKeyBytes) {
    if (k.length !== n) continue;
    let same = true;
    for (let i = 0; i < n && same; i++) same = b[start + i] === k[i];
    if (same) refuse(`the map key "${String.fromCharCode(...k)}"`, p);
  }
  return start + n;
}
