import { expect } from 'vitest';
import { isFtlError, type ErrorCode } from '../src/errors.js';

/** Test helper: `fn` throws an FtlError with `code` whose message matches `message`. */
export function expectFtlError(fn: () => unknown, code: ErrorCode, message: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(isFtlError(err, code), `expected FtlError ${code}, got ${String(err)}`).toBe(true);
  expect((err as Error).message).toMatch(message);
}
