import { ErrorCode, FtlError } from '../errors.js';

/**
 * Norm bounding (Sun et al. 2019, "Can you really backdoor federated learning?"): scales a client's
 * change from the global model down to at most `maxNorm`, so no single client can move the model further
 * than that however it was trained. The direction is kept; an update already within the bound comes
 * back as an unchanged copy. Throws NonFiniteWeights when the change has no finite norm, since it
 * cannot be scaled into anything meaningful.
 *
 * @example
 * clipUpdate(update, global, 5); // global + (update − global)·min(1, 5 / ‖update − global‖)
 */
export function clipUpdate(update: Float32Array, global: Float32Array, maxNorm: number): Float32Array {
  if (!(maxNorm > 0 && Number.isFinite(maxNorm))) {
    throw new FtlError(ErrorCode.InvalidConfig, `maxNorm must be a finite number > 0 (got ${maxNorm})`);
  }
  if (update.length !== global.length) {
    throw new FtlError(
      ErrorCode.WeightsMismatch,
      `update has ${update.length} values but the global model has ${global.length}; the client must train the current model`,
    );
  }
  let s = 0;
  for (let i = 0; i < update.length; i++) {
    const diff = update[i]! - global[i]!;
    s += diff * diff;
  }
  const norm = Math.sqrt(s);
  if (!Number.isFinite(norm)) {
    throw new FtlError(
      ErrorCode.NonFiniteWeights,
      `update differs from the global model by a non-finite norm (${norm}); reject non-finite updates before clipping`,
    );
  }
  if (norm <= maxNorm) return update.slice();
  const scale = maxNorm / norm;
  const out = new Float32Array(update.length);
  for (let i = 0; i < update.length; i++) out[i] = global[i]! + (update[i]! - global[i]!) * scale;
  return out;
}
