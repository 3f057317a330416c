import type { Ack, ByteCounter } from '@ftl/shared';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RoundPrivacy } from './round-privacy.js';
import type { RoundRecord } from './round-table.js';
import type { RunMetrics } from './run-host.js';

/** What the metrics read from their server when Prometheus scrapes. */
export interface MetricsSource {
  /** Bytes through the live channel's parser since the server started (`CoordinatorServer.bytes`). */
  readonly bytes: ByteCounter;
  /** Connected sites. */
  connectedClients(): number;
  /** Sites ready for the active run (0 without one). */
  readyClients(): number;
  /** The latest round's privacy of the active run (or the run hosted last), when it has any. */
  latestPrivacy(): { runId: string; privacy: RoundPrivacy } | undefined;
}

/** Round lengths in seconds: a few seconds on small heads, minutes with deadlines and slow sites. */
const ROUND_BUCKETS = [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800];
/** Aggregation in seconds: milliseconds for a head, seconds for fine-tuned layers with robust rules. */
const AGGREGATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30];

/**
 * One server's metrics in the Prometheus text format (docs/operations.md lists them), on a registry of its
 * own rather than prom-client's global one, so several servers in one process (tests, simulations) never
 * share or collide. Counters that the server already keeps (bytes) and gauges of its state (clients, ε)
 * are read when scraped; the rest are counted as things happen.
 *
 * @example
 * const metrics = new CoordinatorMetrics(server);
 * res.writeHead(200, { 'content-type': metrics.contentType }).end(await metrics.text());
 */
export class CoordinatorMetrics implements RunMetrics {
  private readonly registry = new Registry();
  private readonly rounds: Counter<'run'>;
  private readonly roundSeconds: Histogram;
  private readonly aggregationSeconds: Histogram;
  private readonly accepted: Counter<'run'>;
  private readonly rejected: Counter<'run' | 'reason'>;
  private processMetrics = false;

  constructor(source: MetricsSource) {
    const registers = [this.registry];
    new Gauge({
      name: 'ftl_clients_connected',
      help: 'Sites connected to the live channel now.',
      registers,
      collect() {
        this.set(source.connectedClients());
      },
    });
    new Gauge({
      name: 'ftl_clients_ready',
      help: 'Connected sites ready for the active run (0 without one).',
      registers,
      collect() {
        this.set(source.readyClients());
      },
    });
    new Counter({
      name: 'ftl_channel_bytes_total',
      help: 'Bytes of live-channel frames through the coordinator, received from sites (in) and sent to them (out).',
      labelNames: ['direction'] as const,
      registers,
      collect() {
        // The parser counts every frame; the counter shows its totals as they are at the scrape.
        this.reset();
        this.inc({ direction: 'in' }, source.bytes.received);
        this.inc({ direction: 'out' }, source.bytes.sent);
      },
    });
    new Gauge({
      name: 'ftl_privacy_epsilon',
      help: 'Runs with record-level DP: the ε each site reported spent on its data after the latest round (at the run δ).',
      labelNames: ['run', 'site'] as const,
      registers,
      collect() {
        this.reset();
        const latest = source.latestPrivacy();
        for (const s of latest?.privacy.sites ?? []) this.set({ run: latest!.runId, site: s.client }, s.epsilon);
      },
    });
    this.rounds = new Counter({
      name: 'ftl_rounds_completed_total',
      help: 'Rounds committed with their checkpoint (aggregated, or the previous model kept), by run.',
      labelNames: ['run'] as const,
      registers,
    });
    this.roundSeconds = new Histogram({
      name: 'ftl_round_duration_seconds',
      help: 'Length of every round played to its end, from selection to evaluation (rounds without quorum too).',
      buckets: ROUND_BUCKETS,
      registers,
    });
    this.aggregationSeconds = new Histogram({
      name: 'ftl_aggregation_seconds',
      help: "The strategy's aggregation of a round's kept updates.",
      buckets: AGGREGATION_BUCKETS,
      registers,
    });
    this.accepted = new Counter({
      name: 'ftl_updates_accepted_total',
      help: 'Site updates (fit-result, or a masked input under secure aggregation) that passed every check and were acknowledged as accepted, by run.',
      labelNames: ['run'] as const,
      registers,
    });
    this.rejected = new Counter({
      name: 'ftl_updates_rejected_total',
      help: 'Site updates (fit-result, or a masked input under secure aggregation) acknowledged as refused, by run and the reason of the acknowledgement.',
      labelNames: ['run', 'reason'] as const,
      registers,
    });
  }

  /** The Content-Type of {@link text}. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every metric in the Prometheus text format, read now. */
  async text(): Promise<string> {
    // Registered at the first scrape, not with the server: a simulation's many servers that nobody
    // scrapes then start no event-loop or GC observers.
    if (!this.processMetrics) {
      collectDefaultMetrics({ register: this.registry });
      this.processMetrics = true;
    }
    return this.registry.metrics();
  }

  /** Counts one acknowledged update of run `runId` (`unknown` when no run was active). */
  updateAnswered(runId: string | undefined, ack: Ack): void {
    const run = runId ?? 'unknown';
    if (ack.accepted) this.accepted.inc({ run });
    else this.rejected.inc({ run, reason: ack.reason });
  }

  roundPlayed(runId: string, record: RoundRecord): void {
    this.roundSeconds.observe(record.seconds);
    if (record.status !== 'no-quorum') this.rounds.inc({ run: runId });
  }

  aggregated(_runId: string, seconds: number): void {
    this.aggregationSeconds.observe(seconds);
  }
}
