import { ErrorCode, FtlError } from '@ftl/shared';
import type { RunProgress } from './run-summary.js';

/**
 * A run's lifecycle: its stored statuses and the one table of moves between them, used by the store,
 * the run and the server alike (docs/architecture.md draws it).
 *
 * Two situations have no status of their own, because nothing outside the coordinator sees them apart
 * from `running`: waiting for sites is the `waiting-for-clients` phase of a running run, and a run a
 * shutdown interrupted stays `running` with no server hosting it, so the next start resumes it.
 */

/** Where a run stands; `stopped`, `completed` and `failed` are final for an operator (see {@link RUN_TRANSITIONS}). */
export type RunStatus = 'created' | 'running' | 'paused' | 'stopped' | 'completed' | 'failed';

/**
 * Why a run is where it is, recorded with the move that put it there: every move to `failed`, `stopped`
 * or `paused`, and to `completed` when the run ended before its last round (early stop, privacy budgets).
 * A move without one (back to `running`) clears it, so a run's reason is always about its latest move.
 */
export interface RunReason {
  /** One line: what happened and, for a failure, how to fix it. */
  message: string;
  /** The run's phase when it happened (its live progress phase, e.g. `waiting-for-clients`, `fit`). */
  phase: RunProgress['phase'];
  /** The round in progress then; 0 before round 1. */
  round: number;
  /** The error code of a failure (e.g. `TIMEOUT`, `QUORUM`); absent for a stop or pause. */
  code?: string;
}

/** Every {@link RunStatus}, to check values that come from outside the type system. */
export const RUN_STATUSES: readonly RunStatus[] = ['created', 'running', 'paused', 'stopped', 'completed', 'failed'];

/** The statuses no operator action leaves. */
export const FINAL_STATUSES: readonly RunStatus[] = ['stopped', 'completed', 'failed'];

/**
 * Every legal move, from → to, with what makes it. Any move not listed is a fault of the code that asks
 * for it. `running → running` is the resume of an interrupted run. A one-run coordinator (`Coordinator`)
 * continues whatever run its store holds under its id, so a finished run may go back to `running` there
 * (more rounds on the same database); the operator API refuses that ({@link OPERATOR_ACTIONS}), and so
 * does the CLI before anything loads (run-reuse.ts), except for a run stopped before any round trained.
 */
export const RUN_TRANSITIONS: Readonly<Record<RunStatus, Readonly<Partial<Record<RunStatus, string>>>>> = {
  created: { running: 'start', stopped: 'stop before starting' },
  running: {
    running: 'resume after a shutdown',
    paused: 'pause after a round',
    stopped: 'stop',
    completed: 'last round or early stop',
    failed: 'error',
  },
  paused: { running: 'resume', stopped: 'stop while paused' },
  stopped: { running: 'continue (one-run coordinator)' },
  completed: { running: 'continue (one-run coordinator)' },
  failed: { running: 'continue (one-run coordinator)' },
};

/** What an operator may ask of a run that is not the active one, and the statuses each is allowed from. */
export const OPERATOR_ACTIONS = {
  start: ['created'],
  resume: ['paused', 'running'],
  stop: ['created', 'running', 'paused'],
} as const satisfies Record<string, readonly RunStatus[]>;

/** Whether `from → to` is in {@link RUN_TRANSITIONS}. */
export function isRunTransition(from: RunStatus, to: RunStatus): boolean {
  return RUN_TRANSITIONS[from]?.[to] !== undefined;
}

/**
 * Checks one move of run `runId` against {@link RUN_TRANSITIONS}; throws FtlError naming both statuses
 * when it is not there. `code` says whose fault an illegal move is: INTERNAL_ERROR (the default) for a
 * move the coordinator itself should never make, CONFLICT for one an operator asked for.
 *
 * @example
 * checkRunTransition('r1', 'completed', 'paused', ErrorCode.Conflict); // throws: run r1 cannot go from completed to paused
 */
export function checkRunTransition(
  runId: string,
  from: RunStatus,
  to: RunStatus,
  code: typeof ErrorCode.InternalError | typeof ErrorCode.Conflict = ErrorCode.InternalError,
): void {
  if (isRunTransition(from, to)) return;
  const next = Object.keys(RUN_TRANSITIONS[from] ?? {});
  throw new FtlError(code, `run ${runId} cannot go from ${from} to ${to}; a ${from} run can go only to ${next.join(' or ')}`);
}
