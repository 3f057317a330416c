import { rejectionFor, type Ack, type Envelope, type Rejection, type RejectReason } from '@ftl/shared';

/** Rejections a round keeps with their reasons (for the store and the operator); the rest are only counted. */
export const MAX_KEPT_REJECTIONS = 100;

/** What a round is waiting for. */
export interface RoundTarget {
  runId: string;
  round: number;
  modelVersion: number;
  /** Client ids asked to answer. */
  expected: readonly string[];
}

/** How a round's collection ended. */
export interface Collected<R> {
  /** Accepted answers by client, in the round's selection order (`expected`), not in arrival order. */
  results: Map<string, R>;
  /** Clients that disconnected or reported a failure before answering, with why. */
  failures: Map<string, string>;
  /** Rejected submissions, in arrival order: the first {@link MAX_KEPT_REJECTIONS} of them. */
  rejected: Array<{ clientId: string; ack: Rejection }>;
  /** How many submissions were rejected in all (a flood is counted, not kept). */
  rejectedCount: number;
  /** True when the deadline closed the round before every expected client had answered. */
  timedOut: boolean;
}

/**
 * Collects one round's answers: settles when every expected client has answered or failed, or when the
 * deadline passes, whichever comes first, so a missing client never stalls a run. Checks every submission
 * against the round before accepting it and answers with an {@link Ack}; has no sockets, so it is tested alone.
 *
 * @example
 * const c = new RoundCollector<FitResult>(target, 60_000);
 * socket.on('fit-result', (m, ack) => ack(c.submit(id, parsed, () => validate(parsed))));
 * const { results } = await c.settled;
 */
export class RoundCollector<R extends Envelope> {
  readonly settled: Promise<Collected<R>>;
  private readonly state: Collected<R> = { results: new Map(), failures: new Map(), rejected: [], rejectedCount: 0, timedOut: false };
  private closed = false;
  private resolve!: (c: Collected<R>) => void;
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly target: RoundTarget,
    deadlineMs: number,
  ) {
    this.settled = new Promise((resolve) => (this.resolve = resolve));
    this.timer = setTimeout(() => this.close(true), deadlineMs);
    this.timer.unref?.();
    this.maybeSettle();
  }

  /** How many expected clients have answered so far (accepted). */
  get answered(): number {
    return this.state.results.size;
  }

  /**
   * Checks a parsed submission against the round (run, round, model version, selection, duplicates,
   * deadline), then runs `accept` (content checks; it may throw a validation error and should return the
   * value to keep). Returns the acknowledgement to send.
   */
  submit(clientId: string, message: Envelope, accept: () => R): Ack {
    const t = this.target;
    const reject = (reason: RejectReason, text: string): Ack => this.reject(clientId, { accepted: false, reason, message: text });
    if (message.runId !== t.runId) return reject('unknown-run', `run "${message.runId}" is not the current run "${t.runId}"`);
    if (message.round !== t.round) return reject('stale-round', `update is for round ${message.round} but round ${t.round} is open`);
    if (message.modelVersion !== t.modelVersion) {
      return reject('stale-model', `update was built on model version ${message.modelVersion}, the round sent version ${t.modelVersion}`);
    }
    if (!t.expected.includes(clientId)) return reject('not-selected', `client "${clientId}" was not selected for round ${t.round}`);
    if (this.closed) return reject('round-closed', `round ${t.round} closed at its deadline before this update arrived`);
    if (this.state.results.has(clientId)) return reject('duplicate', `client "${clientId}" already answered round ${t.round}`);
    if (this.state.failures.has(clientId)) return reject('round-closed', `client "${clientId}" was already counted as failed this round`);
    let value: R;
    try {
      value = accept();
    } catch (err) {
      // The site may send a corrected answer while the round is open; one that will not says so with `failure`.
      return this.reject(clientId, rejectionFor(err));
    }
    this.state.results.set(clientId, value);
    this.maybeSettle();
    return { accepted: true };
  }

  /** Records a refused submission (also one that failed validation before reaching {@link submit}). */
  reject(clientId: string, rejection: Rejection): Rejection {
    this.state.rejectedCount += 1;
    if (this.state.rejected.length < MAX_KEPT_REJECTIONS) this.state.rejected.push({ clientId, ack: rejection });
    return rejection;
  }

  /** Counts an expected client out of the round (disconnected, or it reported a failure). */
  fail(clientId: string, why: string): void {
    if (this.closed || !this.target.expected.includes(clientId) || this.state.results.has(clientId)) return;
    this.state.failures.set(clientId, why);
    this.maybeSettle();
  }

  /** Ends collection now (deadline, or the run is stopping). */
  close(timedOut = false): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.state.timedOut = timedOut;
    for (const id of this.target.expected) {
      if (!this.state.results.has(id) && !this.state.failures.has(id)) this.state.failures.set(id, 'no answer before the deadline');
    }
    // Selection order, not arrival order: the same answers always aggregate in the same order, so a
    // seeded run ends on the same weights bit for bit however the network timed them.
    const arrived = this.state.results;
    this.state.results = new Map(this.target.expected.filter((id) => arrived.has(id)).map((id) => [id, arrived.get(id)!]));
    this.resolve(this.state);
  }

  private maybeSettle(): void {
    const s = this.state;
    if (this.target.expected.every((id) => s.results.has(id) || s.failures.has(id))) this.close(false);
  }
}
