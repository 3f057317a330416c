import { createRng, deriveSeed } from '../random.js';

const TWO_POW_31 = 2147483648;
const TWO_POW_32 = 4294967296;
/** Half a step of the 2⁻³¹ grid: shifts it to be symmetric about 0, without 0 itself. */
const HALF_STEP = 2 ** -32;

/** Whatever fills a vector with independent N(0, std²) values: {@link GaussianNoise}, or the client's DP-SGD randomness. */
export interface GaussianSource {
  gaussian(out: Float32Array, std: number): Float32Array;
}

/**
 * Gaussian noise from a source of random 32-bit words. Privacy needs the words to be secret from whoever
 * sees the noised values: the coordinator builds one on node's `randomFillSync` (this package does no
 * I/O, so the caller hands the generator in); {@link GaussianNoise.seeded} repeats, for tests and
 * simulations only.
 *
 * @example
 * const noise = new GaussianNoise((words) => randomFillSync(words));
 * noise.gaussian(new Float32Array(10), 0.5);
 */
export class GaussianNoise implements GaussianSource {
  private buffer = new Uint32Array(0);

  constructor(private readonly fill: (words: Uint32Array) => void) {}

  /** Repeatable noise from `seed` (the project's seeded generator): never for a run that needs privacy. */
  static seeded(seed: number): GaussianNoise {
    const rng = createRng(deriveSeed(seed, 0x6a55));
    // `next()` is a 32-bit word divided by 2³²: multiplying back is exact.
    return new GaussianNoise((words) => {
      for (let i = 0; i < words.length; i++) words[i] = rng.next() * TWO_POW_32;
    });
  }

  /** `count` fresh random 32-bit words (a view of a buffer the next call overwrites). */
  protected words(count: number): Uint32Array {
    if (this.buffer.length < count) this.buffer = new Uint32Array(Math.max(count, 2 * this.buffer.length));
    const words = this.buffer.subarray(0, count);
    this.fill(words);
    return words;
  }

  /**
   * Fills `out` with independent N(0, std²) values by Marsaglia's polar method, both values of each
   * accepted pair; coordinates lie on a grid symmetric about 0 that never holds 0, so the tails reach
   * about 9 standard deviations (the method of the client's DP-SGD noise).
   */
  gaussian(out: Float32Array, std: number): Float32Array {
    const pairs = Math.ceil(out.length / 2);
    // π/4 of the candidate pairs are accepted: ask for a margin more, and more again if it runs out.
    const batch = (left: number) => 2 * Math.ceil(left * 1.3) + 64;
    let w = this.words(batch(pairs));
    let at = 0;
    for (let p = 0; p < pairs; ) {
      if (at + 2 > w.length) {
        w = this.words(batch(pairs - p));
        at = 0;
      }
      const u = w[at]! / TWO_POW_31 - 1 + HALF_STEP;
      const v = w[at + 1]! / TWO_POW_31 - 1 + HALF_STEP;
      at += 2;
      const s = u * u + v * v;
      if (s >= 1) continue;
      const f = std * Math.sqrt((-2 * Math.log(s)) / s);
      out[2 * p] = u * f;
      if (2 * p + 1 < out.length) out[2 * p + 1] = v * f;
      p++;
    }
    return out;
  }
}
