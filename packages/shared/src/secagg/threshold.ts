import { ErrorCode, FtlError } from '../errors.js';

// Each site's secrets are split among m holders (its neighbours and itself) with threshold t: t of them
// rebuild a secret, t − 1 learn nothing. Both sides check t, so a coordinator cannot lower it on a site.

/**
 * The default threshold for a site whose shares `holders` sites hold (its neighbours and itself): ⌈2m/3⌉,
 * and never below a majority. A majority is the least the protocol's argument allows: with t ≤ m/2 a
 * coordinator could tell two halves of the holders different stories about who dropped and collect both
 * a site's key shares and its seed shares. Two thirds tolerates a third of the holders dropping out
 * while t − 1 colluding sites still learn nothing.
 */
export function defaultThreshold(holders: number): number {
  return Math.max(Math.floor(holders / 2) + 1, Math.ceil((2 * holders) / 3));
}

/**
 * Checks a threshold against the holders of each site's shares (its neighbours and itself).
 *
 * @throws FtlError(`code`, INVALID_CONFIG by default) when t is not in [⌊m/2⌋ + 1, m], naming the field and the range.
 */
export function checkThreshold(
  threshold: number,
  holders: number,
  field = 'secureAggregation.threshold',
  code: ErrorCode = ErrorCode.InvalidConfig,
): void {
  const least = Math.floor(holders / 2) + 1;
  if (!Number.isSafeInteger(threshold) || threshold < least || threshold > holders) {
    throw new FtlError(
      code,
      `${field} must be an integer in [${least}, ${holders}] for ${holders} holders of each site's shares (a majority, at most all; got ${threshold})`,
    );
  }
}
