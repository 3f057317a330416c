/** How much one connection may send before it is throttled, and how many refusals in a row it may collect. */
export interface PeerBudgetOptions {
  /** Messages per second a connection may send on average. */
  perSecond: number;
  /** Messages it may send at once before the rate applies. */
  burst: number;
  /** Refused messages in a row (no accepted one between) before the connection is closed. */
  maxRefusals: number;
}

/**
 * Generous for a site (a handful of messages per round) and tight for a flood: a peer that keeps sending
 * is throttled, and one whose messages keep being refused is disconnected.
 */
export const DEFAULT_PEER_BUDGET: PeerBudgetOptions = { perSecond: 20, burst: 60, maxRefusals: 20 };

/**
 * One connection's budget: a token bucket for its message rate and a count of refusals in a row. Pure
 * state with an injectable clock, so it is tested without sockets or waiting.
 *
 * @example
 * const budget = new PeerBudget();
 * if (!budget.take()) refuse('rate-limited');
 * if (ack.accepted) budget.accepted(); else if (budget.refused()) disconnect();
 */
export class PeerBudget {
  private tokens: number;
  private last: number;
  private refusals = 0;

  constructor(
    private readonly options: PeerBudgetOptions = DEFAULT_PEER_BUDGET,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = options.burst;
    this.last = now();
  }

  /** Takes one message from the budget; false when the connection is over its rate. */
  take(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.options.burst, this.tokens + ((t - this.last) / 1000) * this.options.perSecond);
    this.last = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** An accepted message: the refusals in a row start again from zero. */
  accepted(): void {
    this.refusals = 0;
  }

  /** A refused message; true when the connection has now used up its refusals and should be closed. */
  refused(): boolean {
    this.refusals += 1;
    return this.refusals >= this.options.maxRefusals;
  }
}
