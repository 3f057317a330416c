/**
 * A site's part in a round of secure aggregation (the coordinator's side is secure-round.ts): its trained
 * change becomes ring words (clipped, weighted, scaled, rounded), and a `SecAggSite` state machine answers
 * each phase, so that what leaves the site is two public keys, shares sealed for its neighbours, its input
 * under masks only the whole round can remove, and one kind of share per peer at the end.
 */
import { randomFillSync } from 'node:crypto';
import {
  addNoise,
  type ClientPrivacy,
  type Envelope,
  ErrorCode,
  FtlError,
  type GaussianSource,
  type SecAggDelivery,
  type SecAggDirectory,
  type SecAggInstruction,
  type SecAggUnmask,
  updateDelta,
  type Weights,
} from '@ftl/shared';
import { type AdvertiseKeys, type MaskedInput, noiseShareStd, quantize, SecAggSite, type SharesOut, type UnmaskShares } from '@ftl/shared/secagg';
import { clipForClientDp } from './client-clip.js';
import { DpRandom } from './dp-sgd.js';

/**
 * Distributed DP's seam: adds this site's share of the round's central noise, N(0, (z·S)²/t) per value,
 * to its change already clipped to S, before it is quantised and masked. Any t shares add up to the
 * N(0, (z·S)²) the coordinator would add to the sum itself without secure aggregation; the coordinator
 * never sees a sum with less.
 *
 * @param sites t, the fewest inputs an unmasked sum can hold.
 * @example
 * addNoiseShare(clipped, { noiseMultiplier: 1, clipNorm: 0.5 }, 7, DpRandom.secret());
 */
export function addNoiseShare(
  clipped: Float32Array,
  dp: Pick<ClientPrivacy, 'noiseMultiplier' | 'clipNorm'>,
  sites: number,
  noise: GaussianSource,
): Float32Array {
  return addNoise(clipped, noiseShareStd(dp, sites), noise);
}

/** Uniform draws in [0, 1) from the system's secret randomness, for stochastic rounding. */
function secretUniform(): () => number {
  const words = new Uint32Array(1024);
  let next = words.length;
  return () => {
    if (next === words.length) {
      randomFillSync(words);
      next = 0;
    }
    return words[next++]! / 2 ** 32;
  };
}

/**
 * A site's trained change as the ring words it masks: `trained − global` over every value it would send;
 * with client-level DP first clipped to the round's S in L2 and noised (locally, or with its share of the
 * central noise); then every value clipped to ±clipRange, times its weight and the scale, rounded.
 *
 * @param dpSeed makes DP noise repeat (simulations only); secret randomness otherwise.
 */
export function secureInput(
  trained: Weights,
  global: Weights,
  sa: SecAggInstruction,
  clientPrivacy: ClientPrivacy | undefined,
  dpSeed?: number,
): Uint32Array {
  let change: Float32Array;
  if (clientPrivacy) {
    const clipped = clipForClientDp(trained, global, clientPrivacy, dpSeed);
    change = updateDelta(clipped.weights.values, global.values);
    if (clientPrivacy.noise === 'central') {
      addNoiseShare(change, clientPrivacy, sa.threshold, dpSeed !== undefined ? DpRandom.seeded(dpSeed, 5) : DpRandom.secret());
    }
  } else {
    change = updateDelta(trained.values, global.values);
  }
  return quantize(
    change,
    { clipRange: sa.clipRange, scale: sa.scale },
    { weight: sa.weight, rounding: sa.rounding === 'nearest' ? 'nearest' : { stochastic: secretUniform() } },
  );
}

/**
 * One site's round of secure aggregation after training: its input and state machine, and the envelope its
 * answers carry. Each phase's message must be for this round and arrive in order.
 */
export class SecureRound {
  private readonly site: SecAggSite;

  constructor(
    readonly envelope: Envelope,
    sa: SecAggInstruction,
    private readonly input: Uint32Array,
  ) {
    this.site = new SecAggSite(
      { runId: envelope.runId, round: envelope.round },
      { self: sa.self, neighbours: sa.neighbours, threshold: sa.threshold },
    );
  }

  /** Whether `msg` belongs to this round (its run, round and model version). */
  matches(msg: Envelope): boolean {
    const e = this.envelope;
    return msg.runId === e.runId && msg.round === e.round && msg.modelVersion === e.modelVersion;
  }

  /** Phase 0: the site's fresh public keys. */
  advertise(): AdvertiseKeys {
    return this.site.advertise();
  }

  /** Phase 1: its shares, sealed for each neighbour in the directory. */
  share(msg: SecAggDirectory): SharesOut {
    return this.site.shareKeys(msg);
  }

  /** Phase 2: its masked input. */
  mask(msg: SecAggDelivery): MaskedInput {
    return this.site.maskInput(msg, this.input);
  }

  /** Phase 3: one kind of share per peer it masked with. */
  unmask(msg: SecAggUnmask): UnmaskShares {
    return this.site.unmask(msg);
  }
}

/** Why a phase message cannot be answered: it is not for the round this site is in. */
export function staleSecureMessage(event: string, msg: Envelope, current: SecureRound | undefined): FtlError {
  const at = current ? `round ${current.envelope.round} of run ${current.envelope.runId}` : 'no secure-aggregation round';
  return new FtlError(ErrorCode.InvalidMessage, `${event} for round ${msg.round} of run ${msg.runId} arrived while this site is in ${at}`);
}
