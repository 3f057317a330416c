import { combineStats, ErrorCode, FtlError, type Normalization } from '@ftl/shared';
import type { RunContext } from './run-context.js';
import type { Store } from './store/store.js';

/** The store event that records a run's normalisation. */
const NORMALIZATION_EVENT = 'normalization';

/** The federated normalisation a run fixed before its first round, if it recorded one. */
export function storedNormalization(store: Store | undefined, runId: string): Normalization | undefined {
  const event = store
    ?.listEvents(runId)
    .filter((e) => e.type === NORMALIZATION_EVENT)
    .at(-1);
  if (!event) return undefined;
  const { kind, shift, scale } = event.data as Normalization;
  return { kind, shift, scale };
}

/**
 * Federated normalisation, once per run before its first round: combines the channel statistics the
 * ready clients sent (sums, sums of squares, min, max, counts) into one normalisation, exactly as on
 * their pooled data, and records it, so a resumed run keeps the same one. Clients joining later get it too.
 */
export function fixNormalization(ctx: RunContext): void {
  const { config, host, log, store } = ctx;
  const kind = config.normalization;
  if (kind === 'none' || ctx.normalization) return;
  const { runId } = config;
  const stored = storedNormalization(store, runId);
  if (stored) {
    ctx.normalization = stored;
    return;
  }
  const reports = host.readyStats(runId);
  if (reports.length === 0) {
    throw new FtlError(ErrorCode.InvalidMessage, `run ${runId} normalises inputs (${kind}) but no ready client sent channel statistics`);
  }
  // A robust run leaves the sites with the most extreme means out (never all of them: one always stays).
  const trim = Math.min(config.normalizationTrim ?? 0, reports.length - 1);
  const normalization = combineStats(
    reports.map((r) => r.stats),
    kind,
    { trim },
  );
  ctx.normalization = normalization;
  const show = (v: number[]) =>
    v
      .slice(0, 4)
      .map((x) => x.toFixed(4))
      .join(',') + (v.length > 4 ? `,… (${v.length})` : '');
  log.info('normalization', { kind, clients: reports.length, shift: show(normalization.shift), scale: show(normalization.scale) });
  store?.appendEvent(runId, NORMALIZATION_EVENT, { ...normalization, clients: reports.map((r) => r.clientId) });
}
