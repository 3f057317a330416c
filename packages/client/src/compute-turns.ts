/**
 * One turn at a time for CPU-heavy work (training, evaluation, feature extraction) of clients that share
 * one thread, as a simulation's in-process sites do. Each such task already gives the event loop a turn
 * between batches; interleaved across ten sites, one pass of the loop still held ten batches, enough under
 * load to hold a socket.io ping past its timeout. Taking turns, a pass holds one batch, and the total work
 * is the same: one thread computes one thing at a time whichever way it is scheduled.
 */
export class ComputeTurns {
  private tail: Promise<unknown> = Promise.resolve();

  /** Runs `work` once every task given before it has settled; its result or error is returned as is. */
  run<T>(work: () => Promise<T>): Promise<T> {
    const turn = this.tail.then(work);
    this.tail = turn.catch(() => undefined);
    return turn;
  }
}
