import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, FtlError, type ImageDataset, type PrivacyReport, RdpAccountant, type SampledGaussian } from '@ftl/shared';
import { cacheWriteError } from './cache-dir.js';
import { datasetDigest } from './feature-cache.js';
import { oneLine } from './one-line.js';

/** Where a site keeps the ledger of one dataset: `<cacheDir>/privacy/<SHA-256 of the training data>.json`. */
export function ledgerPath(cacheDir: string, data: ImageDataset): string {
  return join(cacheDir, 'privacy', `${datasetDigest(data)}.json`);
}

/** ε as a refusal shows it: two decimals, or as many more (up to six) as it takes to tell it from the budget. */
function shownEpsilon(epsilon: number, budget: number): string {
  let digits = 2;
  while (digits < 6 && Number(epsilon.toFixed(digits)) <= budget) digits++;
  return epsilon.toFixed(digits);
}

/** What a site answers before a round that asks for training: train under these settings, or refuse and why. */
export type PrivacyDecision = { train: true } | { train: false; message: string; privacy: PrivacyReport | undefined };

/**
 * A site's privacy ledger for one dataset: an {@link RdpAccountant} kept on disk beside the feature cache,
 * keyed by the digest of the training data, so the ε a site spends adds up across rounds, runs and
 * restarts of the client on the same data. The site decides, not the coordinator: with a budget it
 * refuses any round that would take ε past it.
 *
 * Every change is saved before the update that spent it leaves the site, written beside the ledger and
 * renamed into place, so a crash leaves the old ledger or the new one, never half of one. One client at a
 * time should use a cache folder: two processes training on the same data would each save their own count.
 *
 * @example
 * const ledger = PrivacyLedger.open('.ftl/cache', shard.train);
 * const decision = ledger.decide({ budget: 8, delta: 1e-5, next: { noiseMultiplier: 1.1, sampleRate: 0.05, steps: 40 } });
 * if (decision.train) { const { privacy } = await trainer.fit(…); await ledger.record(privacy); }
 */
export class PrivacyLedger {
  private constructor(
    /** The ledger file (it may not exist yet: nothing spent). */
    readonly path: string,
    private readonly cacheDir: string,
    private readonly accountant: RdpAccountant,
  ) {}

  /**
   * The ledger of `data` in `cacheDir`: read from its file, or empty when there is none yet.
   *
   * @throws FtlError(INVALID_CONFIG) in one line naming the file when it cannot be read or is not a
   * ledger (not JSON, another format, an entry out of range): the ε already spent is unknown, so the site
   * must not go on as if it were 0.
   */
  static open(cacheDir: string, data: ImageDataset): PrivacyLedger {
    const path = ledgerPath(cacheDir, data);
    let text: string | undefined;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new FtlError(ErrorCode.InvalidConfig, `cannot read the privacy ledger ${path}: ${oneLine((err as Error).message)}`, { cause: err });
      }
    }
    if (text === undefined) return new PrivacyLedger(path, cacheDir, new RdpAccountant());
    try {
      return new PrivacyLedger(path, cacheDir, RdpAccountant.deserialize(text));
    } catch (err) {
      throw new FtlError(
        ErrorCode.InvalidConfig,
        `the privacy ledger ${path} is damaged (${oneLine((err as Error).message)}); it records the ε this site has spent on this data, ` +
          'so restore it from a backup (deleting it would count that ε from 0 again)',
        { cause: err },
      );
    }
  }

  /** The ledger's entries: one per distinct (sample rate, σ), steps added up. */
  get entries(): readonly Readonly<SampledGaussian>[] {
    return this.accountant.ledger;
  }

  /** The privacy spent so far at `delta` (ε 0 when nothing is recorded), with the site's budget when it keeps one. */
  spent(delta: number, budget?: number): PrivacyReport {
    const epsilon = this.accountant.ledger.length === 0 ? 0 : this.accountant.epsilon(delta).epsilon;
    return { epsilon, delta, ...(budget !== undefined ? { budget } : {}) };
  }

  /**
   * Whether to train a round that runs `next` (undefined: training without record-level DP). Without a
   * budget every round trains. With one, a round whose ε after it would pass the budget is refused, and
   * so is a round without DP (its ε is unbounded); the message says why in one line.
   */
  decide(o: { budget: number | undefined; delta: number | undefined; next: SampledGaussian | undefined }): PrivacyDecision {
    const { budget, delta, next } = o;
    if (budget === undefined) return { train: true };
    if (next === undefined || delta === undefined) {
      return {
        train: false,
        privacy: undefined,
        message: `privacy budget: this round would train without record-level DP (ε unbounded), and this site keeps an ε budget of ${budget}; it trains only in runs with privacy.mode record`,
      };
    }
    const after = this.accountant.epsilonAfter(next, delta).epsilon;
    if (after <= budget) return { train: true };
    const privacy = this.spent(delta, budget);
    return {
      train: false,
      privacy,
      message: `privacy budget: ε would reach ${shownEpsilon(after, budget)} > budget ${budget} at δ ${delta.toExponential()} (spent so far: ε ${privacy.epsilon.toFixed(2)})`,
    };
  }

  /**
   * Adds what one training spent and saves the ledger, before its update leaves the site.
   *
   * @throws FtlError(INVALID_CONFIG) naming the cache folder when the ledger cannot be written (the
   * update must then not be sent: its ε would go unrecorded).
   */
  async record(spent: SampledGaussian): Promise<void> {
    this.accountant.step({ noiseMultiplier: spent.noiseMultiplier, sampleRate: spent.sampleRate, steps: spent.steps });
    const tmp = `${this.path}.tmp-${randomBytes(4).toString('hex')}`;
    try {
      await mkdir(join(this.cacheDir, 'privacy'), { recursive: true });
      await writeFile(tmp, `${JSON.stringify(this.accountant.serialize())}\n`);
      await rename(tmp, this.path);
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => {});
      throw cacheWriteError(this.cacheDir, err);
    }
  }
}
