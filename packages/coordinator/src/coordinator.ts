import type { HeadConfig, Logger } from '@ftl/shared';
import type { CoordinatorConfig } from './config.js';
import { CoordinatorServer, type ServerOptions } from './coordinator-server.js';
import type { FederatedRun } from './federated-run.js';
import type { RoundListener } from './round-phases.js';
import type { RunSummary } from './run-summary.js';
import type { Store } from './store/store.js';

export { scheduledFit } from './round-phases.js';
export type { PersonalizationRecord, RunSummary } from './run-summary.js';

/**
 * One run, start to finish: a {@link CoordinatorServer} hosting a single {@link FederatedRun} defined by
 * `config`. This is what `ftl-coordinator` without a subcommand, the demo and the simulations use; the
 * long-lived service with the operator API is `ftl-coordinator serve`.
 *
 * @example
 * const c = await Coordinator.create(config, log);
 * const { url } = await c.listen();
 * const summary = await c.run((r) => console.log(formatRoundRow(r, config.rounds)));
 * await c.close();
 */
export class Coordinator {
  private constructor(
    readonly server: CoordinatorServer,
    private readonly federatedRun: FederatedRun,
  ) {}

  /**
   * Loads the backbone, sizes the head from its feature layer and prepares the servers. `options` as the
   * server's; `transport` there runs the live channel in memory (`createInprocHub`) for a simulation.
   *
   * @example
   * const hub = createInprocHub();
   * const c = await Coordinator.create(config, log, undefined, { transport: hub });
   * const { url } = await c.listen(); // the backbone is still fetched over HTTP from `url`
   * new FtlClient({ serverUrl: url, connect: hub.connect, … });
   */
  static async create(config: CoordinatorConfig, log: Logger, store?: Store, options: ServerOptions = {}): Promise<Coordinator> {
    const server = await CoordinatorServer.create(config, log, store, options);
    const run = server.prepareRun(config);
    server.attach(run);
    return new Coordinator(server, run);
  }

  get config(): CoordinatorConfig {
    return this.federatedRun.config;
  }

  get head(): HeadConfig {
    return this.federatedRun.head;
  }

  /** Starts listening; resolves with the bound port and base URL (and the metrics port's, with `metricsPort`). */
  listen(): Promise<{ port: number; url: string; metricsUrl?: string }> {
    return this.server.listen();
  }

  /** Ids of connected clients whose features are ready for the run. */
  readyClients(): string[] {
    return this.server.readyClients(this.config.runId);
  }

  /**
   * Runs the whole federated run (resuming it when the store already has it) and waits, bounded, for
   * the clients to leave after `run-end`, so closing right after does not cut the message off.
   */
  async run(onRound?: RoundListener): Promise<RunSummary> {
    try {
      return await this.server.host(this.federatedRun, onRound);
    } finally {
      await this.server.drain(3000);
    }
  }

  /** Asks the run to stop after the current round; `by` says who asked, in the reason the run records. */
  stop(by?: string): void {
    this.federatedRun.stop(by);
  }

  /** Closes every connection and the servers. */
  async close(): Promise<void> {
    await this.server.close();
  }
}
