import { z } from 'zod';
import { ErrorCode, FtlError } from '../errors.js';
import { list, record } from '../protocol/fields.js';
import { checkParam, type Conversion, EpsilonSchema, OrdersSchema, type SampledGaussian, SampledGaussianSchema } from './params.js';
import { DEFAULT_RDP_ORDERS, epsilonFromRdp, type PrivacySpent, rdpOfStep } from './rdp.js';

/** What a saved accountant is: the format's name, so another JSON file is not taken for one. */
export const RDP_ACCOUNTANT_FORMAT = 'ftl-rdp-accountant';
/** A saved accountant's version; a later format that cannot be read as this one gets a new number. */
export const RDP_ACCOUNTANT_VERSION = 1;
/** Entries a saved ledger may hold: one per distinct (q, σ), so far more than any run has. */
const MAX_LEDGER_ENTRIES = 100_000;

const RdpAccountantStateSchema = record({
  format: z.literal(RDP_ACCOUNTANT_FORMAT, { error: `"${RDP_ACCOUNTANT_FORMAT}"` }),
  version: z.literal(RDP_ACCOUNTANT_VERSION, { error: `${RDP_ACCOUNTANT_VERSION}` }),
  orders: OrdersSchema,
  ledger: list(SampledGaussianSchema, MAX_LEDGER_ENTRIES),
});

/**
 * An accountant as JSON: its orders and its ledger, one entry per distinct (sampleRate, noiseMultiplier)
 * in the order first used. ε is recomputed from the ledger, so a resumed accountant reports exactly the
 * ε the saved one did.
 */
export type RdpAccountantState = z.output<typeof RdpAccountantStateSchema>;

/** Options of an ε query. */
export interface EpsilonOptions {
  /** RDP to (ε, δ) conversion; `improved` unless said otherwise (see `epsilonFromRdp`). */
  conversion?: Conversion;
}

/**
 * A Rényi-DP accountant for the sampled Gaussian mechanism: a ledger of what was run (each round's
 * sample rate, noise multiplier and steps), from which it reports the (ε, δ) spent so far and whether
 * one more round would go over a budget. It is pure: a site saves `serialize()` where it keeps its
 * state and resumes with `deserialize`, so the budget holds across runs.
 *
 * @example
 * const accountant = new RdpAccountant();
 * if (accountant.wouldExceed(8, 1e-5, round)) refuse();
 * else { train(); accountant.step(round); }
 * accountant.epsilon(1e-5); // { epsilon, delta: 1e-5, order, conversion: 'improved' }
 */
export class RdpAccountant {
  readonly orders: readonly number[];
  private readonly entries: SampledGaussian[] = [];
  /** RDP of one step at each order, by (q, σ): the same mechanism is not recomputed every round. */
  private readonly perStep = new Map<string, readonly number[]>();

  /** @throws FtlError(INVALID_CONFIG) when `orders` is not 1–1000 distinct numbers in (1, 10000]. */
  constructor(options: { orders?: readonly number[] } = {}) {
    this.orders = Object.freeze([...checkParam(OrdersSchema, options.orders ?? DEFAULT_RDP_ORDERS, 'orders')]);
  }

  /** The ledger: one entry per distinct (sampleRate, noiseMultiplier), steps added up, in order of first use. */
  get ledger(): readonly Readonly<SampledGaussian>[] {
    return this.entries.map((e) => ({ ...e }));
  }

  /**
   * Records `steps` runs of the sampled Gaussian mechanism. Steps of a (q, σ) already in the ledger are
   * added to its entry: RDP composition is a sum, so the order of rounds does not change ε.
   *
   * @throws FtlError(INVALID_CONFIG) for σ ≤ 0, q outside [0, 1], or steps not an integer ≥ 0.
   */
  step(mechanism: SampledGaussian): this {
    const m = checkParam(SampledGaussianSchema, mechanism, 'step');
    if (m.steps === 0) return this;
    const same = this.entries.find((e) => e.sampleRate === m.sampleRate && e.noiseMultiplier === m.noiseMultiplier);
    if (same) {
      const steps = same.steps + m.steps;
      if (!Number.isSafeInteger(steps)) throw new FtlError(ErrorCode.InvalidConfig, `step: ${same.steps} + ${m.steps} steps is past 2^53`);
      same.steps = steps;
    } else this.entries.push({ ...m });
    return this;
  }

  /** RDP spent so far at each of `orders`. */
  rdp(): number[] {
    return this.rdpOf(this.entries);
  }

  /**
   * The (ε, δ) guarantee of everything in the ledger, at the order that gives the least ε.
   *
   * @throws FtlError(INVALID_CONFIG) for δ outside (0, 1).
   */
  epsilon(delta: number, options: EpsilonOptions = {}): PrivacySpent {
    return epsilonFromRdp(this.orders, this.rdp(), delta, options.conversion);
  }

  /** The (ε, δ) guarantee the ledger would have after `next` too; the accountant is not changed. */
  epsilonAfter(next: SampledGaussian, delta: number, options: EpsilonOptions = {}): PrivacySpent {
    const m = checkParam(SampledGaussianSchema, next, 'next');
    return epsilonFromRdp(this.orders, this.rdpOf([...this.entries, m]), delta, options.conversion);
  }

  /**
   * Whether running `next` as well would take ε past `budget` at this δ: a site asks before each round
   * and refuses to train when it would.
   *
   * @throws FtlError(INVALID_CONFIG) for a budget that is not a positive number, or bad `next` or δ.
   */
  wouldExceed(budget: number, delta: number, next: SampledGaussian, options: EpsilonOptions = {}): boolean {
    checkParam(EpsilonSchema, budget, 'budget');
    return this.epsilonAfter(next, delta, options).epsilon > budget;
  }

  /** The accountant as a JSON-safe object; `deserialize` reads it back. */
  serialize(): RdpAccountantState {
    return { format: RDP_ACCOUNTANT_FORMAT, version: RDP_ACCOUNTANT_VERSION, orders: [...this.orders], ledger: this.entries.map((e) => ({ ...e })) };
  }

  /**
   * An accountant from `serialize()`'s output, as an object or as its JSON text.
   *
   * @throws FtlError(INVALID_CONFIG) saying what is wrong with it: not JSON, another format, a bad entry.
   * @example
   * const accountant = existsSync(path) ? RdpAccountant.deserialize(readFileSync(path, 'utf8')) : new RdpAccountant();
   */
  static deserialize(saved: unknown): RdpAccountant {
    let v = saved;
    if (typeof saved === 'string') {
      try {
        v = JSON.parse(saved);
      } catch (err) {
        throw new FtlError(
          ErrorCode.InvalidConfig,
          `privacy ledger is not JSON (${(err as Error).message}); restore it from a backup or start a new one`,
          {
            cause: err,
          },
        );
      }
    }
    const state = checkParam(RdpAccountantStateSchema, v, 'privacy ledger');
    const accountant = new RdpAccountant({ orders: state.orders });
    for (const entry of state.ledger) accountant.step(entry);
    return accountant;
  }

  private rdpOf(entries: readonly SampledGaussian[]): number[] {
    const total = this.orders.map(() => 0);
    for (const { sampleRate, noiseMultiplier, steps } of entries) {
      const key = `${sampleRate}/${noiseMultiplier}`;
      let one = this.perStep.get(key);
      if (!one) this.perStep.set(key, (one = this.orders.map((alpha) => rdpOfStep(sampleRate, noiseMultiplier, alpha))));
      one.forEach((r, i) => {
        total[i]! += steps * r;
      });
    }
    return total;
  }
}
