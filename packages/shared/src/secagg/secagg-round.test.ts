import { createCipheriv, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { encodeMessagePack } from '../codec/socketio-parser.js';
import { expectFtlError, thrownBy } from '../../test-support/expect-ftl-error.js';
import { resolveRelative, specifiersOf } from '../../test-support/import-graph.js';
import { ErrorCode, isFtlError } from '../errors.js';
import { validate } from '../protocol/validate.js';
import { createRng, deriveSeed } from '../random.js';
import { unpack } from 'msgpackr';
import type { RandomBytes } from './key-agreement.js';
import { neighbourGraph } from './neighbour-graph.js';
import {
  AdvertiseKeysSchema,
  bytesToWords,
  KeyDirectorySchema,
  MaskedInputSchema,
  SecAggSetupSchema,
  SharesInSchema,
  SharesOutSchema,
  UnmaskRequestSchema,
  UnmaskSharesSchema,
} from './phase-messages.js';
import { addInto, dequantizeSum, quantize, ringScale } from './quantize.js';
import { SecAggServer, type SecAggOutcome } from './secagg-server.js';
import { SecAggSite } from './secagg-site.js';
import { defaultThreshold } from './threshold.js';

// Whole rounds of secure aggregation between SecAggSite and SecAggServer, every message passed through
// MessagePack bytes and its wire schema as the sockets would carry it, with sites dropping out at each phase.

/** Deterministic but cryptographic randomness for a test: AES-256-CTR's keystream under SHA-256(label). */
function seededRandom(label: string): RandomBytes {
  const cipher = createCipheriv('aes-256-ctr', createHash('sha256').update(label).digest(), new Uint8Array(16));
  return (n) => new Uint8Array(cipher.update(new Uint8Array(n)));
}

/** A message as the other side receives it: MessagePack bytes decoded, then validated by its schema. */
function wire<T>(schema: Parameters<typeof validate<T>>[0], message: T, name: string): T {
  return validate(schema, unpack(encodeMessagePack(message)), name);
}

/** The phase a site stops answering at; `none` completes the round. */
type DropAt = 'advertise' | 'share' | 'mask' | 'unmask' | 'none';
const PHASES: DropAt[] = ['advertise', 'share', 'mask', 'unmask', 'none'];
const answers = (drop: DropAt, phase: Exclude<DropAt, 'none'>) => PHASES.indexOf(drop) > PHASES.indexOf(phase);

interface RoundSpec {
  inputs: Uint32Array[];
  graph: Map<number, number[]>;
  threshold: number;
  drops?: DropAt[];
  runId?: string;
  round?: number;
  /** Each site's randomness; secure randomness when absent. */
  random?: (id: number) => RandomBytes;
}

interface RoundRecord {
  outcome?: SecAggOutcome;
  error?: unknown;
  masked: Map<number, Uint32Array>;
  revealed: Map<number, { seedOf: number[]; keyOf: number[] }>;
}

/** Plays one round; sites listed in `drops` stop answering at their phase. */
function playRound(spec: RoundSpec): RoundRecord {
  const { inputs, graph, threshold } = spec;
  const runId = spec.runId ?? 'run-1';
  const round = spec.round ?? 1;
  const length = inputs[0]!.length;
  const server = new SecAggServer({ runId, round, graph, threshold, length });
  const ids = [...graph.keys()];
  const drop = (id: number) => spec.drops?.[id - 1] ?? 'none';
  const sites = new Map(
    ids.map((id) => [id, new SecAggSite({ runId, round }, wire(SecAggSetupSchema, server.setupFor(id), 'setup'), spec.random?.(id))]),
  );
  const record: RoundRecord = { masked: new Map(), revealed: new Map() };
  try {
    for (const [id, site] of sites) if (answers(drop(id), 'advertise')) server.acceptKeys(id, wire(AdvertiseKeysSchema, site.advertise(), 'keys'));
    for (const [id, dir] of server.closeAdvertise()) {
      if (answers(drop(id), 'share'))
        server.acceptShares(id, wire(SharesOutSchema, sites.get(id)!.shareKeys(wire(KeyDirectorySchema, dir, 'dir')), 'shares'));
    }
    for (const [id, delivery] of server.closeShares()) {
      if (!answers(drop(id), 'mask')) continue;
      const masked = sites.get(id)!.maskInput(wire(SharesInSchema, delivery, 'delivery'), inputs[id - 1]!);
      record.masked.set(id, bytesToWords(masked.masked));
      server.acceptMaskedInput(id, wire(MaskedInputSchema, masked, 'masked'));
    }
    for (const [id, request] of server.closeMaskedInput()) {
      if (!answers(drop(id), 'unmask')) continue;
      const shares = sites.get(id)!.unmask(wire(UnmaskRequestSchema, request, 'request'));
      record.revealed.set(id, { seedOf: shares.seedShares.map((s) => s.of), keyOf: shares.keyShares.map((s) => s.of) });
      server.acceptUnmaskShares(id, wire(UnmaskSharesSchema, shares, 'unmask'));
    }
    record.outcome = server.finish();
  } catch (err) {
    record.error = err;
  }
  return record;
}

const complete = (n: number) =>
  neighbourGraph(
    Array.from({ length: n }, (_, i) => i + 1),
    n - 1,
    0,
  );
const randomInputs = (n: number, length: number, seed: number) => {
  const rng = createRng(seed);
  return Array.from({ length: n }, () => Float64Array.from({ length }, () => (rng.next() - 0.5) * 3));
};
const plainSum = (words: Uint32Array[], ids: number[]) =>
  ids.reduce<Uint32Array>((s, id) => addInto(s, words[id - 1]!), new Uint32Array(words[0]!.length));

describe('a round of secure aggregation', () => {
  test('recovers exactly the sum of the surviving sites’ quantised inputs, and their float sum within n/scale (any n, t, graph and dropouts)', () => {
    const scenario = fc
      .record({ n: fc.integer({ min: 2, max: 9 }), k: fc.option(fc.integer({ min: 2, max: 8 }), { nil: undefined }), seed: fc.integer() })
      .chain(({ n, k, seed }) => {
        const graph =
          k === undefined
            ? complete(n)
            : neighbourGraph(
                Array.from({ length: n }, (_, i) => i + 1),
                k,
                seed,
              );
        const holders = graph.get(1)!.length + 1;
        return fc.record({
          graph: fc.constant(graph),
          complete: fc.constant(holders === n),
          threshold: fc.integer({ min: Math.floor(holders / 2) + 1, max: holders }),
          drops: fc.array(fc.constantFrom<DropAt>('none', 'none', 'none', 'advertise', 'share', 'mask', 'unmask'), { minLength: n, maxLength: n }),
          seed: fc.constant(seed),
        });
      });
    fc.assert(
      fc.property(scenario, ({ graph, complete: isComplete, threshold, drops, seed }) => {
        const n = graph.size;
        const clipRange = 1;
        const scale = ringScale({ clipRange, totalWeight: n, sites: n });
        const floats = randomInputs(n, 5, seed);
        const inputs = floats.map((f) => quantize(f, { clipRange, scale }));
        const { outcome, error } = playRound({ inputs, graph, threshold, drops });
        const reached = (phase: Exclude<DropAt, 'none'>) => drops.filter((d) => answers(d, phase)).length;
        if (isComplete) {
          // Plain SecAgg: the round succeeds exactly when at least t sites answered every phase.
          const shouldSucceed = (['advertise', 'share', 'mask', 'unmask'] as const).every((p) => reached(p) >= threshold);
          expect(outcome !== undefined, String(error)).toBe(shouldSucceed);
        }
        if (drops.every((d) => d === 'none')) expect(outcome, String(error)).toBeDefined();
        if (!outcome) {
          expect(isFtlError(error, ErrorCode.Quorum), String(error)).toBe(true);
          return;
        }
        const expectedSurvivors = drops.flatMap((d, i) => (answers(d, 'mask') ? [i + 1] : []));
        if (isComplete) expect(outcome.survivors).toEqual(expectedSurvivors);
        for (const id of outcome.survivors) expect(expectedSurvivors).toContain(id);
        expect(Array.from(outcome.sum)).toEqual(Array.from(plainSum(inputs, outcome.survivors)));
        const floatSum = dequantizeSum(outcome.sum, scale);
        floatSum.forEach((v, i) => {
          const exact = outcome.survivors.reduce((s, id) => s + Math.max(-clipRange, Math.min(clipRange, floats[id - 1]![i]!)), 0);
          expect(Math.abs(v - exact)).toBeLessThanOrEqual(outcome.survivors.length / scale);
        });
      }),
      { numRuns: 60 },
    );
  });

  test.each([
    [10, 7],
    [6, 4],
  ])('with n = %i and t = %i, n − t sites dropping after sending masked inputs still recovers the sum', (n, t) => {
    const inputs = Array.from({ length: n }, (_, i) => Uint32Array.from({ length: 16 }, (_, j) => i * 1000 + j));
    const drops: DropAt[] = Array.from({ length: n }, (_, i) => (i >= t ? 'unmask' : 'none'));
    const { outcome, error } = playRound({ inputs, graph: complete(n), threshold: t, drops });
    expect(error).toBeUndefined();
    expect(outcome!.survivors).toHaveLength(n);
    expect(Array.from(outcome!.sum)).toEqual(Array.from(plainSum(inputs, outcome!.survivors)));
  });

  test('n − t sites dropping before their masked input: the sum is that of the others, their pairwise masks rebuilt from their key shares', () => {
    const n = 10;
    const t = defaultThreshold(n);
    const inputs = Array.from({ length: n }, (_, i) => Uint32Array.from({ length: 16 }, (_, j) => i * 1000 + j));
    const drops: DropAt[] = Array.from({ length: n }, (_, i) => (i >= t ? 'mask' : 'none'));
    const { outcome, revealed } = playRound({ inputs, graph: complete(n), threshold: t, drops });
    expect(outcome!.survivors).toEqual(Array.from({ length: t }, (_, i) => i + 1));
    expect(outcome!.dropped).toEqual(Array.from({ length: n - t }, (_, i) => t + i + 1));
    expect(Array.from(outcome!.sum)).toEqual(Array.from(plainSum(inputs, outcome!.survivors)));
    for (const { keyOf } of revealed.values()) expect(keyOf).toEqual(outcome!.dropped);
  });

  test.each([
    ['advertise', 'advertised keys'],
    ['share', 'sent shares'],
    ['mask', 'sent masked inputs'],
    ['unmask', 'answered the unmasking'],
  ] as const)('more than n − t sites dropping at %s fails with QUORUM in one line: how many answered, how many were needed', (phase, said) => {
    const n = 10;
    const t = 7;
    const inputs = Array.from({ length: n }, () => new Uint32Array(4));
    const drops: DropAt[] = Array.from({ length: n }, (_, i) => (i >= t - 1 ? phase : 'none'));
    const { outcome, error } = playRound({ inputs, graph: complete(n), threshold: t, drops });
    expect(outcome).toBeUndefined();
    expect(isFtlError(error, ErrorCode.Quorum)).toBe(true);
    expect((error as Error).message).toBe(`secure aggregation: 6 of 10 sites ${said}, 7 were needed`);
  });

  test('SecAgg+: with 40 sites on an 8-regular graph, a site dropping after its masked input, and one before, still recover the sum', () => {
    const n = 40;
    const graph = neighbourGraph(
      Array.from({ length: n }, (_, i) => i + 1),
      8,
      deriveSeed(5, 3),
    );
    const inputs = Array.from({ length: n }, (_, i) => Uint32Array.from({ length: 8 }, (_, j) => 2 ** 32 - 1 - i - j));
    const drops: DropAt[] = Array.from({ length: n }, (_, i) => (i === 3 ? 'unmask' : i === 17 ? 'mask' : 'none'));
    const { outcome, revealed, error } = playRound({ inputs, graph, threshold: defaultThreshold(9), drops });
    expect(error).toBeUndefined();
    expect(outcome!.dropped).toEqual([18]);
    expect(Array.from(outcome!.sum)).toEqual(Array.from(plainSum(inputs, outcome!.survivors)));
    // Each site revealed shares only of its own neighbours (and itself): 9 at most, not 40.
    for (const [id, r] of revealed) {
      for (const v of [...r.seedOf, ...r.keyOf]) expect([id, ...graph.get(id)!]).toContain(v);
      expect(r.seedOf.length + r.keyOf.length).toBeLessThanOrEqual(9);
    }
  });
});

describe('what a site reveals', () => {
  test('never both kinds of share for one peer, in any round the property plays', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 3, max: 8 })
          .chain((n) => fc.array(fc.constantFrom<DropAt>('none', 'none', 'mask', 'unmask'), { minLength: n, maxLength: n })),
        (drops) => {
          const n = drops.length;
          const { revealed } = playRound({
            inputs: Array.from({ length: n }, () => new Uint32Array(2)),
            graph: complete(n),
            threshold: Math.floor(n / 2) + 1,
            drops,
          });
          for (const { seedOf, keyOf } of revealed.values()) expect(seedOf.filter((v) => keyOf.includes(v))).toEqual([]);
        },
      ),
      { numRuns: 30 },
    );
  });

  /** Four sites of a complete graph brought to the unmask phase, site 4 having dropped before its masked input. */
  function atUnmask() {
    const graph = complete(4);
    const server = new SecAggServer({ runId: 'r', round: 1, graph, threshold: 3, length: 2 });
    const sites = [1, 2, 3, 4].map((id) => new SecAggSite({ runId: 'r', round: 1 }, server.setupFor(id)));
    for (const s of sites) server.acceptKeys(s.self, s.advertise());
    for (const [id, dir] of server.closeAdvertise()) server.acceptShares(id, sites[id - 1]!.shareKeys(dir));
    for (const [id, delivery] of server.closeShares())
      if (id !== 4) server.acceptMaskedInput(id, sites[id - 1]!.maskInput(delivery, new Uint32Array(2)));
    return { server, sites, requests: server.closeMaskedInput() };
  }

  test('a request naming a peer as both survivor and dropped is refused', () => {
    const { sites } = atUnmask();
    expectFtlError(
      () => sites[0]!.unmask({ survivors: [1, 2, 3, 4], dropped: [4] }),
      ErrorCode.InvalidMessage,
      /site 4 as both survivor and dropped/,
    );
  });

  test('a second request, after a first answered, is refused: a coordinator cannot ask again with the story changed', () => {
    const { sites, requests } = atUnmask();
    expect(requests.get(1)).toEqual({ survivors: [1, 2, 3], dropped: [4] });
    sites[0]!.unmask(requests.get(1)!);
    expectFtlError(
      () => sites[0]!.unmask({ survivors: [1, 2, 3, 4], dropped: [] }),
      ErrorCode.InvalidMessage,
      /asked to unmask while it was at done/,
    );
  });

  test.each([
    ['leaves out a peer it masked with', { survivors: [1, 2, 3], dropped: [] }, /whether it survived/],
    ['leaves the site itself out of the survivors', { survivors: [2, 3, 4], dropped: [] }, /does not list it among the survivors/],
    ['names a site it holds no shares of', { survivors: [1, 2, 3], dropped: [4, 5] }, /site 5, whose shares site 1 does not hold/],
    ['repeats a site', { survivors: [1, 2, 2, 3], dropped: [4] }, /repeats a site/],
  ])('a request that %s is refused', (_, request, message) => {
    const { sites } = atUnmask();
    expectFtlError(() => sites[0]!.unmask(request), ErrorCode.InvalidMessage, message);
  });

  test('a request claiming fewer than t survivors is refused with QUORUM, so few shares never leave', () => {
    const graph = complete(5);
    const server = new SecAggServer({ runId: 'r', round: 1, graph, threshold: 4, length: 2 });
    const sites = [1, 2, 3, 4, 5].map((id) => new SecAggSite({ runId: 'r', round: 1 }, server.setupFor(id)));
    for (const s of sites) server.acceptKeys(s.self, s.advertise());
    for (const [id, dir] of server.closeAdvertise()) server.acceptShares(id, sites[id - 1]!.shareKeys(dir));
    for (const [id, delivery] of server.closeShares()) sites[id - 1]!.maskInput(delivery, new Uint32Array(2));
    expectFtlError(
      () => sites[0]!.unmask({ survivors: [1, 2, 3], dropped: [4, 5] }),
      ErrorCode.Quorum,
      /3 of site 1's share holders survived, 4 were needed/,
    );
  });

  test('a setup with a threshold below a majority of the site’s holders is refused by the site', () => {
    expectFtlError(
      () => new SecAggSite({ runId: 'r', round: 1 }, { self: 1, neighbours: [2, 3, 4, 5], threshold: 2 }),
      ErrorCode.InvalidMessage,
      /threshold must be an integer in \[3, 5\]/,
    );
  });
});

describe('the coordinator’s side', () => {
  test('refuses messages out of turn, from sites not asked, twice, or of the wrong size', () => {
    const graph = complete(3);
    const server = new SecAggServer({ runId: 'r', round: 1, graph, threshold: 2, length: 4 });
    const sites = [1, 2, 3].map((id) => new SecAggSite({ runId: 'r', round: 1 }, server.setupFor(id)));
    const keys = sites.map((s) => s.advertise());
    server.acceptKeys(1, keys[0]!);
    expectFtlError(() => server.acceptKeys(1, keys[0]!), ErrorCode.InvalidMessage, /not asked for, or twice/);
    expectFtlError(() => server.acceptKeys(9, keys[1]!), ErrorCode.InvalidMessage, /site 9 sent keys it was not asked for/);
    expectFtlError(() => server.acceptKeys(2, keys[0]!), ErrorCode.InvalidMessage, /a key site 1 already did/);
    expectFtlError(
      () => server.acceptMaskedInput(1, { masked: new Uint8Array(16) }),
      ErrorCode.InvalidMessage,
      /while secure aggregation is at advertise/,
    );
    server.acceptKeys(2, keys[1]!);
    server.acceptKeys(3, keys[2]!);
    const dirs = server.closeAdvertise();
    const out = sites[0]!.shareKeys(dirs.get(1)!);
    expectFtlError(
      () => server.acceptShares(1, { ...out, shares: out.shares.slice(1) }),
      ErrorCode.InvalidMessage,
      /one sealed share bundle to each of the 2 sites/,
    );
    server.acceptShares(1, out);
    server.acceptShares(2, sites[1]!.shareKeys(dirs.get(2)!));
    server.acceptShares(3, sites[2]!.shareKeys(dirs.get(3)!));
    const deliveries = server.closeShares();
    expectFtlError(
      () => server.acceptMaskedInput(1, { masked: new Uint8Array(15) }),
      ErrorCode.InvalidMessage,
      /must be 16 bytes, 4 per word \(got 15\)/,
    );
    server.acceptMaskedInput(1, sites[0]!.maskInput(deliveries.get(1)!, new Uint32Array(4)));
  });

  test('a wrong share among more than t is caught, and the round fails instead of returning a wrong sum', () => {
    const graph = complete(4);
    const server = new SecAggServer({ runId: 'r', round: 1, graph, threshold: 3, length: 2 });
    const sites = [1, 2, 3, 4].map((id) => new SecAggSite({ runId: 'r', round: 1 }, server.setupFor(id)));
    for (const s of sites) server.acceptKeys(s.self, s.advertise());
    for (const [id, dir] of server.closeAdvertise()) server.acceptShares(id, sites[id - 1]!.shareKeys(dir));
    for (const [id, d] of server.closeShares()) server.acceptMaskedInput(id, sites[id - 1]!.maskInput(d, Uint32Array.of(id, 1)));
    for (const [id, request] of server.closeMaskedInput()) {
      const shares = sites[id - 1]!.unmask(request);
      if (id === 2) shares.seedShares[0]!.share[65]! ^= 1;
      server.acceptUnmaskShares(id, shares);
    }
    expectFtlError(() => server.finish(), ErrorCode.InvalidMessage, /the shares of site 1's self-mask seed do not give the seed it committed to/);
    expect(server.phase).toBe('failed');
  });

  test('a crafted wrong share among exactly t is caught by the seed’s commitment', () => {
    const graph = complete(3);
    const server = new SecAggServer({ runId: 'r', round: 1, graph, threshold: 2, length: 2 });
    const sites = [1, 2, 3].map((id) => new SecAggSite({ runId: 'r', round: 1 }, server.setupFor(id)));
    for (const s of sites) server.acceptKeys(s.self, s.advertise());
    for (const [id, dir] of server.closeAdvertise()) server.acceptShares(id, sites[id - 1]!.shareKeys(dir));
    for (const [id, d] of server.closeShares()) server.acceptMaskedInput(id, sites[id - 1]!.maskInput(d, Uint32Array.of(id, 1)));
    for (const [id, request] of server.closeMaskedInput()) {
      if (id === 3) continue;
      const shares = sites[id - 1]!.unmask(request);
      // One low bit flipped at 2^8: with two points whose Lagrange weights are small fractions, the
      // rebuilt seed moves by a small amount and still fits 32 bytes; only the commitment tells.
      if (id === 2) shares.seedShares.find((s) => s.of === 1)!.share[64]! ^= 1;
      server.acceptUnmaskShares(id, shares);
    }
    expectFtlError(() => server.finish(), ErrorCode.InvalidMessage, /the shares of site 1's self-mask seed do not give the seed it committed to/);
    expect(server.phase).toBe('failed');
  });

  test('refuses unmask shares other than those asked for', () => {
    const graph = complete(3);
    const server = new SecAggServer({ runId: 'r', round: 1, graph, threshold: 2, length: 1 });
    const sites = [1, 2, 3].map((id) => new SecAggSite({ runId: 'r', round: 1 }, server.setupFor(id)));
    for (const s of sites) server.acceptKeys(s.self, s.advertise());
    for (const [id, dir] of server.closeAdvertise()) server.acceptShares(id, sites[id - 1]!.shareKeys(dir));
    for (const [id, d] of server.closeShares()) if (id !== 3) server.acceptMaskedInput(id, sites[id - 1]!.maskInput(d, new Uint32Array(1)));
    const requests = server.closeMaskedInput();
    const shares = sites[0]!.unmask(requests.get(1)!);
    // Asking for a dropped site's seed share as well would unmask it: the coordinator takes none.
    const extra = { seedShares: [...shares.seedShares, { of: 3, share: shares.keyShares[0]!.share }], keyShares: shares.keyShares };
    expectFtlError(() => server.acceptUnmaskShares(1, extra), ErrorCode.InvalidMessage, /seed shares of exactly the 2 survivors/);
  });
});

describe('the masks', () => {
  /** The masked vector of site 1 when every site's input is the constant `value`, with fixed randomness. */
  function maskedConstant(value: number, options: { runId?: string; round?: number; length?: number } = {}): Uint32Array {
    const n = 4;
    const length = options.length ?? 1 << 16;
    const inputs = Array.from({ length: n }, () => new Uint32Array(length).fill(value));
    const { masked, error } = playRound({ ...options, inputs, graph: complete(n), threshold: 3, random: (id) => seededRandom(`site ${id}`) });
    expect(error).toBeUndefined();
    return masked.get(1)!;
  }

  /** Pearson's χ² of each byte of the words against 256 equally likely values; the largest over the 4 bytes. */
  function chiSquare(words: Uint32Array): number {
    let worst = 0;
    for (let b = 0; b < 4; b++) {
      const counts = new Float64Array(256);
      for (const w of words) counts[(w >>> (8 * b)) & 0xff]!++;
      const expected = words.length / 256;
      worst = Math.max(
        worst,
        counts.reduce((s, c) => s + (c - expected) ** 2 / expected, 0),
      );
    }
    return worst;
  }

  /** Kolmogorov–Smirnov distance of words / 2^32 from the uniform distribution on [0, 1). */
  function ksDistance(words: Uint32Array): number {
    const sorted = Float64Array.from(words, (w) => w / 2 ** 32).sort();
    let d = 0;
    sorted.forEach((x, i) => {
      d = Math.max(d, (i + 1) / sorted.length - x, x - i / sorted.length);
    });
    return d;
  }

  // χ² with 255 degrees of freedom exceeds 330.5 with probability 0.001; KS at n = 65 536 exceeds
  // 1.95/√n likewise. The randomness is fixed, so the test gives the same answer every run.
  const CHI2_255_P001 = 330.5;
  const ksCritical = (n: number) => 1.95 / Math.sqrt(n);

  test.each([0, 123_456_789])(
    'a masked input of the constant %i is indistinguishable from uniform words (χ² per byte, Kolmogorov–Smirnov)',
    (value) => {
      const masked = maskedConstant(value);
      expect(chiSquare(masked)).toBeLessThan(CHI2_255_P001);
      expect(ksDistance(masked)).toBeLessThan(ksCritical(masked.length));
    },
  );

  test('the same tests tell the input apart when it is not masked', () => {
    for (const plain of [new Uint32Array(1 << 16).fill(123_456_789), new Uint32Array(1 << 16)]) {
      expect(chiSquare(plain)).toBeGreaterThan(CHI2_255_P001);
      expect(ksDistance(plain)).toBeGreaterThan(ksCritical(plain.length));
    }
  });

  test('depend on the run and the round: the same sites, randomness and inputs mask differently in another run or round', () => {
    const base = maskedConstant(0, { length: 64 });
    expect(Array.from(maskedConstant(0, { length: 64 }))).toEqual(Array.from(base));
    for (const other of [maskedConstant(0, { length: 64, runId: 'run-2' }), maskedConstant(0, { length: 64, round: 2 })]) {
      expect(other.filter((w, i) => w === base[i]).length).toBe(0);
    }
  });

  test('are not any 32-bit seed of the project’s generator: no seed in [0, 2^16) nor one derived from the round reproduces a mask', () => {
    const mask = maskedConstant(0, { length: 4 });
    const candidates = [
      ...Array.from({ length: 1 << 16 }, (_, s) => s),
      deriveSeed(1),
      deriveSeed(1, 1),
      deriveSeed(0, 1),
      deriveSeed(1, 1, 1),
      0x9e3779b9,
    ];
    const prefix = (seed: number) => {
      const rng = createRng(seed);
      return [0, 1].map(() => Math.floor(rng.next() * 2 ** 32));
    };
    const hits = candidates.filter((seed) => {
      const p = prefix(seed);
      return p[0] === mask[0] && p[1] === mask[1];
    });
    expect(hits).toEqual([]);
  });

  test('the code that builds masks, keys and shares reaches neither Math.random nor the project’s seeded generator', () => {
    const here = dirname(fileURLToPath(import.meta.url));
    const entries = ['secagg-site.ts', 'secagg-server.ts', 'mask-prg.ts', 'key-agreement.ts', 'shamir.ts', 'share-cipher.ts'].map((f) =>
      join(here, f),
    );
    const seen = new Set<string>();
    const walk = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const s of specifiersOf(readFileSync(file, 'utf8'))) {
        const next = resolveRelative(file, s);
        if (next) walk(next);
      }
    };
    entries.forEach(walk);
    const reached = [...seen].map((f) => relative(here, f));
    expect(reached).not.toContain(join('..', 'random.ts'));
    expect(reached).toContain('threshold.ts');
    const usesMathRandom = [...seen].filter((f) =>
      /Math\.random/.test(
        readFileSync(f, 'utf8')
          .replace(/\/\/.*$/gm, '')
          .replace(/\/\*[\s\S]*?\*\//g, ''),
      ),
    );
    expect(usesMathRandom.map((f) => relative(here, f))).toEqual([]);
  });

  test('the site’s secrets come from the system CSPRNG by default: two sites set up alike advertise different keys and mask differently', () => {
    const a = new SecAggSite({ runId: 'r', round: 1 }, { self: 1, neighbours: [2], threshold: 2 });
    const b = new SecAggSite({ runId: 'r', round: 1 }, { self: 1, neighbours: [2], threshold: 2 });
    expect(Buffer.from(a.advertise().sPublicKey).equals(Buffer.from(b.advertise().sPublicKey))).toBe(false);
    const err = thrownBy(() => new SecAggSite({ runId: 'r', round: 1 }, { self: 1, neighbours: [1, 2], threshold: 2 }));
    expect(isFtlError(err, ErrorCode.InvalidMessage)).toBe(true);
  });
});
