import { deriveSeed, encodeWeights, PROTOCOL_VERSION } from '@ftl/shared';
import { backboneRate, normalizationField, type RunContext } from './run-context.js';
import type { PersonalizationRecord } from './run-summary.js';

/** After the last round: every ready client fine-tunes the final global head and reports both accuracies. */
export async function personalize(ctx: RunContext, round: number): Promise<PersonalizationRecord[]> {
  const { config, host, model } = ctx;
  const { runId, roundDeadlineMs, fit, personalizeEpochs } = config;
  const expected = host.readyClients(runId);
  ctx.setPhase('personalize', round);
  const weights = encodeWeights(model.weights);
  const { results } = await ctx.intake.collect(
    'personalize',
    { runId, round, modelVersion: model.version, expected },
    roundDeadlineMs,
    (collector) => {
      expected.forEach((id, i) => {
        const sent = host.send(id, 'personalize', {
          protocol: PROTOCOL_VERSION,
          runId,
          round,
          modelVersion: model.version,
          weights,
          config: { ...fit, epochs: personalizeEpochs, seed: deriveSeed(config.seed, round + 1, i), ...backboneRate(ctx) },
          ...normalizationField(ctx),
        });
        if (!sent) collector.fail(id, 'disconnected before personalization');
      });
    },
  );
  return [...results.entries()].map(([clientId, r]) => ({
    clientId,
    numExamples: r.numExamples,
    globalAccuracy: r.globalAccuracy,
    personalAccuracy: r.personalAccuracy,
  }));
}
