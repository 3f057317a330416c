import type { Logger } from '@ftl/shared';
import type { Store } from './store/store.js';

/** The kinds of contribution a run's trust policy leaves out, as the store records them. */
export type ExclusionType = 'update-excluded' | 'evaluation-excluded' | 'statistics-excluded' | 'class-sums-excluded';

/**
 * Records each contribution a run's trust policy left out, in the log and the store, with round and
 * reason. Sites report ready (and may be refused) before the run exists in the store: those records wait
 * here until {@link flush} writes them, once the run is created.
 */
export class ExclusionLog {
  private readonly unstored: Array<{ type: ExclusionType; data: Record<string, unknown> }> = [];

  constructor(
    private readonly runId: string,
    private readonly store: Store | undefined,
    private readonly log: Logger,
  ) {}

  /** Records one exclusion (`log` is the round's logger, when there is one). */
  record(type: ExclusionType, round: number, e: { clientId: string; reason: string; message: string }, log: Logger = this.log): void {
    log.warn(type, { client: e.clientId, reason: e.reason, detail: e.message });
    const event = { type, data: { round, client: e.clientId, reason: e.reason, message: e.message } };
    if (this.store?.getRun(this.runId)) this.store.appendEvent(this.runId, event.type, event.data);
    else if (this.store) this.unstored.push(event);
  }

  /** Writes the records kept while the run was not in the store yet. */
  flush(): void {
    for (const e of this.unstored.splice(0)) this.store?.appendEvent(this.runId, e.type, e.data);
  }
}
