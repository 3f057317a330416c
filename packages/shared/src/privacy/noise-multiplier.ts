import { z } from 'zod';
import { ErrorCode, FtlError } from '../errors.js';
import { integer, positive, record } from '../protocol/fields.js';
import { checkParam, type Conversion, ConversionSchema, DeltaSchema, EpsilonSchema, OrdersSchema } from './params.js';
import { DEFAULT_RDP_ORDERS, epsilonFromRdp, rdpOfStep } from './rdp.js';

/** Past this σ the search gives up: the budget is too small for the steps asked (Opacus stops at 10⁶ too). */
export const MAX_NOISE_MULTIPLIER = 1e6;

const SearchSchema = record({
  epsilon: EpsilonSchema,
  delta: DeltaSchema,
  sampleRate: z.number({ error: 'a number in (0, 1]' }).gt(0, { abort: true }).max(1, { abort: true }),
  steps: integer(1),
  orders: OrdersSchema.optional(),
  conversion: ConversionSchema.optional(),
  epsilonTolerance: positive().optional(),
});

/** What `noiseMultiplierFor` is asked: a target (ε, δ) for `steps` steps at sample rate `sampleRate`. */
export interface NoiseMultiplierSearch {
  epsilon: number;
  delta: number;
  sampleRate: number;
  steps: number;
  /** Rényi orders; DEFAULT_RDP_ORDERS unless given. */
  orders?: readonly number[];
  /** RDP to (ε, δ) conversion; `improved` unless given. */
  conversion?: Conversion;
  /** How far below the target the answer's ε may be; 0.001 unless given. */
  epsilonTolerance?: number;
}

/**
 * The noise multiplier σ that spends the (ε, δ) budget in `steps` steps at sample rate q, as Opacus's
 * `get_noise_multiplier`: ε falls as σ grows, so a bisection finds a σ whose ε is at most the target and
 * within `epsilonTolerance` (0.001 by default) below it. The answer errs on the private side: its ε never
 * exceeds the target.
 *
 * @throws FtlError(INVALID_CONFIG) for bad parameters (q must be > 0 and steps ≥ 1 here, or σ would not
 * matter), or when even σ = 10⁶ spends more than the budget.
 * @example
 * noiseMultiplierFor({ epsilon: 8, delta: 1e-5, sampleRate: 0.04, steps: 2250 }); // ≈ 1.41
 */
export function noiseMultiplierFor(search: NoiseMultiplierSearch): number {
  const s = checkParam(SearchSchema, search, 'noise multiplier search');
  const orders = s.orders ?? DEFAULT_RDP_ORDERS;
  const tolerance = s.epsilonTolerance ?? 1e-3;
  const epsilonOf = (sigma: number) =>
    epsilonFromRdp(
      orders,
      orders.map((alpha) => s.steps * rdpOfStep(s.sampleRate, sigma, alpha)),
      s.delta,
      s.conversion,
    ).epsilon;

  // Double until the budget holds, then halve the bracket [lo, hi] keeping ε(hi) ≤ target < ε(lo).
  let hi = 1;
  let epsilonHi = epsilonOf(hi);
  while (epsilonHi > s.epsilon) {
    hi *= 2;
    if (hi > MAX_NOISE_MULTIPLIER) {
      throw new FtlError(
        ErrorCode.InvalidConfig,
        `no noise multiplier up to ${MAX_NOISE_MULTIPLIER} keeps ε ≤ ${s.epsilon} at δ = ${s.delta} over ${s.steps} steps at sample rate ${s.sampleRate}; raise the budget or train fewer steps`,
      );
    }
    epsilonHi = epsilonOf(hi);
  }
  let lo = hi > 1 ? hi / 2 : 0;
  while (s.epsilon - epsilonHi > tolerance && hi - lo > hi * 1e-12) {
    const mid = (lo + hi) / 2;
    const e = epsilonOf(mid);
    if (e <= s.epsilon) {
      hi = mid;
      epsilonHi = e;
    } else lo = mid;
  }
  return hi;
}
