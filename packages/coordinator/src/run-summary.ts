import type { RunEndReason, Weights } from '@ftl/shared';
import type { RoundRecord } from './round-table.js';

/** One client's post-training personalization report. */
export interface PersonalizationRecord {
  clientId: string;
  numExamples: number;
  globalAccuracy: number;
  personalAccuracy: number;
  /** Runs with record-level DP: the ε the site had spent after personalising, at the run's δ. */
  epsilon?: number;
}

/** How a run's `run()` ended: a protocol end reason, or `paused` (the run can be resumed later). */
export type RunOutcome = RunEndReason | 'paused';

/** What a finished (or paused) run returns. */
export interface RunSummary {
  runId: string;
  reason: RunOutcome;
  rounds: RoundRecord[];
  weights: Weights;
  modelVersion: number;
  exportDir?: string;
  /** Present when `personalizeEpochs` > 0. */
  personalization?: PersonalizationRecord[];
  /** With early stopping: the round whose global head `weights` (and the export) holds. */
  bestRound?: number;
  /** Why a run ended before its last round other than by a stop (e.g. every selected site's privacy budget spent). */
  message?: string;
}

/** Where a running run stands, for progress displays. */
export interface RunProgress {
  runId: string;
  phase: 'waiting-for-clients' | 'class-means' | 'fit' | 'evaluate' | 'personalize' | 'finishing' | 'idle';
  /** The round in progress (0 before the first). */
  round: number;
  rounds: number;
  /** Answers received / expected in the current phase. */
  received: number;
  expected: number;
  readyClients: number;
  minClients: number;
}
