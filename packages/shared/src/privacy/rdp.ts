import { ErrorCode, FtlError } from '../errors.js';
import { logErfc } from './log-erfc.js';
import { log1pExp, logAdd, logExpm1, SignedLogSum } from './log-space.js';
import { checkParam, type Conversion, ConversionSchema, DeltaSchema, OrdersSchema, type SampledGaussian, SampledGaussianSchema } from './params.js';

// Rényi differential privacy of the sampled Gaussian mechanism (Mironov, Talwar and Zhang 2019, "Rényi
// Differential Privacy of the Sampled Gaussian Mechanism", section 3.3): one step adds N(0, σ²) noise to
// a sum of clipped contributions from a Poisson sample of rate q, and its RDP at order α is
// log(A_α)/(α − 1), with A_α = E_{z∼N(0,σ²)}[((1 − q) + q·e^((2z−1)/2σ²))^α]. RDP adds over steps and
// over mechanisms (Mironov 2017, "Rényi Differential Privacy", proposition 1), and turns into an (ε, δ)
// guarantee at the order that gives the least ε. The tests compare against the published numbers of
// TensorFlow Privacy and Opacus, which compute the same quantities.

/**
 * Orders at which RDP is tracked unless a caller chooses others: those TensorFlow Privacy's RDP
 * accountant tests use, from 1.25 (large ε, many steps) to 256 (small ε, few steps).
 */
export const DEFAULT_RDP_ORDERS: readonly number[] = Object.freeze([
  1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 48, 64, 128, 256,
]);

/** An (ε, δ) guarantee and the Rényi order it came from. */
export interface PrivacySpent {
  epsilon: number;
  delta: number;
  /** The order at which the conversion gave the least ε; at the first or last order, more orders may lower ε. */
  order: number;
  conversion: Conversion;
}

/**
 * log A_α for an integer α ≥ 2 and 0 < q < 1, by the binomial expansion
 * A_α = Σᵢ C(α,i)·qⁱ(1−q)^(α−i)·e^((i²−i)/2σ²). The weights C(α,i)qⁱ(1−q)^(α−i) sum to 1, so A_α − 1 is
 * the same sum of C(α,i)qⁱ(1−q)^(α−i)·(e^((i²−i)/2σ²) − 1) from i = 2, all of whose terms are ≥ 0: summed
 * so, a small A_α − 1 (small q, large σ) keeps its relative precision instead of vanishing into 1 + tiny.
 */
export function logAIntegerOrder(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const twoSigma2 = 2 * sigma * sigma;
  let logC = Math.log(alpha); // log C(α, 1)
  let logAm1 = Number.NEGATIVE_INFINITY;
  for (let i = 2; i <= alpha; i++) {
    logC += Math.log((alpha - i + 1) / i);
    logAm1 = logAdd(logAm1, logC + i * logQ + (alpha - i) * log1mQ + logExpm1((i * i - i) / twoSigma2));
  }
  return log1pExp(logAm1);
}

/**
 * Terms of the fractional series below e⁻³⁰ end it, as in the reference implementations, but only once
 * i ≥ α: before that the binomial weights still grow toward their peak, and at a large order with q
 * near ½ the first terms are all below e⁻³⁰ (C(α,0)·q^α is 2⁻⁶⁴ at α = 64) though the sum is not.
 */
const SERIES_CUTOFF = -30;
/** A series still running after this many terms is a bug here, not a slow series. */
const MAX_SERIES_TERMS = 1_000_000;

/**
 * log A_α for any α > 1 and 0 < q < 1, by the series of Mironov, Talwar and Zhang (2019, section 3.3):
 * the expectation splits at z₀ = σ²·log(1/q − 1) + ½, where the two mixture components cross, into
 * A₀ = Σᵢ C(α,i)·qⁱ(1−q)^(α−i)·e^((i²−i)/2σ²)·½erfc((i − z₀)/σ√2) and
 * A₁ = Σᵢ C(α,i)·q^(α−i)(1−q)ⁱ·e^((j²−j)/2σ²)·½erfc((z₀ − j)/σ√2) with j = α − i, each converging for
 * non-integer α though the binomial coefficients change sign past i > α. At an integer α the two
 * halves add up to the binomial expansion, which the tests use to check one against the other.
 */
export function logAFractionalOrder(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const twoSigma2 = 2 * sigma * sigma;
  const sigmaSqrt2 = sigma * Math.SQRT2;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  const a0 = new SignedLogSum();
  const a1 = new SignedLogSum();
  let logC = 0; // log |C(α, i)|
  let sign = 1; // sign of C(α, i)
  for (let i = 0; i < MAX_SERIES_TERMS; i++) {
    if (i > 0) {
      const factor = alpha - i + 1;
      logC += Math.log(Math.abs(factor)) - Math.log(i);
      sign *= Math.sign(factor);
    }
    const j = alpha - i;
    const s0 = logC + i * logQ + j * log1mQ + (i * i - i) / twoSigma2 - Math.LN2 + logErfc((i - z0) / sigmaSqrt2);
    const s1 = logC + j * logQ + i * log1mQ + (j * j - j) / twoSigma2 - Math.LN2 + logErfc((z0 - j) / sigmaSqrt2);
    a0.add(sign, s0);
    a1.add(sign, s1);
    if (i >= alpha && Math.max(s0, s1) < SERIES_CUTOFF) return logAdd(a0.log, a1.log);
  }
  throw new FtlError(ErrorCode.InternalError, `the RDP series at order ${alpha} (q ${q}, σ ${sigma}) did not converge in ${MAX_SERIES_TERMS} terms`);
}

/** RDP of one step at one order, parameters already checked. */
export function rdpOfStep(q: number, sigma: number, alpha: number): number {
  if (q === 0) return 0;
  if (q === 1) return alpha / (2 * sigma * sigma);
  const logA = Number.isInteger(alpha) ? logAIntegerOrder(q, sigma, alpha) : logAFractionalOrder(q, sigma, alpha);
  // A_α ≥ 1 always (a Rényi divergence is ≥ 0); rounding in the fractional series may dip just below.
  return Math.max(0, logA / (alpha - 1));
}

/**
 * RDP of the sampled Gaussian mechanism run `steps` times, at each of `orders`: steps × the RDP of one
 * step, which is α/(2σ²) when every record is sampled (q = 1) and 0 when none is (q = 0).
 *
 * @throws FtlError(INVALID_CONFIG) for σ ≤ 0, q outside [0, 1], steps not an integer ≥ 0, bad orders.
 * @example
 * sampledGaussianRdp({ noiseMultiplier: 10, sampleRate: 1, steps: 1 }, [20]); // [0.1] = 20/(2·10²)
 */
export function sampledGaussianRdp(mechanism: SampledGaussian, orders: readonly number[] = DEFAULT_RDP_ORDERS): number[] {
  const { noiseMultiplier, sampleRate, steps } = checkParam(SampledGaussianSchema, mechanism, 'mechanism');
  return checkParam(OrdersSchema, orders, 'orders').map((alpha) => (steps === 0 ? 0 : steps * rdpOfStep(sampleRate, noiseMultiplier, alpha)));
}

/**
 * RDP of a ledger of mechanisms run one after another (rounds with different q or σ): the sum of their
 * RDPs, order by order.
 *
 * @example
 * composeRdp([{ noiseMultiplier: 1, sampleRate: 1e-5, steps: 10 }, { noiseMultiplier: 3, sampleRate: 1e-4, steps: 4 }], orders);
 */
export function composeRdp(ledger: readonly SampledGaussian[], orders: readonly number[] = DEFAULT_RDP_ORDERS): number[] {
  const total = checkParam(OrdersSchema, orders, 'orders').map(() => 0);
  ledger.forEach((entry, k) => {
    const { noiseMultiplier, sampleRate, steps } = checkParam(SampledGaussianSchema, entry, `ledger[${k}]`);
    if (steps === 0) return;
    orders.forEach((alpha, i) => {
      total[i]! += steps * rdpOfStep(sampleRate, noiseMultiplier, alpha);
    });
  });
  return total;
}

/** ε at one order by `conversion`, inputs already checked. */
function epsilonAt(alpha: number, rdp: number, logDelta: number, delta: number, conversion: Conversion): number {
  if (conversion === 'classic') return rdp - logDelta / (alpha - 1);
  // (0, δ) already holds when the total variation distance, at most √(1 − e^(−KL)) with KL ≤ RDP at any
  // order, is at most δ; TensorFlow Privacy's accountant takes the same shortcut.
  if (delta * delta + Math.expm1(-rdp) >= 0) return 0;
  return rdp + Math.log1p(-1 / alpha) - (logDelta + Math.log(alpha)) / (alpha - 1);
}

/**
 * The least ε over `orders` for which RDP `rdp` (one value per order) implies (ε, δ)-DP, and the order
 * that gave it.
 * - `classic`: ε = RDP_α − log δ/(α − 1) (Mironov 2017, proposition 3).
 * - `improved` (default): ε = RDP_α + log((α − 1)/α) − (log δ + log α)/(α − 1) (Balle et al. 2020,
 *   "Hypothesis testing interpretations and Rényi differential privacy", theorem 21; Canonne, Kamath and
 *   Steinke 2020, proposition 12), never above the classic one, and 0 when RDP is small enough that the
 *   total variation bound already gives (0, δ).
 * ε is never negative.
 *
 * @throws FtlError(INVALID_CONFIG) for δ outside (0, 1), bad orders, or an rdp that does not match them.
 * @example
 * const { epsilon, order } = epsilonFromRdp(DEFAULT_RDP_ORDERS, composeRdp(ledger), 1e-5);
 */
export function epsilonFromRdp(orders: readonly number[], rdp: readonly number[], delta: number, conversion: Conversion = 'improved'): PrivacySpent {
  checkParam(OrdersSchema, orders, 'orders');
  checkParam(DeltaSchema, delta, 'delta');
  checkParam(ConversionSchema, conversion, 'conversion');
  if (rdp.length !== orders.length) {
    throw new FtlError(ErrorCode.InvalidConfig, `rdp has ${rdp.length} values for ${orders.length} orders; give one RDP value per order`);
  }
  const bad = rdp.findIndex((r) => !(r >= 0));
  if (bad >= 0) throw new FtlError(ErrorCode.InvalidConfig, `rdp[${bad}] must be a number ≥ 0 (got ${rdp[bad]})`);
  const logDelta = Math.log(delta);
  let best = { epsilon: Number.POSITIVE_INFINITY, order: orders[0]! };
  orders.forEach((alpha, i) => {
    const epsilon = epsilonAt(alpha, rdp[i]!, logDelta, delta, conversion);
    if (epsilon < best.epsilon) best = { epsilon, order: alpha };
  });
  return { epsilon: Math.max(0, best.epsilon), delta, order: best.order, conversion };
}
