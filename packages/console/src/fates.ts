import type { RunView, SiteEvent } from './types';

/** What happened to a site's latest update in a run. */
export interface Fate {
  round: number;
  outcome: 'accepted' | 'rejected' | 'dropped';
  why?: string;
}

/** Site states that mean the site left the run (or the coordinator closed it). */
export const LEFT_STATES = new Set(['disconnected', 'dropped', 'failed']);

/**
 * Each site's latest update in `run`: accepted or rejected (with the coordinator's reason) in the last
 * round that recorded it, or dropped when the site left during a later round (from its state in the run,
 * or the connection events this page saw).
 */
export function siteFates(run: RunView | undefined, events: readonly SiteEvent[] = []): Map<string, Fate> {
  const fates = new Map<string, Fate>();
  if (!run) return fates;
  for (const r of run.roundSites ?? []) {
    for (const p of r.participants) fates.set(p, { round: r.round, outcome: 'accepted' });
    for (const x of r.rejected) fates.set(x.clientId, { round: r.round, outcome: 'rejected', why: `${x.reason}: ${x.message}` });
  }
  for (const s of run.sites ?? []) {
    if (!LEFT_STATES.has(s.state)) continue;
    const round = s.round ?? 0;
    if ((fates.get(s.client)?.round ?? -1) <= round)
      fates.set(s.client, { round, outcome: 'dropped', why: `${s.state}${s.message ? `: ${s.message}` : ''}` });
  }
  for (const e of events) {
    if (e.kind !== 'disconnected' || e.runId !== run.id || run.sites?.some((s) => s.client === e.client)) continue;
    const round = e.round ?? 0;
    if ((fates.get(e.client)?.round ?? -1) <= round)
      fates.set(e.client, { round, outcome: 'dropped', why: `disconnected: ${e.reason ?? 'connection lost'}` });
  }
  return fates;
}

/** The sites that left during round `round` of `run`, with why. */
export function droppedIn(run: RunView, round: number, events: readonly SiteEvent[] = []): Array<{ client: string; why: string }> {
  return [...siteFates(run, events)]
    .filter(([, f]) => f.outcome === 'dropped' && f.round === round)
    .map(([client, f]) => ({ client, why: f.why ?? '' }));
}
