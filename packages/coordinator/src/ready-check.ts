import { parseReady, rejectionFor, type Ack, type Ready } from '@ftl/shared';
import type { FederatedRun } from './federated-run.js';

/**
 * Checks a site's `ready` against the active run: parsed, for this run, and (normalised runs) with
 * statistics the run can use. Refused statistics leave the site out of the normalisation — recorded by
 * the run like any exclusion — never the run out of its rounds. Returns the report to keep, or the refusal.
 */
export function checkReady(run: FederatedRun | undefined, clientId: string, raw: unknown): { ready: Ready } | { refused: Ack } {
  let ready: Ready;
  try {
    ready = parseReady(raw);
  } catch (err) {
    // Statistics that contradict themselves are refused by the validator; the run records it like any exclusion.
    const rejection = rejectionFor(err);
    if (rejection.reason === 'bad-statistics') run?.excludeStatistics(clientId, rejection.message);
    return { refused: rejection };
  }
  if (ready.runId !== run?.runId) {
    return {
      refused: {
        accepted: false,
        reason: 'unknown-run',
        message: run ? `run "${ready.runId}" is not the current run "${run.runId}"` : 'no run is active',
      },
    };
  }
  const problem = ready.stats ? run.statisticsProblem(ready.stats) : undefined;
  if (problem !== undefined) {
    run.excludeStatistics(clientId, problem);
    return { refused: { accepted: false, reason: 'bad-statistics', message: problem } };
  }
  const tableProblem = run.tableSummaryProblem(ready.table);
  if (tableProblem !== undefined) {
    run.excludeStatistics(clientId, tableProblem);
    return { refused: { accepted: false, reason: 'bad-statistics', message: tableProblem } };
  }
  return { ready };
}
