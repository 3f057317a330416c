/**
 * What each site is doing in a run, as the coordinator last saw it: one state per site and run, replaced
 * at every change, so an operator sees at a glance who is connected, who trains which round, and why a
 * site failed or left.
 */

/** The states a site can be in, in the order a run usually sees them. */
export const SITE_STATE_KINDS = [
  /** Joined and welcomed, not ready yet (fetching the backbone, extracting features). */
  'connected',
  /** Ready for the run and idle between instructions (its latest answer, if any, was accepted). */
  'ready',
  /** Asked for its per-class feature sums (before round 1). */
  'class-sums',
  /** Asked to train `round`. */
  'training',
  /** Asked to evaluate the global model of `round`. */
  'evaluating',
  /** Asked to personalize after the last round. */
  'personalizing',
  /** The coordinator refused its latest answer (`message` says why); it may still send another. */
  'refused',
  /** The site reported that it could not do what it was asked (`message` is its error). */
  'failed',
  /** The connection ended from the site's side or the network's (`message` says how). */
  'disconnected',
  /** The coordinator closed the connection (`message` says why: replaced, revoked, misbehaving, shutdown). */
  'dropped',
] as const;

/** One of {@link SITE_STATE_KINDS}. */
export type SiteStateKind = (typeof SITE_STATE_KINDS)[number];

/** A site's last state in one run. */
export interface SiteState {
  /** The site's name. */
  client: string;
  state: SiteStateKind;
  /** The round the state is about, when there is one (0: before round 1). */
  round?: number;
  /** Why: the site's own error (`failed`), the refusal (`refused`), how the connection ended. One line. */
  message?: string;
  /** ISO 8601: when the coordinator saw it. */
  at: string;
}

/** Longest message kept with a state (a site's error is at most this long on the wire too). */
export const MAX_SITE_MESSAGE = 2000;
