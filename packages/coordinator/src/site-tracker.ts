import type { Logger } from '@ftl/shared';
import { MAX_SITE_MESSAGE, type SiteState, type SiteStateKind } from './site-state.js';
import type { Store } from './store/store.js';

/** Runs whose site states a coordinator without a store keeps in memory; older ones are forgotten. */
const RUNS_IN_MEMORY = 16;

/**
 * Keeps each site's last state per run ({@link SiteState}): in the store when the server has one, so the
 * API, the console and a restarted server read the same, otherwise in memory for the latest runs. The
 * server's connection handlers feed it; nothing a site does can make it throw into them.
 *
 * @example
 * const sites = new SiteTracker(store, log);
 * sites.set('r1', 'hospital-a', 'training', { round: 3 });
 * sites.list('r1'); // [{ client: 'hospital-a', state: 'training', round: 3, at: '…' }]
 */
export class SiteTracker {
  private readonly memory = new Map<string, Map<string, SiteState>>();

  constructor(
    private readonly store: Store | undefined,
    private readonly log: Logger,
  ) {}

  /**
   * Records `state` as the last state of `client` in run `runId`. A store that cannot take it costs one
   * log line (`site-state-not-stored`), never the message or connection that caused it.
   */
  set(runId: string, client: string, state: SiteStateKind, o: { round?: number; message?: string } = {}): void {
    const entry: SiteState = {
      client,
      state,
      ...(o.round !== undefined ? { round: o.round } : {}),
      ...(o.message !== undefined ? { message: o.message.slice(0, MAX_SITE_MESSAGE) } : {}),
      at: new Date().toISOString(),
    };
    if (!this.store) {
      this.remember(runId, entry);
      return;
    }
    try {
      this.store.recordSiteState(runId, entry);
    } catch (err) {
      this.log.warn('site-state-not-stored', { run: runId, client, state, detail: (err as Error).message });
    }
  }

  /** The last state of `client` in run `runId`, if any (undefined too when the store cannot be read). */
  get(runId: string, client: string): SiteState | undefined {
    try {
      return this.list(runId).find((s) => s.client === client);
    } catch {
      return undefined;
    }
  }

  /** Each site's last state in run `runId`, by name. */
  list(runId: string): SiteState[] {
    if (this.store) return this.store.listSiteStates(runId);
    return [...(this.memory.get(runId)?.values() ?? [])].sort((a, b) => a.client.localeCompare(b.client));
  }

  private remember(runId: string, entry: SiteState): void {
    let sites = this.memory.get(runId);
    if (!sites) {
      sites = new Map();
      this.memory.set(runId, sites);
      // Map order is insertion order: the first key is the run seen longest ago.
      if (this.memory.size > RUNS_IN_MEMORY) this.memory.delete(this.memory.keys().next().value!);
    }
    sites.set(entry.client, entry);
  }
}
