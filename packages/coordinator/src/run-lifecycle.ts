import { join } from 'node:path';
import { ErrorCode, FtlError, type Logger } from '@ftl/shared';
import { applyRunConfig, type CoordinatorConfig } from './config.js';
import type { FederatedRun } from './federated-run.js';
import type { RoundListener } from './round-phases.js';
import { latestRoundPrivacy, type RoundPrivacy } from './round-privacy.js';
import type { RoundRecord } from './round-table.js';
import { parseRunConfig, type RunConfig } from './run-config.js';
import { FINAL_STATUSES, OPERATOR_ACTIONS, type RunReason, type RunStatus } from './run-states.js';
import type { RunProgress, RunSummary } from './run-summary.js';
import type { SiteState } from './site-state.js';
import type { Store, StoredRun } from './store/store.js';

/** A run as the operator sees it: stored definition and status, rounds, and live progress when running. */
export interface RunView {
  id: string;
  status: RunStatus;
  createdAt: string;
  updatedAt: string;
  config: RunConfig;
  /** Rounds recorded so far (the final one of a failed run included). */
  rounds: RoundRecord[];
  /** Present while the run is the server's active run. */
  live?: RunProgress;
  /** What the trust policy left out: a site's update, evaluation or statistics, with the round and why. */
  exclusions: ExclusionRecord[];
  /**
   * Runs with record-level DP: the latest round's privacy, each site's ε (spent on its data so far, at
   * δ, with its budget) and the sites that refused the round for their budget. Absent before any.
   */
  privacy?: RoundPrivacy;
  /**
   * Why the run is where it is: the message, phase and round its latest move recorded (a failure's error,
   * who stopped or paused it). Absent for a run that is created, running, or completed in full.
   */
  reason?: RunReason;
  /** Each site's last state in this run (connected, ready, training round k, failed with its error, …), by name. */
  sites: SiteState[];
}

/** A run in the list of runs: no rounds, configuration or sites, with its progress in rounds. */
export type RunListItem = Omit<RunView, 'rounds' | 'config' | 'exclusions' | 'privacy' | 'sites'> & { roundsDone: number; rounds: number };

/** One contribution a run's trust policy left out, as the store recorded it. */
export interface ExclusionRecord {
  type: 'update-excluded' | 'evaluation-excluded' | 'statistics-excluded' | 'class-sums-excluded';
  round: number;
  client: string;
  reason: string;
  message: string;
}

const EXCLUSION_EVENTS: ReadonlySet<string> = new Set(['update-excluded', 'evaluation-excluded', 'statistics-excluded', 'class-sums-excluded']);

/** What the lifecycle needs from the server that hosts its runs. */
export interface LifecycleHost {
  /** Server settings, and the defaults for runs created through the API. */
  readonly config: CoordinatorConfig;
  readonly store: Store | undefined;
  readonly log: Logger;
  /** Runs started through the API export their model to `<exportRoot>/<runId>` (default `.ftl/runs`). */
  readonly exportRoot: string | undefined;
  /** Builds a run on the server's backbone, refusing one the server cannot carry. */
  prepareRun(config: CoordinatorConfig): FederatedRun;
  /** Sends `run`'s welcome to every connected client. */
  welcomeAll(run: FederatedRun): void;
}

/**
 * The runs a server hosts, one active at a time: created, started, paused, resumed and stopped through
 * the operator API, or hosted directly by the one-run `Coordinator`. Status changes go through the store's
 * lifecycle table (run-states.ts); what an operator may ask of a stored run is checked here first, as CONFLICT.
 */
export class RunLifecycle {
  private active?: { run: FederatedRun; done: Promise<RunSummary | undefined>; finish: (s: RunSummary | undefined) => void; started: boolean };

  constructor(private readonly host: LifecycleHost) {}

  /** The active run, attached or running. */
  get activeRun(): FederatedRun | undefined {
    return this.active?.run;
  }

  /**
   * Makes `run` the server's active run before it starts: connected clients get its `welcome` now, and
   * clients that connect from now on get it as they join, so they can prepare and report ready early.
   */
  attach(run: FederatedRun): void {
    if (this.active?.run === run) return;
    if (this.active) {
      throw new FtlError(ErrorCode.Conflict, `run ${this.active.run.runId} is running; stop or pause it before starting ${run.runId}`);
    }
    let finish!: (s: RunSummary | undefined) => void;
    this.active = { run, done: new Promise((resolve) => (finish = resolve)), finish, started: false };
    this.host.welcomeAll(run);
  }

  /** Hosts `run` as the active run until it ends or pauses, then clears it. One run at a time. */
  async hostRun(run: FederatedRun, onRound?: RoundListener): Promise<RunSummary> {
    this.attach(run);
    const active = this.active!;
    active.started = true;
    try {
      const summary = await run.run(onRound);
      active.finish(summary);
      return summary;
    } catch (err) {
      active.finish(undefined);
      throw err;
    } finally {
      this.active = undefined;
    }
  }

  /**
   * A shutdown: the active run closes its open round now; the returned function waits for it to wind
   * down (a run attached but never started has nothing to wind down) and clears it.
   */
  interrupt(): () => Promise<void> {
    const active = this.active;
    active?.run.interrupt();
    return async () => {
      if (active?.started) await active.done;
      this.active = undefined;
    };
  }

  /**
   * Creates a run from a run configuration (an API body): validated, checked against the backbone and
   * stored with status `created`. Starting it is a separate step.
   */
  createRun(body: unknown): StoredRun {
    const store = this.requireStore();
    const run = parseRunConfig(body ?? {}, 'run config');
    const id = run.runId ?? `run-${Date.now().toString(36)}`;
    if (store.getRun(id)) throw new FtlError(ErrorCode.Conflict, `run "${id}" already exists; choose another runId`);
    this.host.prepareRun({ ...applyRunConfig(this.host.config, run), runId: id });
    const stored = store.createRun(id, { ...run, runId: id });
    store.appendEvent(id, 'run-created', { rounds: run.rounds, strategy: run.strategy.name });
    this.host.log.info('run-created', { run: id });
    return stored;
  }

  /** Starts a created run, or resumes a paused or interrupted one, in the background. */
  startRun(id: string, mode: 'start' | 'resume' = 'start'): RunStatus {
    const stored = this.storedRun(id);
    const allowed: readonly RunStatus[] = OPERATOR_ACTIONS[mode];
    if (!allowed.includes(stored.status) || this.active?.run.runId === id) {
      const hint = stored.status === 'paused' ? 'resume it' : FINAL_STATUSES.includes(stored.status) ? 'create a new run' : 'wait for it';
      throw new FtlError(
        ErrorCode.Conflict,
        `run ${id} is ${this.active?.run.runId === id ? 'already running' : stored.status}; cannot ${mode} it (${hint})`,
      );
    }
    const run = this.host.prepareRun(this.runConfig(stored));
    this.attach(run); // throws Conflict now, while another run is active
    const done = this.hostRun(run);
    done.then(
      (s) => this.host.log.info('run-finished', { run: id, reason: s.reason, rounds: s.rounds.length }),
      (err: unknown) => this.host.log.error('run-failed', { run: id, detail: (err as Error).message }),
    );
    return 'running';
  }

  /** Pauses the active run after its current round. */
  pauseRun(id: string): void {
    this.storedRun(id);
    if (this.active?.run.runId !== id) throw new FtlError(ErrorCode.Conflict, `run ${id} is not running; only the running run can be paused`);
    this.active.run.pause('by the operator');
  }

  /** Stops a run: the active one after its current round (its model is exported); a created or paused one at once. */
  stopRun(id: string): void {
    const stored = this.storedRun(id);
    if (this.active?.run.runId === id) {
      this.active.run.stop('by the operator');
      return;
    }
    if (!(OPERATOR_ACTIONS.stop as readonly RunStatus[]).includes(stored.status))
      throw new FtlError(ErrorCode.Conflict, `run ${id} is already ${stored.status}`);
    const done = this.host.store!.lastCommittedRound(id);
    const when = stored.status === 'created' ? 'before it started' : `while ${stored.status} after round ${done}`;
    this.host.store!.moveRun(id, 'stopped', { message: `stopped by the operator ${when}`, phase: 'idle', round: done });
    this.host.store!.appendEvent(id, 'run-end', { reason: 'stopped' });
  }

  /** Resumes runs a killed coordinator left `running`; returns their ids (the first is started). */
  resumeInterrupted(): string[] {
    const interrupted = (this.host.store?.listRuns() ?? []).filter((r) => r.status === 'running').map((r) => r.id);
    if (interrupted.length > 0 && !this.active) {
      this.host.log.info('resuming-interrupted-run', { run: interrupted[0] });
      this.startRun(interrupted[0]!, 'resume');
    }
    return interrupted;
  }

  /** A run with its rounds, and live progress when it is the active run. */
  runView(id: string): RunView {
    const stored = this.storedRun(id);
    const store = this.host.store!;
    const live = this.active?.run.runId === id ? this.active.run.progress() : undefined;
    const events = store.listEvents(id);
    const privacy = latestRoundPrivacy(events);
    return {
      id,
      status: stored.status,
      createdAt: stored.createdAt,
      updatedAt: stored.updatedAt,
      config: parseRunConfig(stored.config, `stored config of run ${id}`),
      rounds: store.listRounds(id).map((r) => r.record),
      ...(live ? { live } : {}),
      exclusions: events
        .filter((e) => EXCLUSION_EVENTS.has(e.type))
        .map((e) => ({ type: e.type, ...(e.data as Omit<ExclusionRecord, 'type'>) }) as ExclusionRecord),
      ...(privacy ? { privacy } : {}),
      ...(stored.reason ? { reason: stored.reason } : {}),
      sites: store.listSiteStates(id),
    };
  }

  /** Each site's last state in run `id`, by name. */
  runSites(id: string): SiteState[] {
    this.storedRun(id);
    return this.host.store!.listSiteStates(id);
  }

  /** Every run, newest first, without rounds. */
  listRuns(): RunListItem[] {
    return this.requireStore()
      .listRuns()
      .map((r) => ({
        id: r.id,
        status: r.status,
        createdAt: r.createdAt,
        updatedAt: r.updatedAt,
        roundsDone: this.host.store!.lastCommittedRound(r.id),
        rounds: (r.config as { rounds?: number }).rounds ?? 0,
        ...(this.active?.run.runId === r.id ? { live: this.active.run.progress() } : {}),
        ...(r.reason ? { reason: r.reason } : {}),
      }));
  }

  /** The server's store; FtlError(InvalidConfig) when it keeps none. */
  requireStore(): Store {
    if (!this.host.store)
      throw new FtlError(ErrorCode.InvalidConfig, 'this coordinator keeps no database; start it with ftl-coordinator serve --db FILE');
    return this.host.store;
  }

  /** The stored run `id`; FtlError(NotFound) when there is none. */
  storedRun(id: string): StoredRun {
    const run = this.requireStore().getRun(id);
    if (!run) throw new FtlError(ErrorCode.NotFound, `no run "${id}"; list runs with: ftl-coordinator runs list`);
    return run;
  }

  /** The full coordinator configuration of a stored run on this server. */
  runConfig(stored: StoredRun): CoordinatorConfig {
    const run = parseRunConfig(stored.config, `stored config of run ${stored.id}`);
    return { ...applyRunConfig(this.host.config, run), runId: stored.id, exportDir: join(this.host.exportRoot ?? '.ftl/runs', stored.id) };
  }
}
