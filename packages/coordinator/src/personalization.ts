import { deriveSeed } from '@ftl/shared';
import { backboneRate, privacyField, sendModel, type RunContext } from './run-context.js';
import type { PersonalizationRecord } from './run-summary.js';

/** After the last round: every ready client fine-tunes the final global head and reports both accuracies. */
export async function personalize(ctx: RunContext, round: number): Promise<PersonalizationRecord[]> {
  const { config, host, model } = ctx;
  const { runId, roundDeadlineMs, fit, personalizeEpochs } = config;
  const expected = host.readyClients(runId);
  ctx.setPhase('personalize', round);
  const { results } = await ctx.intake.collect('personalize', { runId, round, modelVersion: model.version, expected }, roundDeadlineMs, (collector) =>
    sendModel(ctx, collector, 'personalize', round, expected, 'disconnected before personalization', (i) => ({
      config: { ...fit, epochs: personalizeEpochs, seed: deriveSeed(config.seed, round + 1, i), ...backboneRate(ctx), ...privacyField(ctx) },
    })),
  );
  return [...results.entries()].map(([clientId, r]) => ({
    clientId,
    numExamples: r.numExamples,
    globalAccuracy: r.globalAccuracy,
    personalAccuracy: r.personalAccuracy,
    ...(r.privacy ? { epsilon: r.privacy.epsilon } : {}),
  }));
}
