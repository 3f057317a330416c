import { z } from 'zod';
import { ErrorCode, FtlError } from '../errors.js';

// The one place a schema's verdict becomes an FtlError. Each schema carries its expectation as its
// error text ("an integer ≥ 0"), so a refusal reads `fit-result.round must be an integer ≥ 0 (got number 1.5)`.

/**
 * What a refinement may add to its issue (zod's `params`): the FtlError code when the refusal is not
 * plain malformation (a sample count is SAMPLE_COUNT, a protocol version PROTOCOL_MISMATCH), a hint
 * appended after `; `, or `sentence` when the issue's text is the whole sentence after the field path.
 */
export interface IssueParams {
  code?: ErrorCode;
  hint?: string;
  sentence?: boolean;
}

/** A value as a refusal shows it: short, on one line, never the whole of a large input. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (v instanceof Uint8Array) return `${v.byteLength} bytes`;
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

// Stop at the first problem: a hostile array of a million wrong values costs one check, not a million
// issues. (`abortEarly` is zod's own flag for this; its public type leaves it out.)
const FIRST_PROBLEM_ONLY: z.core.ParseContextInternal<z.core.$ZodIssue> = { abortEarly: true };

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v = input;
  for (const key of path) v = typeof v === 'object' && v !== null ? (v as Record<PropertyKey, unknown>)[key] : undefined;
  return v;
}

/** `fit-result.weights.specs[0].shape` from the message's name and an issue's path. */
function fieldPath(root: string, path: readonly PropertyKey[]): string {
  let out = root;
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : `.${String(key)}`;
  return out;
}

/**
 * Turns a zod issue into the FtlError a peer is refused with: `<path> must be <expectation> (got <value>)`,
 * plus the refinement's hint, or the refinement's own sentence; INVALID_MESSAGE unless the refinement
 * names another code.
 */
export function issueError(issue: z.core.$ZodIssue, input: unknown, root: string): FtlError {
  const path = fieldPath(root, issue.path);
  const params = (issue.code === 'custom' ? issue.params : undefined) as IssueParams | undefined;
  const message = params?.sentence
    ? `${path} ${issue.message}`
    : `${path} must be ${issue.message} (got ${describe(valueAt(input, issue.path))})${params?.hint ? `; ${params.hint}` : ''}`;
  return new FtlError(params?.code ?? ErrorCode.InvalidMessage, message);
}

// Each schema compiled once, on first use: zod's generated fast path takes a valid message in one pass
// (the interpreted one runs every check through its generic loop, ~20× the hand-written validators'
// time on a fit-result); an invalid one falls back to the interpreter, so refusals read the same.
const compiled = new WeakMap<z.ZodType, z.ZodType>();

function compiledOf<T>(schema: z.ZodType<T>): z.ZodType<T> {
  let c = compiled.get(schema);
  if (!c) compiled.set(schema, (c = z.compile(schema)));
  return c as z.ZodType<T>;
}

/**
 * Parses `v` (a decoded message: `unknown`) with `schema`, or throws the FtlError of its first problem,
 * its path starting at `root`.
 *
 * @example
 * const result = validate(FitResultSchema, raw, 'fit-result'); // FitResult, or FtlError
 */
export function validate<T>(schema: z.ZodType<T>, v: unknown, root: string): T {
  const result = compiledOf(schema).safeParse(v, FIRST_PROBLEM_ONLY);
  if (result.success) return result.data;
  throw issueError(result.error.issues[0]!, v, root);
}
