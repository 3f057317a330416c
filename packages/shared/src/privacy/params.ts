import { z } from 'zod';
import { ErrorCode, FtlError } from '../errors.js';
import { integer, list, positive, record } from '../protocol/fields.js';
import { issueError } from '../protocol/validate.js';

// The parameters of privacy accounting as schemas: what a caller passes and what a saved ledger holds
// are checked by the same rules, and a refusal reads `step.noiseMultiplier must be a positive number
// (got number 0)` — INVALID_CONFIG, since every one of them is the operator's or the program's setting.

/** Orders above this cost a loop of that length per order and say nothing the default orders do not. */
export const MAX_RDP_ORDER = 10_000;

/** One entry of a privacy ledger: `steps` runs of the Gaussian mechanism on a Poisson sample of rate `sampleRate`. */
export const SampledGaussianSchema = record({
  noiseMultiplier: positive(),
  sampleRate: z.number({ error: 'a number in [0, 1]' }).min(0, { abort: true }).max(1, { abort: true }),
  steps: integer(0),
});

/**
 * One entry of a privacy ledger: the Gaussian mechanism with noise of standard deviation
 * `noiseMultiplier` × the sensitivity (the clipping norm), applied `steps` times, each time to a Poisson
 * sample that holds each record with probability `sampleRate`.
 */
export type SampledGaussian = z.output<typeof SampledGaussianSchema>;

/** δ of an (ε, δ) guarantee: a probability strictly between 0 and 1. */
export const DeltaSchema = z.number({ error: 'a number in (0, 1)' }).gt(0, { abort: true }).lt(1, { abort: true });

/** An ε budget: a finite number > 0. */
export const EpsilonSchema = positive();

/** Rényi orders: 1 to 1000 distinct numbers in (1, MAX_RDP_ORDER]. */
export const OrdersSchema = list(
  z
    .number({ error: `a number in (1, ${MAX_RDP_ORDER}]` })
    .gt(1, { abort: true })
    .max(MAX_RDP_ORDER, { abort: true }),
  1000,
)
  .min(1, { error: 'a non-empty array of orders', abort: true })
  .refine((orders) => new Set(orders).size === orders.length, { error: 'an array of distinct orders', abort: true });

/** How RDP becomes (ε, δ): see `epsilonFromRdp`. */
export const ConversionSchema = z.enum(['improved', 'classic'], { error: '"improved" or "classic"' });

/** The RDP-to-(ε, δ) conversion used: `improved` (the default) or `classic`. */
export type Conversion = z.output<typeof ConversionSchema>;

/**
 * Parses `v` with `schema`, or throws FtlError(INVALID_CONFIG) naming the field from `root`, what it must
 * be and what it was.
 */
export function checkParam<T>(schema: z.ZodType<T>, v: unknown, root: string): T {
  const result = schema.safeParse(v);
  if (result.success) return result.data;
  throw new FtlError(ErrorCode.InvalidConfig, issueError(result.error.issues[0]!, v, root).message);
}
