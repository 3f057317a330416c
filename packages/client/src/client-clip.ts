import { assertSameSpecs, type ClientClipReport, type ClientPrivacy, clipSiteUpdate, deriveSeed, type Weights } from '@ftl/shared';
import { DpRandom } from './dp-sgd.js';

/**
 * A site's update in a round of client-level DP (the fit instruction's `clientPrivacy`): the trained
 * weights become global + (trained − global) clipped to L2 norm S over every value sent, plus
 * N(0, (z·S)²) per value with local noise, so the update still travels as weights; and, with adaptive
 * clipping, the report b = [‖Δ‖ ≤ S]. The local noise comes from the system's secret randomness unless
 * `seed` is given (simulations only).
 *
 * @throws FtlError(WEIGHTS_MISMATCH) when the trained weights are not the global model's tensors.
 */
export function clipForClientDp(
  trained: Weights,
  global: Weights,
  settings: ClientPrivacy,
  seed?: number,
): { weights: Weights; clientPrivacy?: ClientClipReport; norm: number } {
  assertSameSpecs(trained.specs, global.specs);
  const noise = settings.noise === 'local' ? (seed !== undefined ? DpRandom.seeded(deriveSeed(seed, 0xc1d9), 3) : DpRandom.secret()) : undefined;
  const { values, unclipped, norm } = clipSiteUpdate(trained.values, global.values, settings, noise);
  return { weights: { specs: trained.specs, values }, norm, ...(settings.reportUnclipped ? { clientPrivacy: { unclipped } } : {}) };
}
