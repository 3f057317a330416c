/** A seeded pseudo-random source; every random choice in ftl goes through one so runs repeat. */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** Standard normal sample. */
  normal(): number;
  /** Gamma(shape, 1) sample. */
  gamma(shape: number): number;
}

/**
 * The seed to hand a tfjs initializer or dropout layer for ftl seed `seed`. tfjs treats a seed of 0 as
 * no seed at all (it falls back to Math.random), so seed 0 maps to 2³¹ − 1; every other seed passes
 * through unchanged, so models built with other seeds keep their weights.
 */
export function tfjsSeed(seed: number): number {
  return seed === 0 ? 0x7fffffff : seed;
}

/**
 * Creates a seeded generator (mulberry32 core; Marsaglia–Tsang for gamma).
 *
 * @example
 * const rng = createRng(42); shuffleInPlace(indices, rng);
 */
export function createRng(seed: number): Rng {
  let state = seed >>> 0 || 0x9e3779b9;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => {
    let u = 0;
    while (u === 0) u = next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
  };
  const gamma = (shape: number): number => {
    if (shape < 1) return gamma(shape + 1) * (next() || Number.MIN_VALUE) ** (1 / shape);
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number;
      let v: number;
      do {
        x = normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = next();
      if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
    }
  };
  return { next, int: (n) => Math.floor(next() * n), normal, gamma };
}

/** Fisher–Yates shuffle in place with a seeded generator; returns the same array. */
export function shuffleInPlace<A extends { length: number; [i: number]: unknown }>(items: A, rng: Rng): A {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const tmp = items[i]!;
    items[i] = items[j]!;
    items[j] = tmp;
  }
  return items;
}

/** Derives an independent seed from a base seed and labels (e.g. run seed, round, client index). */
export function deriveSeed(base: number, ...parts: number[]): number {
  let h = base >>> 0;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  return h;
}
