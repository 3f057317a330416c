import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  applyRunConfig,
  Coordinator,
  type RoundRecord,
  type SiteEvaluation,
  type RunConfig,
  type RunSummary,
  type ServerSettings,
} from '@ftl/coordinator';
import {
  createInprocHub,
  createLogger,
  ErrorCode,
  FtlError,
  initBackend,
  type ImageDataset,
  type LocalShard,
  type Logger,
  type RawTable,
  type Weights,
} from '@ftl/shared';
import { heldOutAccuracy, heldOutTableAccuracy, taskDataset } from '../holdout.js';
import type { RoundPoint } from '../report/types.js';
import { hostSitesInThread, hostSitesInWorkers, isTableSite, siteFailure, type SiteHost, type TableSite, type ThreadSite } from './site-host.js';
import { buildSite, isSiteSpec, type SiteSpec } from './site-spec.js';

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
  /**
   * The sites: shards built by the caller, or specs each site is built from where it trains (this
   * thread, or a worker). Site i's client is named `site-i`.
   */
  sites: readonly LocalShard[] | readonly SiteSpec[] | readonly TableSite[];
  /**
   * Worker threads that build and train the sites, taking turns within each (0, the default: this
   * thread). More than 0 needs the sites as specs, and no attackers.
   */
  workers?: number;
  /**
   * The live channel: loopback socket.io (`socket`, the default) or an in-memory hub (`inproc`: the same
   * coordinator and clients, every message encoded and checked as over a socket; the backbone still comes
   * over the coordinator's loopback HTTP). `inproc` keeps every site in this thread.
   */
  transport?: 'socket' | 'inproc';
  /** The site workers' entry module (default: the built `site-worker.js`). */
  workerUrl?: URL;
  /**
   * Images (or table rows) no site holds: the global model is scored on them every `every` rounds (0: the
   * final model only). Rows are encoded with the encoding the run fixed, as its export records it.
   */
  heldOut?: { test: ImageDataset | RawTable; every: number };
  /** Clients' backbone and feature cache (default: a temporary folder, removed after the run). */
  cacheDir?: string;
  /** The first `attackers` sites rewrite every update with `attack` (in this thread only: a function cannot reach a worker). */
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

function point(r: RoundRecord, heldOut: number | undefined, sites: readonly SiteEvaluation[]): RoundPoint {
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
    ...(r.epsilon !== undefined ? { epsilon: r.epsilon } : {}),
    ...(sites.length > 0
      ? { perClient: sites.map((e) => ({ client: e.client, samples: e.numExamples, valAccuracy: e.accuracy, valLoss: e.loss })) }
      : {}),
  };
}

/** Accuracy of an exported model on held-out images, or on held-out table rows (encoded as its export says). */
function scoreHeldOut(modelDir: string, test: ImageDataset | RawTable): Promise<number> {
  return 'header' in test ? heldOutTableAccuracy(modelDir, test) : heldOutAccuracy(modelDir, test);
}

/** The first failure among the sites' ends; never settles while none fails. */
function firstFailure(ends: readonly Promise<Error | undefined>[]): Promise<never> {
  return new Promise((_, reject) => {
    for (const end of ends) void end.then((err) => err && reject(err));
  });
}

/**
 * The built worker entry beside this module; from the TypeScript sources (as the tests run them), the one
 * the build wrote, since a worker thread loads JavaScript only.
 */
const SITE_WORKER = import.meta.url.endsWith('.ts')
  ? new URL('../../dist/sim/site-worker.js', import.meta.url)
  : new URL('./site-worker.js', import.meta.url);

/** Checks what cannot run before anything starts: worker threads build their sites from specs, and run no attacks. */
function checkSites(spec: FederationSpec, workers: number): void {
  if (workers <= 0) return;
  if (spec.transport === 'inproc') {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      'the inproc transport keeps every site in this thread; set workers to 0, or use the socket transport',
    );
  }
  if (!spec.sites.every(isSiteSpec)) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      'site workers build their sites themselves: give the sites as site specs, or set workers to 0 to train built shards in this thread',
    );
  }
  if ((spec.attackers ?? 0) > 0) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      'attacks run in this thread only (a function cannot reach a worker); set workers to 0 to simulate attackers',
    );
  }
}

/** The sites to run in this thread, built from their specs when given so. */
function threadSites(spec: FederationSpec, log: Logger): ThreadSite[] {
  return spec.sites.map((site, index) => {
    if (isTableSite(site)) return { index, table: site };
    let shard: LocalShard;
    try {
      shard = isSiteSpec(site) ? buildSite(site, taskDataset(site.dataset, site.classes), log) : site;
    } catch (err) {
      throw siteFailure(index, err); // the same message as a worker sends
    }
    const attack = index < (spec.attackers ?? 0) ? spec.attack : undefined;
    return { index, shard, ...(attack ? { transformUpdate: attack } : {}) };
  });
}

/**
 * Runs one federation to its end over loopback socket.io: the coordinator with `run`, one client per
 * site, and the held-out score of the global model as the rounds go. The sites' clients take turns at
 * this thread's compute (so it still answers pings), or with `workers`, at the compute of worker threads
 * that each build their own sites. A site that fails ends the run at once with its error (naming the
 * site); no client or worker is left running, whichever way the run ends.
 *
 * @example
 * const r = await runFederation({ run: parseRunConfig({ rounds: 3 }), backboneDir, sites });
 * const w = await runFederation({ run, backboneDir, sites: [{ dataset: 'mnist', partition: { kind: 'iid' }, clients: 2, seed: 1, indices: [0] }, …], workers: 2 });
 */
export async function runFederation(spec: FederationSpec): Promise<FederationResult> {
  const workers = spec.workers ?? 0;
  checkSites(spec, workers);
  await initBackend();
  const t0 = performance.now();
  const log = spec.log ?? createLogger('simulation', { level: 'warn' });
  // Built before the coordinator starts, as a site that cannot be built fails the run before it begins.
  const here = workers > 0 ? [] : threadSites(spec, log);
  const dir = await mkdtemp(join(tmpdir(), 'ftl-sim-'));
  const exportDir = join(dir, 'model');
  const server: ServerSettings = { host: '127.0.0.1', port: 0, backboneDir: spec.backboneDir, exportDir, requireAuth: false };
  // A simulation's sites may train slowly on a shared thread: generous waits, never the operator's defaults.
  const run = { ...spec.run, minClients: spec.sites.length, waitTimeoutSeconds: 600, roundDeadlineSeconds: 1800 };
  let coordinator: Coordinator | undefined;
  let sites: SiteHost | undefined;
  let failed = true;
  const rounds: RoundPoint[] = [];
  const every = spec.heldOut?.every ?? 0;
  const scoreDir = join(dir, 'round-model');
  try {
    const hub = spec.transport === 'inproc' ? createInprocHub() : undefined;
    coordinator = await Coordinator.create(applyRunConfig(server, run), log, undefined, hub ? { transport: hub } : {});
    const { url } = await coordinator.listen();
    const connection = { serverUrl: url, cacheDir: spec.cacheDir ?? join(dir, 'cache'), ledgerDir: join(dir, 'privacy'), log };
    sites =
      workers > 0
        ? hostSitesInWorkers(spec.sites as readonly SiteSpec[], {
            ...connection,
            workers,
            workerUrl: spec.workerUrl ?? SITE_WORKER,
          })
        : hostSitesInThread(here, { ...connection, ...(hub ? { connect: hub.connect } : {}) });
    const done = coordinator.run(async (record, model) => {
      let heldOut: number | undefined;
      if (spec.heldOut && every > 0 && record.round % every === 0 && record.status === 'aggregated' && run.localLayers.length === 0) {
        await model.exportTo(scoreDir);
        heldOut = await scoreHeldOut(scoreDir, spec.heldOut.test);
      }
      const p = point(record, heldOut, model.sites);
      // A round played again after missing its quorum replaces its earlier attempt.
      const earlier = rounds.findIndex((x) => x.round === p.round);
      if (earlier >= 0) rounds[earlier] = p;
      else rounds.push(p);
      spec.onRound?.(p);
    });
    // A site that fails will not come back: the run stops now rather than waiting out its deadlines.
    const summary = await Promise.race([done, firstFailure(sites.ends)]);
    const error = (await Promise.all(sites.ends)).find((e) => e !== undefined);
    if (error !== undefined) throw error;
    const heldOut = spec.heldOut && run.localLayers.length === 0 ? await scoreHeldOut(exportDir, spec.heldOut.test) : NaN;
    failed = false;
    return { summary, rounds, heldOut, seconds: (performance.now() - t0) / 1000, featureDim: coordinator.head.featureDim };
  } finally {
    await sites?.close(failed);
    await coordinator?.close();
    await rm(dir, { recursive: true, force: true });
  }
}
