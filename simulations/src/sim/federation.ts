import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ComputeTurns, FtlClient } from '@ftl/client';
import { applyRunConfig, Coordinator, type RoundRecord, type RunConfig, type RunSummary, type ServerSettings } from '@ftl/coordinator';
import { createLogger, initBackend, type ImageDataset, type LocalShard, type Logger, type Weights } from '@ftl/shared';
import { heldOutAccuracy } from '../holdout.js';
import type { RoundPoint } from '../report/types.js';

/** A misbehaving site: rewrites its trained weights before sending them. */
export type Attack = (trained: Weights, global: Weights) => Weights;

/** Sign-flipped, scaled update: sends global − scale·(trained − global). */
export function signFlip(scale: number): Attack {
  return (trained, global) => ({
    specs: trained.specs,
    values: trained.values.map((v, i) => global.values[i]! - scale * (v - global.values[i]!)),
  });
}

/** One federated run in this process: the real coordinator, and real clients holding the given sites. */
export interface FederationSpec {
  /** The run config (the coordinator's schema); `minClients` is set to the number of sites. */
  run: RunConfig;
  backboneDir: string;
  /** One shard per site. */
  sites: readonly LocalShard[];
  /** Images no site holds: the global model is scored on them every `every` rounds (0: the final model only). */
  heldOut?: { test: ImageDataset; every: number };
  /** Clients' backbone and feature cache (default: a temporary folder, removed after the run). */
  cacheDir?: string;
  /** The first `attackers` sites rewrite every update with `attack`. */
  attackers?: number;
  attack?: Attack;
  log?: Logger;
  /** Hears each committed round, with its held-out score when one was taken. */
  onRound?: (point: RoundPoint) => void;
}

/** What one federated run measured. */
export interface FederationResult {
  summary: RunSummary;
  rounds: RoundPoint[];
  /** Held-out accuracy of the exported model (NaN without a held-out set, or with local layers). */
  heldOut: number;
  seconds: number;
  featureDim: number;
}

function point(r: RoundRecord, heldOut: number | undefined): RoundPoint {
  return {
    round: r.round,
    valLoss: r.valLoss,
    valAccuracy: r.valAccuracy,
    ...(heldOut !== undefined ? { heldOut } : {}),
    trainLoss: r.trainLoss,
    accepted: r.accepted,
    selected: r.selected,
    bytesIn: r.bytesIn,
    bytesOut: r.bytesOut,
    seconds: r.seconds,
  };
}

/**
 * Runs one federation to its end over loopback socket.io: the coordinator with `run`, one client per
 * site taking turns at the thread's compute (so the thread still answers pings), and the held-out score
 * of the global model as the rounds go. Every client's failure is reported, never left unhandled.
 *
 * @example
 * const r = await runFederation({ run: parseRunConfig({ rounds: 3 }), backboneDir, sites });
 */
export async function runFederation(spec: FederationSpec): Promise<FederationResult> {
  await initBackend();
  const t0 = performance.now();
  const log = spec.log ?? createLogger('simulation', { level: 'warn' });
  const dir = await mkdtemp(join(tmpdir(), 'ftl-sim-'));
  const exportDir = join(dir, 'model');
  const server: ServerSettings = { host: '127.0.0.1', port: 0, backboneDir: spec.backboneDir, exportDir, requireAuth: false };
  // A simulation's sites may train slowly on a shared thread: generous waits, never the operator's defaults.
  const run = { ...spec.run, minClients: spec.sites.length, waitTimeoutSeconds: 600, roundDeadlineSeconds: 1800 };
  const coordinator = await Coordinator.create(applyRunConfig(server, run), log);
  const { url } = await coordinator.listen();
  // The sites share this thread: their training takes turns, so the thread answers pings between batches.
  const turns = new ComputeTurns();
  const clients = spec.sites.map((shard, index) => {
    const attack = index < (spec.attackers ?? 0) ? spec.attack : undefined;
    return new FtlClient({
      serverUrl: url,
      name: `site-${index}`,
      shard,
      cacheDir: spec.cacheDir ?? join(dir, 'cache'),
      log: log.child({ client: index }),
      turns,
      ...(attack ? { transformUpdate: attack } : {}),
    });
  });
  // Settled either way: a client that fails after the coordinator gave up must not become an unhandled rejection.
  const ends = clients.map((c) =>
    c.run().then(
      () => undefined,
      (err: unknown) => err,
    ),
  );
  const rounds: RoundPoint[] = [];
  const every = spec.heldOut?.every ?? 0;
  const scoreDir = join(dir, 'round-model');
  try {
    const summary = await coordinator.run(async (record, model) => {
      let heldOut: number | undefined;
      if (spec.heldOut && every > 0 && record.round % every === 0 && record.status === 'aggregated' && run.localLayers.length === 0) {
        await model.exportTo(scoreDir);
        heldOut = await heldOutAccuracy(scoreDir, spec.heldOut.test);
      }
      const p = point(record, heldOut);
      // A round played again after missing its quorum replaces its earlier attempt.
      const earlier = rounds.findIndex((x) => x.round === p.round);
      if (earlier >= 0) rounds[earlier] = p;
      else rounds.push(p);
      spec.onRound?.(p);
    });
    const failed = (await Promise.all(ends)).find((e) => e !== undefined);
    if (failed !== undefined) throw failed;
    const heldOut = spec.heldOut && run.localLayers.length === 0 ? await heldOutAccuracy(exportDir, spec.heldOut.test) : NaN;
    return { summary, rounds, heldOut, seconds: (performance.now() - t0) / 1000, featureDim: coordinator.head.featureDim };
  } finally {
    for (const c of clients) c.close();
    await coordinator.close();
    await rm(dir, { recursive: true, force: true });
  }
}
