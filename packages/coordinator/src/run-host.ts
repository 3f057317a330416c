import type { ByteCounter, ChannelStats, ServerToClientEvents, SiteTableSummary } from '@ftl/shared';
import type { RoundRecord } from './round-table.js';

/** What a run reports to its host's metrics (metrics.ts) as it goes. */
export interface RunMetrics {
  /** A round was played to its end: committed, or recorded without quorum (a retried one too). */
  roundPlayed(runId: string, record: RoundRecord): void;
  /** The strategy aggregated a round's kept updates in `seconds`. */
  aggregated(runId: string, seconds: number): void;
}

/** What a run needs from the server that hosts it: the connected clients and a way to reach them. */
export interface RunHost {
  /** Bytes through the socket.io parser, for per-round traffic figures. */
  readonly bytes: ByteCounter;
  /** Where the run reports rounds and aggregation times; a host may keep no metrics. */
  readonly metrics?: RunMetrics;
  /** Connected clients that said they are ready for `runId`, sorted. */
  readyClients(runId: string): string[];
  /** Sends one event to one client; false when it is not connected. */
  send<E extends keyof ServerToClientEvents>(clientId: string, event: E, message: Parameters<ServerToClientEvents[E]>[0]): boolean;
  /** Sends one event to every connected client. */
  broadcast<E extends keyof ServerToClientEvents>(event: E, message: Parameters<ServerToClientEvents[E]>[0]): void;
  /** The channel statistics ready clients of `runId` reported (federated normalisation). */
  readyStats(runId: string): Array<{ clientId: string; stats: ChannelStats }>;
  /** The table summaries ready clients of `runId` reported (tabular runs), with their declared training rows. */
  readyTables?(runId: string): Array<{ clientId: string } & SiteTableSummary>;
  /** Calls `listener` whenever a client becomes ready; returns the unsubscribe function. */
  onClientReady(listener: () => void): () => void;
  /** The sample counts a ready client of `runId` declared: what its updates and evaluations may claim at most. */
  declaredCounts(runId: string, clientId: string): { numTrain: number; numVal: number } | undefined;
}
