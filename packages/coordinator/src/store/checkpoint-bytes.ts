import { createHash } from 'node:crypto';
import { ErrorCode, FtlError } from '@ftl/shared';

/**
 * The float32 values' bytes as a Buffer view (no copy), ready to bind as a BLOB. Bytes are in the
 * machine's order, little-endian on every platform Node ships for.
 */
export function float32Bytes(values: Float32Array): Buffer {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}

/**
 * Float32 values from BLOB bytes, always copied into a fresh, 4-byte aligned buffer: SQLite hands out
 * Buffers whose offset is not guaranteed to be a multiple of 4, and the caller may keep the array.
 */
export function float32FromBytes(bytes: Uint8Array, what: string): Float32Array {
  if (bytes.byteLength % 4 !== 0) {
    throw new FtlError(ErrorCode.WeightsMismatch, `${what} is ${bytes.byteLength} bytes, not a whole number of float32 values`);
  }
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new Float32Array(copy.buffer);
}

/**
 * Strategy state (e.g. FedAdam's moments) as one self-delimiting blob, entries in sorted key order so
 * the same state always gives the same bytes and hence the same checkpoint digest. Layout, all
 * integers u32 little-endian: count, then per entry name length, UTF-8 name, value count, float32 values.
 */
export function encodeStrategyState(state: Record<string, Float32Array>): Buffer {
  const parts: Buffer[] = [];
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    return b;
  };
  const names = Object.keys(state).sort();
  parts.push(u32(names.length));
  for (const name of names) {
    const values = state[name];
    if (!(values instanceof Float32Array)) {
      throw new FtlError(ErrorCode.InvalidConfig, `strategy state "${name}" must be a Float32Array to be checkpointed (got ${typeof values})`);
    }
    const nameBytes = Buffer.from(name, 'utf8');
    parts.push(u32(nameBytes.byteLength), nameBytes, u32(values.length), float32Bytes(values));
  }
  return Buffer.concat(parts);
}

/** Reads a blob written by {@link encodeStrategyState}; throws on any truncation or trailing bytes. */
export function decodeStrategyState(bytes: Uint8Array): Record<string, Float32Array> {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const take = (n: number, what: string): Buffer => {
    if (at + n > buf.byteLength) {
      throw new FtlError(ErrorCode.WeightsMismatch, `strategy state is truncated: ${what} needs ${n} bytes at offset ${at} of ${buf.byteLength}`);
    }
    const out = buf.subarray(at, at + n);
    at += n;
    return out;
  };
  const state: Record<string, Float32Array> = {};
  const count = take(4, 'the entry count').readUInt32LE();
  for (let i = 0; i < count; i++) {
    const name = take(take(4, 'a name length').readUInt32LE(), 'a name').toString('utf8');
    const n = take(4, `the length of "${name}"`).readUInt32LE();
    state[name] = float32FromBytes(take(n * 4, `the values of "${name}"`), `strategy state "${name}"`);
  }
  if (at !== buf.byteLength) {
    throw new FtlError(ErrorCode.WeightsMismatch, `strategy state has ${buf.byteLength - at} unexpected trailing bytes`);
  }
  return state;
}

/**
 * The checkpoint digest: SHA-256 (hex) over the specs JSON text and the weight bytes, each prefixed by
 * its length so no bytes can move from one to the other unnoticed, then the strategy-state blob (which
 * delimits itself). Recorded at commit and recomputed on load to detect damaged checkpoints.
 */
export function checkpointDigest(specsJson: string, weights: Uint8Array, strategyState: Uint8Array): string {
  const hash = createHash('sha256');
  const framed = (bytes: Uint8Array) => {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(bytes.byteLength));
    hash.update(len);
    hash.update(bytes);
  };
  framed(Buffer.from(specsJson, 'utf8'));
  framed(weights);
  hash.update(strategyState);
  return hash.digest('hex');
}
