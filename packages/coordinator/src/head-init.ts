import { PROTOCOL_VERSION } from '@ftl/shared';
import { classMeansHead, discriminantHeadOf, HEAD_INIT_EVENT, outputLayerOf, withRecordedOutputLayer } from './class-means.js';
import { normalizationField, type RunContext } from './run-context.js';
import { refusals } from './update-intake.js';

/**
 * `headInit: "class-means"` or `"discriminant"`, once per run before round 1: every ready site sends the
 * per-class sums and counts of its training features at the cut (and, for the discriminant, its
 * within-class scatter; no feature, no record); the pooled statistics set the head to the nearest-class-mean
 * classifier (FedNCM) or the shrinkage linear discriminant, which is model version 0. A refused answer leaves its site
 * out (recorded as class-sums-excluded). The result is recorded ({@link HEAD_INIT_EVENT}), so a resumed
 * run takes it from the store, or from its checkpoint once a round trained, and never asks again.
 */
export async function initHead(ctx: RunContext): Promise<void> {
  const { config, host, log, store, model } = ctx;
  const method = ctx.headInit;
  if ((method !== 'class-means' && method !== 'discriminant') || model.version > 0) return;
  const { runId, roundDeadlineMs } = config;
  const recorded = store
    ?.listEvents(runId)
    .filter((e) => e.type === HEAD_INIT_EVENT)
    .at(-1);
  if (recorded) {
    if ((recorded.data as { method?: unknown }).method === method) model.weights = withRecordedOutputLayer(model.weights, recorded.data);
    return;
  }
  const expected = host.readyClients(runId);
  ctx.setPhase('class-means', 0);
  const collected = await ctx.intake.collect('class-sums', { runId, round: 0, modelVersion: 0, expected }, roundDeadlineMs, (collector) => {
    for (const id of expected) {
      const sent = host.send(id, 'class-sums', {
        protocol: PROTOCOL_VERSION,
        runId,
        round: 0,
        modelVersion: 0,
        ...normalizationField(ctx),
        ...(method === 'discriminant' ? { scatter: true } : {}),
      });
      if (!sent) collector.fail(id, 'disconnected before the class sums were asked');
    }
  });
  if (ctx.interrupted()) return; // nothing recorded: the next start asks again
  for (const r of refusals(collected)) ctx.exclusions.record('class-sums-excluded', 0, r);
  for (const [id, why] of collected.failures) log.warn('client-missed-class-sums', { client: id, why });
  // Who sent nothing, and why (gone, late, or declining to send its statistics), in the run's record.
  const missed = [...collected.failures].map(([client, why]) => ({ client, why }));
  // In site order, not arrival order: the same answers always give the same head.
  const clients = [...collected.results.keys()].sort();
  if (clients.length === 0) {
    // A missing site never stalls a run: without any sums the head keeps its random start.
    log.warn('head-init', { method: 'random', why: 'no site sent class sums' });
    store?.appendEvent(runId, HEAD_INIT_EVENT, { method: 'random', why: 'no site sent class sums', clients, missed });
    return;
  }
  const sites = clients.map((id) => collected.results.get(id)!.decoded);
  const { weights, counts } =
    method === 'discriminant' ? await discriminantHeadOf(model.weights, sites, ctx.head) : classMeansHead(model.weights, sites, ctx.head);
  model.weights = weights;
  const missing = config.classes.filter((_, c) => counts[c] === 0);
  // Counts only: the sums (and the means they give) stay out of the log.
  log.info('head-init', { method, clients: clients.length, counts: counts.join(','), ...(missing.length ? { missing: missing.join(',') } : {}) });
  store?.appendEvent(runId, HEAD_INIT_EVENT, { method, clients, counts, missing, missed, head: outputLayerOf(weights) });
}
