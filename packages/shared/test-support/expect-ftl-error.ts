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

/** Test helper: what `fn` throws, to look at as a whole; the test fails when `fn` returns. */
export function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

/** Test helper: the message of the FtlError with `code` that `fn` throws, to compare whole; any other outcome fails the test. */
export function ftlErrorMessage(fn: () => unknown, code: ErrorCode | `${ErrorCode}`): string {
  const err = thrownBy(fn);
  expect(err).toMatchObject({ name: 'FtlError', code });
  return (err as Error).message;
}
