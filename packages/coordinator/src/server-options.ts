import type { ChannelTransport } from '@ftl/shared';
import type { PeerBudgetOptions } from './peer-budget.js';

/** Server-level options beyond the coordinator configuration. */
export interface ServerOptions {
  /** Enables the operator REST API under /api, guarded by this bearer token. */
  operatorToken?: string;
  /** Runs started through the API export their model to `<exportRoot>/<runId>` (default `.ftl/runs`). */
  exportRoot?: string;
  /** Largest message on the live channel in bytes (default: twice the default run's head, plus 64 KiB). */
  maxMessageBytes?: number;
  /** Each connection's message rate and refusals in a row (default `DEFAULT_PEER_BUDGET`). */
  peerBudget?: PeerBudgetOptions;
  /**
   * Where the live channel runs (default: socket.io on the HTTP server). An in-process hub
   * (`createInprocHub` in `@ftl/shared`) carries it in memory for simulations: the same messages, framed
   * and limited by the same parser. The backbone download and the operator API stay on the HTTP server
   * either way, so `listen()` is still needed and clients still get its URL.
   */
  transport?: ChannelTransport;
  /** The built operator console the server serves at `/` (default packages/console/dist beside this package). */
  consoleDir?: string;
  /**
   * Serves `/metrics`, `/healthz` and `/readyz` without a token on this port too (plain HTTP; 0 picks a
   * free one), for a Prometheus that has no operator token. Without it `/metrics` is on the main port only,
   * behind the operator token.
   */
  metricsPort?: number;
  /** Where the metrics port listens (default 127.0.0.1: only this machine reaches it). */
  metricsHost?: string;
}
