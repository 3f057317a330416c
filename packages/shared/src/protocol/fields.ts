import { z } from 'zod';
import { ErrorCode } from '../errors.js';
import type { IssueParams } from './validate.js';

// The kinds of field messages are made of. Each schema's error text is what the field must be, so a
// refusal reads `<path> must be <text> (got …)`; every check of a field shares its text.

/** An object with these fields; unknown fields are dropped. Binary data is not an object here. */
export function record<S extends z.ZodRawShape>(shape: S) {
  return z.custom<unknown>((v) => !(v instanceof Uint8Array), { error: 'an object' }).pipe(z.object(shape, { error: 'an object' }));
}

/** An integer in [min, 2^53). */
export function integer(min = 0) {
  return z
    .number({ error: `an integer ≥ ${min}` })
    .int({ abort: true })
    .min(min, { abort: true });
}

/** An integer in [min, max]. */
export function integerIn(min: number, max: number) {
  return z
    .number({ error: `an integer in [${min}, ${max}]` })
    .int({ abort: true })
    .min(min, { abort: true })
    .max(max, { abort: true });
}

/** Any finite number. */
export function finite() {
  return z.number({ error: 'a finite number' });
}

/** A finite number ≥ 0 (a loss, a duration, a penalty). */
export function nonNegative() {
  return z.number({ error: 'a finite number ≥ 0' }).min(0, { abort: true });
}

/** A finite number > 0. */
export function positive() {
  return z.number({ error: 'a positive number' }).gt(0, { abort: true });
}

/** A number in [min, max], or in [min, max) when `open`. */
export function between(min: number, max: number, options: { open?: boolean } = {}) {
  const error = `a number in [${min}, ${max}${options.open ? ')' : ']'}`;
  const n = z.number({ error }).min(min, { abort: true });
  return options.open ? n.lt(max, { abort: true }) : n.max(max, { abort: true });
}

/** A non-empty string of at most `max` UTF-16 units. */
export function text(max = 256) {
  return z.string({ error: `a non-empty string of at most ${max} characters` }).refine((s) => s.length >= 1 && s.length <= max, { abort: true });
}

/** An array of at most `max` items, refused by its length before any item is read; the result is a plain copy. */
export function list<T extends z.ZodType>(item: T, max: number) {
  return z.array(item, { error: `an array of at most ${max} items` }).max(max, { abort: true });
}

/** One of `values`; `said` lists them as a refusal should. */
export function oneOf<const T extends readonly [string, ...string[]]>(values: T, said: string) {
  return z.enum(values, { error: said });
}

/** true or false. */
export function flag(said = 'a boolean') {
  return z.boolean({ error: said });
}

/** Binary data (a Uint8Array or a Buffer), never read element by element. */
export function binary() {
  return z.instanceof(Uint8Array, { error: 'binary data' });
}

/**
 * A count of samples a site claims, at least `min`. Any number that is not such a safe integer is
 * SAMPLE_COUNT (`bad-sample-count`, with `hint`); anything that is not a number is malformed.
 */
export function claimedCount(min: 0 | 1, hint: string) {
  const error = min === 1 ? 'a positive integer' : 'an integer ≥ 0';
  const params: IssueParams = { code: ErrorCode.SampleCount, hint };
  return z.custom<number>((v) => typeof v === 'number', { error }).refine((n) => Number.isSafeInteger(n) && n >= min, { error, params, abort: true });
}
