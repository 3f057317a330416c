import { ErrorCode, FtlError } from '../errors.js';

// Server-side optimizers on the pseudo-gradient Δ = (mean of the clients' models) − global. Plain FedAvg
// just takes Δ; these smooth it across rounds (momentum) or rescale it per coordinate (adaptive), which
// helps with heterogeneous clients. The math is done in float64 per coordinate; the moments are stored
// as float32 since they are checkpointed alongside the float32 model.

/**
 * The moments the server optimizers carry between rounds. Plain typed arrays, absent until the first
 * step, so the object can be checkpointed and restored as is; reset it to `{}` when the model changes.
 */
export interface ServerOptimizerState {
  m?: Float32Array;
  v?: Float32Array;
}

function requirePositive(name: string, x: number): void {
  if (!(x > 0 && Number.isFinite(x))) throw new FtlError(ErrorCode.InvalidConfig, `${name} must be > 0 and finite (got ${x})`);
}

function requireUnitInterval(name: string, x: number): void {
  if (!(x >= 0 && x < 1)) throw new FtlError(ErrorCode.InvalidConfig, `${name} must be in [0, 1) (got ${x})`);
}

function requireSameLength(global: Float32Array, average: Float32Array, state: ServerOptimizerState): void {
  if (average.length !== global.length) {
    throw new FtlError(
      ErrorCode.WeightsMismatch,
      `averaged update has ${average.length} values but the global model has ${global.length}; both must be of the same model`,
    );
  }
  for (const key of ['m', 'v'] as const) {
    const moment = state[key];
    if (moment !== undefined && moment.length !== global.length) {
      throw new FtlError(
        ErrorCode.WeightsMismatch,
        `optimizer state ${key} has ${moment.length} values but the global model has ${global.length}; reset the state to {} when the model changes`,
      );
    }
  }
}

/**
 * FedAvgM (Hsu et al. 2019, "Measuring the effects of non-identical data distribution"): heavy-ball
 * momentum on the pseudo-gradient, m ← momentum·m + Δ, new global = global + lr·m. It damps the
 * round-to-round swings that non-IID clients cause; with momentum 0 and lr 1 it is plain FedAvg.
 * Updates `state.m` in place (creating it, zero-initialised, on the first call) only after the inputs
 * validated, so a rejected call leaves the state untouched.
 *
 * @example
 * const state: ServerOptimizerState = {};
 * global = momentumStep(global, mean.result(), state, { lr: 1, momentum: 0.9 }); // mean: a WeightedMean of the updates
 */
export function momentumStep(
  global: Float32Array,
  average: Float32Array,
  state: ServerOptimizerState,
  o: { lr: number; momentum: number },
): Float32Array {
  requirePositive('lr', o.lr);
  requireUnitInterval('momentum', o.momentum);
  requireSameLength(global, average, state);
  const m = (state.m ??= new Float32Array(global.length));
  const out = new Float32Array(global.length);
  for (let i = 0; i < global.length; i++) {
    const g = global[i]!;
    const mi = o.momentum * m[i]! + (average[i]! - g);
    m[i] = mi;
    out[i] = g + o.lr * mi;
  }
  return out;
}

/**
 * FedAdam, FedYogi and FedAdagrad (Reddi et al. 2021, "Adaptive Federated Optimization", Algorithm 2):
 * per-coordinate adaptive steps on the pseudo-gradient, so coordinates the clients agree on move at a
 * steady rate while noisy ones are damped.
 *
 * m ← β1·m + (1−β1)·Δ; v ← v + Δ² (adagrad), β2·v + (1−β2)·Δ² (adam), v − (1−β2)·Δ²·sign(v − Δ²) (yogi);
 * new global = global + η·m / (√v + τ). Both moments start at 0 (as Flower does) and there is no bias
 * correction, as in the paper: τ, not a bias-corrected v, is what bounds the early steps. `beta2` is
 * validated but unused by adagrad. Updates `state.m` and `state.v` in place (creating them on the first
 * call) only after the inputs validated.
 *
 * @example
 * const state: ServerOptimizerState = {};
 * global = adaptiveStep('adam', global, mean.result(), state, { eta: 0.01, beta1: 0.9, beta2: 0.99, tau: 1e-3 }); // mean: a WeightedMean
 */
export function adaptiveStep(
  kind: 'adam' | 'yogi' | 'adagrad',
  global: Float32Array,
  average: Float32Array,
  state: ServerOptimizerState,
  o: { eta: number; beta1: number; beta2: number; tau: number },
): Float32Array {
  if (kind !== 'adam' && kind !== 'yogi' && kind !== 'adagrad') {
    throw new FtlError(ErrorCode.InvalidConfig, `optimizer kind must be 'adam', 'yogi' or 'adagrad' (got ${String(kind)})`);
  }
  requirePositive('eta', o.eta);
  requireUnitInterval('beta1', o.beta1);
  requireUnitInterval('beta2', o.beta2);
  requirePositive('tau', o.tau);
  requireSameLength(global, average, state);
  const { eta, beta1, beta2, tau } = o;
  const m = (state.m ??= new Float32Array(global.length));
  const v = (state.v ??= new Float32Array(global.length));
  const out = new Float32Array(global.length);
  for (let i = 0; i < global.length; i++) {
    const g = global[i]!;
    const delta = average[i]! - g;
    const d2 = delta * delta;
    const mi = beta1 * m[i]! + (1 - beta1) * delta;
    const vOld = v[i]!;
    const vi = kind === 'adagrad' ? vOld + d2 : kind === 'adam' ? beta2 * vOld + (1 - beta2) * d2 : vOld - (1 - beta2) * d2 * Math.sign(vOld - d2);
    m[i] = mi;
    v[i] = vi;
    out[i] = g + (eta * mi) / (Math.sqrt(vi) + tau);
  }
  return out;
}
