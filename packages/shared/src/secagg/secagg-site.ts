import { ErrorCode, FtlError } from '../errors.js';
import { agreeKey, generateKeyPair, type KeyPair, type RandomBytes, secureRandomBytes } from './key-agreement.js';
import { expandMask, MASK_KEY_BYTES, seedCommitment } from './mask-prg.js';
import type { AdvertiseKeys, KeyDirectory, MaskedInput, SecAggSetup, SharesIn, SharesOut, UnmaskRequest, UnmaskShares } from './phase-messages.js';
import { wordsToBytes } from './phase-messages.js';
import { addInto, subtractFrom } from './quantize.js';
import { shareSecret } from './shamir.js';
import { openShares, sealShares } from './share-cipher.js';
import { checkThreshold } from './threshold.js';

// One site's side of one round of secure aggregation (Bonawitz et al. 2017, with SecAgg+'s neighbourhoods),
// as a state machine with no I/O: each method takes the coordinator's message of a phase and returns the
// site's answer. Its secrets (two key pairs, the self-mask seed, the shares it holds) never leave it except
// as the protocol says: shares sealed for their holder, and in the last phase one kind of share per peer.

/** Where a round of secure aggregation belongs. */
export interface SecAggRound {
  runId: string;
  round: number;
}

type Phase = 'advertise' | 'share' | 'mask' | 'unmask' | 'done';

const fail = (message: string) => new FtlError(ErrorCode.InvalidMessage, message);

/**
 * A site's state machine for one round: `advertise()` → `shareKeys(directory)` →
 * `maskInput(sharesIn, input)` → `unmask(request)`, each exactly once and in that order.
 *
 * @example
 * const site = new SecAggSite({ runId, round }, setup);
 * send(site.advertise()); send(site.shareKeys(directory)); send(site.maskInput(sharesIn, words)); send(site.unmask(request));
 */
export class SecAggSite {
  private phase: Phase = 'advertise';
  private readonly neighbours: ReadonlySet<number>;
  private cKeys?: KeyPair;
  private sKeys?: KeyPair;
  private seed?: Uint8Array;
  /** Peers in this site's directory: their public keys. */
  private directory = new Map<number, { cPublicKey: Uint8Array; sPublicKey: Uint8Array }>();
  /** Shares this site holds, by the peer they belong to (itself included): of its mask private key, and of its seed. */
  private held = new Map<number, { keyShare: Uint8Array; seedShare: Uint8Array }>();
  /** The peers this site masked its input with: the senders of the shares it received. */
  private maskedWith: number[] = [];

  constructor(
    private readonly ctx: SecAggRound,
    private readonly setup: SecAggSetup,
    private readonly random: RandomBytes = secureRandomBytes,
  ) {
    if (setup.neighbours.includes(setup.self)) throw fail(`site ${setup.self} is listed among its own neighbours`);
    this.neighbours = new Set(setup.neighbours);
    if (this.neighbours.size !== setup.neighbours.length) throw fail(`site ${setup.self}'s neighbours repeat an id`);
    // A site protects itself: a threshold below a majority of its holders would let the coordinator
    // gather both kinds of its shares from two groups told different stories.
    checkThreshold(setup.threshold, setup.neighbours.length + 1, "the round's secure-aggregation threshold", ErrorCode.InvalidMessage);
  }

  /** This site's id in the round. */
  get self(): number {
    return this.setup.self;
  }

  private enter(expected: Phase, next: Phase): void {
    if (this.phase !== expected) throw fail(`site ${this.self} was asked to ${expected} while it was at ${this.phase}`);
    this.phase = next;
  }

  private need(count: number, what: string): void {
    if (count < this.setup.threshold) {
      throw new FtlError(
        ErrorCode.Quorum,
        `secure aggregation: ${count} of site ${this.self}'s share holders ${what}, ${this.setup.threshold} were needed`,
      );
    }
  }

  /** Phase 0: two fresh key pairs, one to seal shares (c), one to agree masks (s); their public keys. */
  advertise(): AdvertiseKeys {
    this.enter('advertise', 'share');
    this.cKeys = generateKeyPair(this.random);
    this.sKeys = generateKeyPair(this.random);
    return { cPublicKey: this.cKeys.publicKey, sPublicKey: this.sKeys.publicKey };
  }

  /**
   * Phase 1: checks the directory (neighbours only, distinct keys, enough of them), draws a fresh self-mask
   * seed, splits its s private key and its seed into shares for every holder (the directory and itself),
   * seals each neighbour's under their pairwise c-key, and commits to the seed.
   *
   * @throws FtlError(QUORUM) when fewer than t holders remain; INVALID_MESSAGE for a directory it must refuse.
   */
  shareKeys(directory: KeyDirectory): SharesOut {
    this.enter('share', 'mask');
    const seenKeys = new Set<string>();
    for (const k of [this.cKeys!.publicKey, this.sKeys!.publicKey]) seenKeys.add(Buffer.from(k).toString('hex'));
    for (const entry of directory.keys) {
      if (!this.neighbours.has(entry.id)) throw fail(`the key directory lists site ${entry.id}, which is not a neighbour of site ${this.self}`);
      if (this.directory.has(entry.id)) throw fail(`the key directory lists site ${entry.id} twice`);
      for (const k of [entry.cPublicKey, entry.sPublicKey]) {
        const hex = Buffer.from(k).toString('hex');
        if (seenKeys.has(hex)) throw fail(`the key directory repeats a public key (site ${entry.id}); every key must be fresh`);
        seenKeys.add(hex);
      }
      this.directory.set(entry.id, { cPublicKey: entry.cPublicKey, sPublicKey: entry.sPublicKey });
    }
    this.need(this.directory.size + 1, 'advertised keys');
    this.seed = this.random(MASK_KEY_BYTES);
    const holders = [this.self, ...[...this.directory.keys()].sort((a, b) => a - b)];
    const keyShares = shareSecret(this.sKeys!.privateKey, this.setup.threshold, holders, this.random);
    const seedShares = shareSecret(this.seed, this.setup.threshold, holders, this.random);
    const shares: SharesOut['shares'] = [];
    holders.forEach((to, i) => {
      const bundle = { from: this.self, to, keyShare: keyShares[i]!.y, seedShare: seedShares[i]!.y };
      if (to === this.self) {
        this.held.set(to, bundle);
        return;
      }
      const key = agreeKey(this.cKeys!.privateKey, this.directory.get(to)!.cPublicKey, 'share', { ...this.ctx, a: this.self, b: to });
      shares.push({ to, sealed: sealShares(key, bundle, this.ctx, this.random) });
    });
    return { shares, seedCommitment: seedCommitment(this.seed, { ...this.ctx, site: this.self }) };
  }

  /**
   * Phase 2: opens the shares its neighbours sealed for it (their senders are the peers it masks with),
   * then masks its input: y = x + PRG(seed) + Σ_{v>u} PRG(s_uv) − Σ_{v<u} PRG(s_uv) mod 2^32.
   *
   * @param input the site's quantised input, ring words.
   * @throws FtlError(QUORUM) when fewer than t holders remain; INVALID_MESSAGE for shares it must refuse.
   */
  maskInput(sharesIn: SharesIn, input: Uint32Array): MaskedInput {
    this.enter('mask', 'unmask');
    for (const { from, sealed } of sharesIn.shares) {
      const peer = this.directory.get(from);
      if (!peer) throw fail(`site ${this.self} received shares from site ${from}, which is not in its key directory`);
      if (this.held.has(from)) throw fail(`site ${this.self} received shares from site ${from} twice`);
      const key = agreeKey(this.cKeys!.privateKey, peer.cPublicKey, 'share', { ...this.ctx, a: this.self, b: from });
      const bundle = openShares(key, sealed, { ...this.ctx, from, to: this.self });
      this.held.set(from, { keyShare: bundle.keyShare, seedShare: bundle.seedShare });
    }
    this.maskedWith = sharesIn.shares.map((s) => s.from).sort((a, b) => a - b);
    this.need(this.maskedWith.length + 1, 'sent shares');
    const y = Uint32Array.from(input);
    addInto(y, expandMask(this.seed!, y.length));
    for (const v of this.maskedWith) {
      const pairKey = agreeKey(this.sKeys!.privateKey, this.directory.get(v)!.sPublicKey, 'mask', { ...this.ctx, a: this.self, b: v });
      const mask = expandMask(pairKey, y.length);
      if (v > this.self) addInto(y, mask);
      else subtractFrom(y, mask);
    }
    return { masked: wordsToBytes(y) };
  }

  /**
   * Phase 3: reveals its shares of each survivor's self-mask seed and of each dropped peer's mask private
   * key. It answers once per round, and only a request that splits exactly the peers it masked with (and
   * itself, a survivor) into the two lists: so it never reveals both kinds of share for one peer, which
   * would give the coordinator that peer's input.
   *
   * @throws FtlError(QUORUM) when fewer than t of its holders survived; INVALID_MESSAGE for a request it must refuse.
   */
  unmask(request: UnmaskRequest): UnmaskShares {
    this.enter('unmask', 'done');
    const expected = new Set([this.self, ...this.maskedWith]);
    const survivors = new Set(request.survivors);
    const dropped = new Set(request.dropped);
    if (survivors.size !== request.survivors.length || dropped.size !== request.dropped.length) throw fail('an unmask request repeats a site');
    if (!survivors.has(this.self)) throw fail(`an unmask request to site ${this.self} does not list it among the survivors`);
    for (const v of [...survivors, ...dropped]) {
      if (survivors.has(v) && dropped.has(v))
        throw fail(`an unmask request lists site ${v} as both survivor and dropped; a site reveals one kind of share per peer`);
      if (!expected.has(v)) throw fail(`an unmask request names site ${v}, whose shares site ${this.self} does not hold`);
    }
    if (survivors.size + dropped.size !== expected.size) {
      throw fail(`an unmask request to site ${this.self} must say of each of the ${expected.size} sites it masked with whether it survived`);
    }
    this.need(survivors.size, 'survived');
    const reveal = (ids: Set<number>, pick: (h: { keyShare: Uint8Array; seedShare: Uint8Array }) => Uint8Array) =>
      [...ids].sort((a, b) => a - b).map((of) => ({ of, share: pick(this.held.get(of)!) }));
    return { seedShares: reveal(survivors, (h) => h.seedShare), keyShares: reveal(dropped, (h) => h.keyShare) };
  }
}
