/**
 * What a round of a run with record-level DP tells about each site's privacy: the ε every site that
 * trained reported with its update (its own guarantee on its own data, across every run it took part in),
 * and the sites that refused the round for their budget. The run records it as one `round-privacy` event
 * per round played; the operator's run view shows the latest, and a round every selected site refused
 * ends the run.
 */
import type { Logger, PrivacyReport } from '@ftl/shared';
import type { ClientLevelPrivacy } from './client-dp.js';
import type { Collected } from './round-collector.js';
import type { Store, StoredEvent } from './store/store.js';
import type { BudgetRefusal } from './update-intake.js';

/** The store event that records a round's privacy. */
export const ROUND_PRIVACY_EVENT = 'round-privacy';

/** One site's privacy as it reported it: ε spent so far at δ, and its own budget when it keeps one. */
export interface SitePrivacy extends PrivacyReport {
  client: string;
}

/** A site that would not train the round for its budget: its reason, and what it had spent when it said. */
export interface PrivacyRefusal extends Partial<PrivacyReport> {
  client: string;
  message: string;
}

/** One round's privacy, as the run records it. */
export interface RoundPrivacy {
  round: number;
  /** The sites whose updates were accepted, in selection order, with the privacy each reported. */
  sites: SitePrivacy[];
  /** The selected sites that refused the round for their privacy budget, in selection order. */
  refused: PrivacyRefusal[];
  /** Runs with client-level DP: the run's own ε after the round, and the mechanism it charged (client-dp.ts). */
  client?: ClientLevelPrivacy;
}

/** The round's privacy from its collected updates and budget refusals; undefined when no site reported or refused any. */
export function roundPrivacy(
  round: number,
  collected: Collected<{ privacy?: PrivacyReport | undefined }>,
  refusals: readonly BudgetRefusal[],
): RoundPrivacy | undefined {
  const sites = [...collected.results.entries()].flatMap(([client, r]) => (r.privacy ? [{ client, ...r.privacy }] : []));
  const refused = refusals.map((r) => ({ client: r.clientId, message: r.message, ...(r.privacy ?? {}) }));
  return sites.length > 0 || refused.length > 0 ? { round, sites, refused } : undefined;
}

/** The largest ε a site reported with its update this round, for the round's record; undefined when none did. */
export function largestEpsilon(privacy: RoundPrivacy | undefined): number | undefined {
  return privacy && privacy.sites.length > 0 ? Math.max(...privacy.sites.map((s) => s.epsilon)) : undefined;
}

/** Whether every site selected for the round refused it for its privacy budget (and at least one was selected). */
export function everySiteSpent(selected: readonly string[], privacy: RoundPrivacy | undefined): boolean {
  const refused = new Set(privacy?.refused.map((r) => r.client));
  return selected.length > 0 && selected.every((id) => refused.has(id));
}

/**
 * Logs the round's privacy in one line (each refusal was logged as it arrived) and appends it to the
 * run's events. A round played again after a shutdown appends another: the sites spent ε both times.
 */
export function recordRoundPrivacy(runId: string, privacy: RoundPrivacy, store: Store | undefined, log: Logger): void {
  const largest = largestEpsilon(privacy);
  const { client } = privacy;
  log.info('round-privacy', {
    sites: privacy.sites.length,
    refused: privacy.refused.length,
    ...(largest !== undefined ? { maxEpsilon: largest.toFixed(3), delta: privacy.sites[0]!.delta } : {}),
    ...(client
      ? { clientEpsilon: client.epsilon.toFixed(3), delta: client.delta, q: client.sampleRate.toFixed(4), clipNorm: client.clipNorm.toPrecision(4) }
      : {}),
  });
  store?.appendEvent(runId, ROUND_PRIVACY_EVENT, privacy);
}

/** The newest round's privacy among a run's events (the last recorded for the highest round), or undefined. */
export function latestRoundPrivacy(events: readonly StoredEvent[]): RoundPrivacy | undefined {
  let latest: RoundPrivacy | undefined;
  for (const e of events) {
    if (e.type !== ROUND_PRIVACY_EVENT) continue;
    const p = e.data as RoundPrivacy;
    if (!latest || p.round >= latest.round) latest = p;
  }
  return latest;
}

/** The run-end message of a run every selected site refused to train for its budget. */
export function budgetsSpentMessage(privacy: RoundPrivacy): string {
  const shown = privacy.refused.slice(0, 3).map((r) => `${r.client}: ${r.message}`);
  const more = privacy.refused.length > shown.length ? `; and ${privacy.refused.length - shown.length} more` : '';
  return (
    `privacy budgets spent: every site selected for round ${privacy.round} refused to train it (${shown.join('; ')}${more}); ` +
    `the run ends with the global model of round ${privacy.round - 1}`
  );
}
