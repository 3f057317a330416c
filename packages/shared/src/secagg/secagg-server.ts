import { ErrorCode, FtlError } from '../errors.js';
import { agreeKey, x25519PublicKey } from './key-agreement.js';
import { expandMask, seedCommitment } from './mask-prg.js';
import { checkThreshold } from './threshold.js';
import {
  type AdvertiseKeys,
  bytesToWords,
  type KeyDirectory,
  type MaskedInput,
  type SecAggSetup,
  type SharesIn,
  type SharesOut,
  type UnmaskRequest,
  type UnmaskShares,
} from './phase-messages.js';
import { addInto, subtractFrom } from './quantize.js';
import type { SecAggRound } from './secagg-site.js';
import { reconstructSecret, type Share } from './shamir.js';

// The coordinator's side of one round of secure aggregation, with no I/O: it takes each site's message of
// a phase (`accept*`), and when the phase closes (every site answered, or the deadline) it says what to
// send each site next (`close*`). It only ever holds the running sum of masked inputs, the public keys,
// sealed shares it cannot open, and in the last phase the shares it needs: one kind per site, never both.
// The sum it returns is the plain sum of the surviving sites' inputs, or it fails with QUORUM when fewer
// than t holders answered a phase for some site it needs.

/** The phases of a round on the coordinator's side. */
export type SecAggServerPhase = 'advertise' | 'share' | 'masked-input' | 'unmask' | 'done' | 'failed';

/** What the coordinator needs to run one round. */
export interface SecAggServerOptions extends SecAggRound {
  /** Every site of the round by id (≥ 1), with its neighbours; symmetric (see neighbourGraph). */
  graph: ReadonlyMap<number, readonly number[]>;
  /** t: shares needed to rebuild a secret; between a majority and all of each site's holders (neighbours + itself). */
  threshold: number;
  /** Ring words per input. */
  length: number;
}

/** A round's result: the sum of the surviving sites' inputs, who they are, and who dropped. */
export interface SecAggOutcome {
  /** Σ inputs of `survivors`, in the ring. */
  sum: Uint32Array;
  /** Sites whose inputs are in the sum (sent a masked input), ascending. */
  survivors: number[];
  /** Sites of the round whose inputs are not in the sum, ascending. */
  dropped: number[];
}

const refuse = (message: string) => new FtlError(ErrorCode.InvalidMessage, message);
const sorted = (ids: Iterable<number>) => [...ids].sort((a, b) => a - b);
const sameSet = (a: readonly number[], b: readonly number[]) => {
  const other = new Set(b);
  return a.length === b.length && new Set(a).size === a.length && a.every((v) => other.has(v));
};

/**
 * The coordinator's state machine for one round: `setupFor` each site; then for each phase `accept*` every
 * answer and `close*` to get the next messages; `finish()` gives the sum.
 *
 * @example
 * const server = new SecAggServer({ runId, round, graph, threshold: 7, length });
 * for (const [id, keys] of answers) server.acceptKeys(id, keys);
 * const directories = server.closeAdvertise(); // send each site its directory …
 */
export class SecAggServer {
  private phaseNow: SecAggServerPhase = 'advertise';
  private readonly keys = new Map<number, AdvertiseKeys>();
  /** Each site's directory after phase 0: its neighbours that advertised keys (and stayed). */
  private readonly directory = new Map<number, number[]>();
  /** Sealed shares by sender, then recipient. */
  private readonly sealed = new Map<number, Map<number, Uint8Array>>();
  /** Each site's commitment to its self-mask seed (phase 1). */
  private readonly commitments = new Map<number, Uint8Array>();
  /** Each site's mask set after phase 1: the neighbours whose shares it was given, hence masked with. */
  private readonly maskedWith = new Map<number, number[]>();
  private readonly maskedInputs = new Set<number>();
  private sum: Uint32Array;
  private readonly requests = new Map<number, UnmaskRequest>();
  private readonly seedShares = new Map<number, Share[]>();
  private readonly keyShares = new Map<number, Share[]>();
  private readonly unmasked = new Set<number>();

  constructor(private readonly options: SecAggServerOptions) {
    const { graph, threshold } = options;
    if (graph.size < 2)
      throw new FtlError(
        ErrorCode.InvalidConfig,
        `secure aggregation needs at least 2 sites in a round (got ${graph.size}); a sum of one is that site's input`,
      );
    for (const [id, neighbours] of graph) {
      for (const v of neighbours) {
        if (v === id || !graph.get(v)?.includes(id)) {
          throw new FtlError(ErrorCode.InternalError, `secure aggregation's graph must be symmetric without self-links (site ${id} and ${v})`);
        }
      }
      checkThreshold(threshold, neighbours.length + 1);
    }
    this.sum = new Uint32Array(options.length);
  }

  /** The current phase. */
  get phase(): SecAggServerPhase {
    return this.phaseNow;
  }

  /** Whether the current phase waits for site `id`'s answer. */
  isAwaited(id: number): boolean {
    switch (this.phaseNow) {
      case 'advertise':
        return this.options.graph.has(id) && !this.keys.has(id);
      case 'share':
        return this.directory.has(id) && !this.sealed.has(id);
      case 'masked-input':
        return this.maskedWith.has(id) && !this.maskedInputs.has(id);
      case 'unmask':
        return this.requests.has(id) && !this.unmasked.has(id);
      default:
        return false;
    }
  }

  /** The sites whose answer the current phase waits for, ascending. */
  get awaited(): number[] {
    return sorted(this.options.graph.keys()).filter((id) => this.isAwaited(id));
  }

  /** What site `id` is told when the round starts: its id, neighbours and the threshold. */
  setupFor(id: number): SecAggSetup {
    const neighbours = this.options.graph.get(id);
    if (!neighbours) throw new FtlError(ErrorCode.InternalError, `site ${id} is not in this round's secure aggregation`);
    return { self: id, neighbours: [...neighbours], threshold: this.options.threshold };
  }

  private expect(phase: SecAggServerPhase, id: number, what: string): void {
    if (this.phaseNow !== phase) throw refuse(`site ${id} sent ${what} while secure aggregation is at ${this.phaseNow}`);
    if (!this.isAwaited(id)) throw refuse(`site ${id} sent ${what} it was not asked for, or twice`);
  }

  private failWith(message: string): never {
    this.phaseNow = 'failed';
    throw new FtlError(ErrorCode.Quorum, `secure aggregation: ${message}`);
  }

  /**
   * The largest subset of `candidates` where each keeps at least t − 1 neighbours inside it (its holders
   * with itself ≥ t): a site with fewer could not have its secrets rebuilt, so it leaves, which may leave
   * its neighbours short in turn.
   */
  private viable(candidates: Set<number>): Set<number> {
    const alive = new Set(candidates);
    for (let changed = true; changed; ) {
      changed = false;
      for (const id of alive) {
        const holders = this.options.graph.get(id)!.filter((v) => alive.has(v)).length + 1;
        if (holders < this.options.threshold) {
          alive.delete(id);
          changed = true;
        }
      }
    }
    return alive;
  }

  private shortfall(answered: number, asked: number, verb: string): string {
    const t = this.options.threshold;
    return answered < t
      ? `${answered} of ${asked} sites ${verb}, ${t} were needed`
      : `${answered} of ${asked} sites ${verb}, but none kept ${t} share holders among its neighbours`;
  }

  /** Phase 0: a site's public keys. @throws FtlError(INVALID_MESSAGE) out of turn, twice, or reusing a key. */
  acceptKeys(id: number, message: AdvertiseKeys): void {
    this.expect('advertise', id, 'keys');
    const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
    const mine = [hex(message.cPublicKey), hex(message.sPublicKey)];
    if (mine[0] === mine[1]) throw refuse(`site ${id} advertised the same key twice; its c and s keys must differ`);
    for (const [other, k] of this.keys) {
      if ([hex(k.cPublicKey), hex(k.sPublicKey)].some((h) => mine.includes(h))) throw refuse(`site ${id} advertised a key site ${other} already did`);
    }
    this.keys.set(id, message);
  }

  /**
   * Ends phase 0: each remaining site's directory (its neighbours that advertised keys).
   *
   * @throws FtlError(QUORUM) when no site keeps t holders.
   */
  closeAdvertise(): Map<number, KeyDirectory> {
    if (this.phaseNow !== 'advertise') throw new FtlError(ErrorCode.InternalError, `closeAdvertise at ${this.phaseNow}`);
    const alive = this.viable(new Set(this.keys.keys()));
    if (alive.size === 0) this.failWith(this.shortfall(this.keys.size, this.options.graph.size, 'advertised keys'));
    this.phaseNow = 'share';
    const out = new Map<number, KeyDirectory>();
    for (const id of sorted(alive)) {
      const dir = this.options.graph.get(id)!.filter((v) => alive.has(v));
      this.directory.set(id, dir);
      out.set(id, { keys: dir.map((v) => ({ id: v, ...this.keys.get(v)! })) });
    }
    return out;
  }

  /** Phase 1: a site's sealed shares, exactly one for each site in its directory. */
  acceptShares(id: number, message: SharesOut): void {
    this.expect('share', id, 'shares');
    const dir = this.directory.get(id)!;
    const to = message.shares.map((s) => s.to);
    if (!sameSet(to, dir)) throw refuse(`site ${id} must send one sealed share bundle to each of the ${dir.length} sites in its directory`);
    this.sealed.set(id, new Map(message.shares.map((s) => [s.to, s.sealed])));
    this.commitments.set(id, message.seedCommitment);
  }

  /**
   * Ends phase 1: for each remaining site, the shares sealed for it by its remaining neighbours; their
   * senders are the peers it masks with.
   *
   * @throws FtlError(QUORUM) when no site keeps t holders.
   */
  closeShares(): Map<number, SharesIn> {
    if (this.phaseNow !== 'share') throw new FtlError(ErrorCode.InternalError, `closeShares at ${this.phaseNow}`);
    const alive = this.viable(new Set(this.sealed.keys()));
    if (alive.size === 0) this.failWith(this.shortfall(this.sealed.size, this.directory.size, 'sent shares'));
    this.phaseNow = 'masked-input';
    const out = new Map<number, SharesIn>();
    for (const id of sorted(alive)) {
      const peers = this.directory.get(id)!.filter((v) => alive.has(v));
      this.maskedWith.set(id, peers);
      out.set(id, { shares: peers.map((from) => ({ from, sealed: this.sealed.get(from)!.get(id)! })) });
    }
    this.sealed.clear();
    return out;
  }

  /** Phase 2: a site's masked input, added to the running sum at once (no masked input is kept on its own). */
  acceptMaskedInput(id: number, message: MaskedInput): void {
    this.expect('masked-input', id, 'a masked input');
    const bytes = this.options.length * 4;
    if (message.masked.byteLength !== bytes)
      throw refuse(`site ${id}'s masked input must be ${bytes} bytes, 4 per word (got ${message.masked.byteLength})`);
    addInto(this.sum, bytesToWords(message.masked));
    this.maskedInputs.add(id);
  }

  /** The sites whose secrets the unmasking must rebuild, and from whose holders. */
  private needs(): { seeds: number[]; keys: number[] } {
    const survivors = this.maskedInputs;
    const keys = sorted(this.maskedWith.keys()).filter((v) => !survivors.has(v) && this.maskedWith.get(v)!.some((u) => survivors.has(u)));
    return { seeds: sorted(survivors), keys };
  }

  /**
   * Ends phase 2: what each survivor must reveal: seed shares of the survivors it masked with (and its own),
   * key shares of those that dropped.
   *
   * @throws FtlError(QUORUM) when some secret the sum needs has fewer than t surviving holders.
   */
  closeMaskedInput(): Map<number, UnmaskRequest> {
    if (this.phaseNow !== 'masked-input') throw new FtlError(ErrorCode.InternalError, `closeMaskedInput at ${this.phaseNow}`);
    const survivors = this.maskedInputs;
    const t = this.options.threshold;
    const { seeds, keys } = this.needs();
    const holdersAlive = (id: number, self: boolean) => this.maskedWith.get(id)!.filter((v) => survivors.has(v)).length + (self ? 1 : 0);
    if (survivors.size < t || seeds.some((u) => holdersAlive(u, true) < t) || keys.some((v) => holdersAlive(v, false) < t)) {
      this.failWith(
        `${survivors.size} of ${this.maskedWith.size} sites sent masked inputs, ${t} were needed${survivors.size >= t ? " among each one's neighbours" : ''}`,
      );
    }
    this.phaseNow = 'unmask';
    const out = new Map<number, UnmaskRequest>();
    for (const u of seeds) {
      const peers = this.maskedWith.get(u)!;
      const request = { survivors: sorted([u, ...peers.filter((v) => survivors.has(v))]), dropped: peers.filter((v) => !survivors.has(v)) };
      this.requests.set(u, request);
      out.set(u, request);
    }
    return out;
  }

  /** Phase 3: a survivor's shares, exactly those its request asked for. */
  acceptUnmaskShares(id: number, message: UnmaskShares): void {
    this.expect('unmask', id, 'unmask shares');
    const request = this.requests.get(id)!;
    const seedOf = message.seedShares.map((s) => s.of);
    const keyOf = message.keyShares.map((s) => s.of);
    if (!sameSet(seedOf, request.survivors) || !sameSet(keyOf, request.dropped)) {
      throw refuse(
        `site ${id} must reveal seed shares of exactly the ${request.survivors.length} survivors and key shares of the ${request.dropped.length} dropped sites it was asked about`,
      );
    }
    const file = (into: Map<number, Share[]>, shares: UnmaskShares['seedShares']) => {
      for (const { of, share } of shares) into.set(of, [...(into.get(of) ?? []), { x: id, y: share }]);
    };
    file(this.seedShares, message.seedShares);
    file(this.keyShares, message.keyShares);
    this.unmasked.add(id);
  }

  /**
   * Ends the round: rebuilds every survivor's self-mask seed (checked against its commitment) and every
   * needed dropped site's mask private key (checked against the public key it advertised), removes their
   * masks from the sum and returns it. A wrong share therefore fails the round; it never skews the sum.
   *
   * @throws FtlError(QUORUM) when some secret has fewer than t shares; INVALID_MESSAGE when shares disagree.
   */
  finish(): SecAggOutcome {
    if (this.phaseNow !== 'unmask') throw new FtlError(ErrorCode.InternalError, `finish at ${this.phaseNow}`);
    const t = this.options.threshold;
    const { seeds, keys } = this.needs();
    const short = [...seeds.map((u) => this.seedShares.get(u)?.length ?? 0), ...keys.map((v) => this.keyShares.get(v)?.length ?? 0)].some(
      (n) => n < t,
    );
    if (short) {
      this.failWith(
        `${this.unmasked.size} of ${this.requests.size} sites answered the unmasking, ${t} were needed${this.unmasked.size >= t ? " among each one's neighbours" : ''}`,
      );
    }
    const { runId, round, length } = this.options;
    const sum = this.sum;
    try {
      for (const u of seeds) {
        // Checked against its commitment below, which any wrong share fails: no need to check the extra shares too.
        const seed = reconstructSecret(this.seedShares.get(u)!, t, `site ${u}'s self-mask seed`, { checkAll: false });
        if (!Buffer.from(seedCommitment(seed, { runId, round, site: u })).equals(this.commitments.get(u)!)) {
          throw refuse(
            `secure aggregation: the shares of site ${u}'s self-mask seed do not give the seed it committed to; a holder sent a wrong share`,
          );
        }
        subtractFrom(sum, expandMask(seed, length));
      }
      for (const v of keys) {
        const privateKey = reconstructSecret(this.keyShares.get(v)!, t, `site ${v}'s mask key`, { checkAll: false });
        if (!Buffer.from(x25519PublicKey(privateKey)).equals(this.keys.get(v)!.sPublicKey)) {
          throw refuse(`secure aggregation: the shares of site ${v}'s mask key do not give the key it advertised; a holder sent a wrong share`);
        }
        for (const u of this.maskedWith.get(v)!.filter((w) => this.maskedInputs.has(w))) {
          const mask = expandMask(agreeKey(privateKey, this.keys.get(u)!.sPublicKey, 'mask', { runId, round, a: v, b: u }), length);
          // u added +PRG(s_uv) when v > u and −PRG(s_uv) when v < u; take it back.
          if (v > u) subtractFrom(sum, mask);
          else addInto(sum, mask);
        }
      }
    } catch (err) {
      this.phaseNow = 'failed';
      throw err;
    }
    this.phaseNow = 'done';
    const survivors = sorted(this.maskedInputs);
    return { sum, survivors, dropped: sorted(this.options.graph.keys()).filter((id) => !this.maskedInputs.has(id)) };
  }
}
