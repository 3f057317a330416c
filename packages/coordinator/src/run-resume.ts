import { assertSameSpecs } from '@ftl/shared';
import { toRunConfig } from './config.js';
import type { RunContext } from './run-context.js';
import type { RoundRecord } from './round-table.js';

/**
 * Creates the run in the store, or, when the store already has it (a restart, a resume after a pause,
 * a run created through the API), restores the global weights, model version and strategy state from
 * its newest valid checkpoint and returns the rounds already done, so the run continues with the next.
 * Either way the run is `running` afterwards.
 */
export function resumeRun(ctx: RunContext): RoundRecord[] {
  const { config, store, log, model, strategy } = ctx;
  const { runId } = config;
  if (!store) return [];
  const existing = store.getRun(runId);
  if (!existing) {
    store.createRun(runId, toRunConfig(config));
    store.moveRun(runId, 'running');
    store.appendEvent(runId, 'run-start', { rounds: config.rounds, strategy: config.strategy.name });
    ctx.exclusions.flush();
    return [];
  }
  const done = store.listRounds(runId).map((r) => r.record);
  const checkpoint = store.latestCheckpoint(runId, (round, why) => log.warn('checkpoint-corrupt', { round, why }));
  if (checkpoint) {
    // The checkpointed round decides the trainable set (gradual unfreezing grows it over the rounds).
    const expected = ctx.sets.forRound(checkpoint.round).specs;
    assertSameSpecs(checkpoint.specs, expected);
    model.weights = { specs: expected, values: checkpoint.values };
    model.version = checkpoint.modelVersion;
    strategy.restore(checkpoint.strategyState);
  }
  // Rounds that changed the model after the last valid checkpoint (its successor was corrupt) are run
  // again from it; failed rounds in between changed nothing and stay done.
  const validUpTo = checkpoint?.round ?? 0;
  const cut = done.findIndex((r) => r.round > validUpTo && r.status !== 'no-quorum');
  if (cut >= 0) {
    store.discardRoundsAfter(runId, done[cut]!.round - 1);
    done.length = cut;
  }
  store.moveRun(runId, 'running');
  const event = done.length === 0 && existing.status === 'created' ? 'run-start' : 'run-resumed';
  store.appendEvent(runId, event, { afterRound: done.length, modelVersion: model.version });
  log.info(event, { afterRound: done.length, modelVersion: model.version });
  return done;
}
