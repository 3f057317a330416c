import type { ChannelStats, SiteTableSummary, TableSummary } from '@ftl/shared';
import type { Store } from './store/store.js';

/** What a connected client said when it reported ready for a run. */
export interface ReadyReport {
  runId: string;
  numTrain: number;
  numVal: number;
  labels?: string[];
}

/** One live connection in the registry, by site name. */
export interface ClientEntry<S> {
  id: string;
  socket: S;
  ready?: ReadyReport;
  /** Channel statistics sent with `ready` (federated normalisation); never shown to the operator API. */
  stats?: ChannelStats;
  /** The summary of its training table sent with `ready` (tabular runs); never shown to the operator API. */
  table?: TableSummary;
}

/** A client as the operator sees it: registration (with a store) and live connection state. */
export interface ClientView {
  name: string;
  registered: boolean;
  revoked: boolean;
  createdAt?: string;
  lastSeen?: string;
  connected: boolean;
  /** The run this client reported ready for, with its sample counts and labels. */
  ready?: ReadyReport;
}

/**
 * The connected clients, one per site name, and what each reported ready for: the part of the server a
 * run sees through `RunHost` (who is ready, what each declared, their statistics). Holds no sockets'
 * logic, only the entries.
 */
export class ClientRegistry<S> {
  private readonly clients = new Map<string, ClientEntry<S>>();
  private readonly readyListeners = new Set<() => void>();

  /** How many clients are connected. */
  get size(): number {
    return this.clients.size;
  }

  /** The connection under `name`, if any. */
  get(name: string): ClientEntry<S> | undefined {
    return this.clients.get(name);
  }

  /** The names of every connected client. */
  names(): string[] {
    return [...this.clients.keys()];
  }

  /** Adds a connection under its name, replacing any earlier entry of the name. */
  add(entry: ClientEntry<S>): void {
    this.clients.set(entry.id, entry);
  }

  /** Removes the entry of `name` if it still holds `socket` (a newer connection may have replaced it); true if removed. */
  remove(name: string, socket: S): boolean {
    if (this.clients.get(name)?.socket !== socket) return false;
    this.clients.delete(name);
    return true;
  }

  /** Records what `entry` reported ready with; {@link notifyReady} then tells the listeners. */
  markReady(entry: ClientEntry<S>, ready: ReadyReport, stats: ChannelStats | undefined, table?: TableSummary): void {
    entry.ready = ready;
    if (stats) entry.stats = stats;
    else delete entry.stats;
    if (table) entry.table = table;
    else delete entry.table;
  }

  /** Tells every ready listener that a client became ready. */
  notifyReady(): void {
    for (const listener of [...this.readyListeners]) listener();
  }

  /** Connected clients that said they are ready for `runId`, sorted. */
  readyClients(runId: string): string[] {
    return [...this.clients.values()]
      .filter((c) => c.ready?.runId === runId)
      .map((c) => c.id)
      .sort();
  }

  /** The sample counts a ready client of `runId` declared. */
  declaredCounts(runId: string, clientId: string): { numTrain: number; numVal: number } | undefined {
    const ready = this.clients.get(clientId)?.ready;
    return ready?.runId === runId ? { numTrain: ready.numTrain, numVal: ready.numVal } : undefined;
  }

  /** The channel statistics ready clients of `runId` reported, by client. */
  readyStats(runId: string): Array<{ clientId: string; stats: ChannelStats }> {
    return [...this.clients.values()]
      .filter((c) => c.ready?.runId === runId && c.stats)
      .map((c) => ({ clientId: c.id, stats: c.stats! }))
      .sort((a, b) => a.clientId.localeCompare(b.clientId));
  }

  /** The table summaries ready clients of `runId` reported, by client, with the training rows each declared. */
  readyTables(runId: string): Array<{ clientId: string } & SiteTableSummary> {
    return [...this.clients.values()]
      .filter((c) => c.ready?.runId === runId && c.table)
      .map((c) => ({ clientId: c.id, summary: c.table!, rows: c.ready!.numTrain }))
      .sort((a, b) => a.clientId.localeCompare(b.clientId));
  }

  /** Calls `listener` whenever a client becomes ready; returns the unsubscribe function. */
  onClientReady(listener: () => void): () => void {
    this.readyListeners.add(listener);
    return () => this.readyListeners.delete(listener);
  }

  /** Registered (in `store`) and connected clients, by name. */
  views(store: Store | undefined): ClientView[] {
    const views = new Map<string, ClientView>();
    for (const c of store?.listClients() ?? []) {
      views.set(c.name, {
        name: c.name,
        registered: true,
        revoked: c.revoked,
        createdAt: c.createdAt,
        connected: false,
        ...(c.lastSeen ? { lastSeen: c.lastSeen } : {}),
      });
    }
    for (const c of this.clients.values()) {
      const view = views.get(c.id) ?? { name: c.id, registered: false, revoked: false, connected: true };
      views.set(c.id, { ...view, connected: true, ...(c.ready ? { ready: c.ready } : {}) });
    }
    return [...views.values()].sort((a, b) => a.name.localeCompare(b.name));
  }
}
