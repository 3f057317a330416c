import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FtlClient } from '@ftl/client';
import {
  Coordinator,
  defaultCoordinatorConfig,
  SMALL_BACKBONE_DIR,
  type CoordinatorConfig,
  type RoundRecord,
  type RunSummary,
  type Store,
} from '@ftl/coordinator';
import {
  createLogger,
  initBackend,
  loadBuiltinDataset,
  loadClientShard,
  tensorsByName,
  type ImageDataset,
  type Logger,
  type ChannelConnector,
  type PartitionSpec,
  type RunEnd,
  type Weights,
} from '@ftl/shared';

let mnist: ImageDataset | undefined;

/** A scratch folder under the OS temp dir. */
export function scratch(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `ftl-${prefix}-`));
}

/** How a run ended, and every round's record. */
export interface RunOutcome {
  summary: RunSummary;
  rows: RoundRecord[];
}

/** The values of one tensor of a flat weight vector. */
export function tensorValues(w: Weights, name: string): Float32Array {
  const values = tensorsByName(w).get(name);
  if (!values) throw new Error(`no tensor ${name}`);
  return values;
}

/** Where a test coordinator keeps its state and writes its log: by default in memory and to the `coordinator` logger. */
export interface CoordinatorHome {
  store?: Store;
  log?: Logger;
}

/**
 * The setting test federations run on unless a test says otherwise: the small backbone (`small-fmnist`,
 * two convolutions, quick to extract) under a 128-unit head from a seeded random start, so a run's rounds
 * are its only phases. The defaults themselves (`encoder-spatial-fmnist`, a linear head set by the
 * discriminant) have tests of their own.
 */
export const TEST_RUN: Pick<CoordinatorConfig, 'backboneDir' | 'hidden' | 'headInit'> = {
  backboneDir: SMALL_BACKBONE_DIR,
  hidden: [128],
  headInit: 'random',
};

/**
 * A real coordinator, not yet listening: the run config's defaults with {@link TEST_RUN} on a free
 * loopback port, exporting nothing, with `over` on top.
 */
export function createCoordinator(over: Partial<CoordinatorConfig>, home: CoordinatorHome = {}): Promise<Coordinator> {
  const config: CoordinatorConfig = { ...defaultCoordinatorConfig(), ...structuredClone(TEST_RUN), port: 0, exportDir: undefined, ...over };
  return Coordinator.create(config, home.log ?? createLogger('coordinator'), home.store);
}

/** Starts a real coordinator on a free loopback port with test-sized defaults. */
export async function startCoordinator(
  over: Partial<CoordinatorConfig>,
  home: CoordinatorHome = {},
): Promise<{ coordinator: Coordinator; url: string }> {
  await initBackend();
  const coordinator = await createCoordinator(
    { runId: 'test-run', minClients: 3, waitTimeoutMs: 60_000, roundDeadlineMs: 60_000, rounds: 2, ...over },
    home,
  );
  const { url } = await coordinator.listen();
  return { coordinator, url };
}

/**
 * A real client on a slice of MNIST (the pool cut to `limit` samples, partitioned among `clients` with
 * `seed`, default 5), named `client-<index>` unless `name` says otherwise.
 */
export async function makeClient(o: {
  url: string;
  index: number;
  clients: number;
  limit: number;
  cacheDir: string;
  partition?: PartitionSpec;
  seed?: number;
  name?: string;
  token?: string;
  stay?: boolean;
  log?: Logger;
  progressEveryMs?: number;
  /** The site's own ε budget (`--dp-budget`). */
  dpBudget?: number;
  /** Repeatable DP noise (the research hook; secret randomness without it). */
  dpSeed?: number;
  /** The site's audit log (default in its cache folder), or false for none. */
  auditLog?: string | false;
  /** How the client opens its channel (default socket.io). */
  connect?: ChannelConnector;
  /** Sees (and may rewrite) the trained weights before they leave: the research hook of ClientOptions. */
  transformUpdate?: (trained: Weights, global: Weights) => Weights;
  /** False: the site declines to send its class statistics (`--no-class-sums`). */
  classSums?: boolean;
}): Promise<FtlClient> {
  await initBackend();
  mnist ??= loadBuiltinDataset('mnist');
  const shard = loadClientShard(
    { dataset: 'mnist', partition: o.partition ?? { kind: 'iid' }, clients: o.clients, index: o.index, seed: o.seed ?? 5, limit: o.limit },
    undefined,
    mnist,
  );
  return new FtlClient({
    serverUrl: o.url,
    name: o.name ?? `client-${o.index}`,
    shard,
    cacheDir: o.cacheDir,
    log: (o.log ?? createLogger('client')).child({ client: o.index }),
    ...(o.token !== undefined ? { token: o.token } : {}),
    ...(o.stay !== undefined ? { stay: o.stay } : {}),
    ...(o.progressEveryMs !== undefined ? { progressEveryMs: o.progressEveryMs } : {}),
    ...(o.dpBudget !== undefined ? { dpBudget: o.dpBudget } : {}),
    ...(o.dpSeed !== undefined ? { dpSeed: o.dpSeed } : {}),
    ...(o.auditLog !== undefined ? { auditLog: o.auditLog } : {}),
    ...(o.connect ? { connect: o.connect } : {}),
    ...(o.transformUpdate ? { transformUpdate: o.transformUpdate } : {}),
    ...(o.classSums !== undefined ? { classSums: o.classSums } : {}),
  });
}

/**
 * Runs a real coordinator (createCoordinator's defaults, waiting for every site, with `over` on top) and
 * `sites` real clients on MNIST (the pool cut to `limit` samples) to the run's end; client `index` caches
 * its features in `cacheDir(index)`.
 */
export async function federateToEnd(
  over: Partial<CoordinatorConfig>,
  o: CoordinatorHome & { sites: number; limit: number; cacheDir: (index: number) => string },
): Promise<RunOutcome> {
  await initBackend();
  const coordinator = await createCoordinator({ minClients: o.sites, ...over }, o);
  const { url } = await coordinator.listen();
  const clients = await Promise.all(
    Array.from({ length: o.sites }, (_, index) => makeClient({ url, index, clients: o.sites, limit: o.limit, cacheDir: o.cacheDir(index) })),
  );
  return runToEnd(coordinator, clients);
}

/**
 * Runs `clients` against `coordinator` until the run ends, closes the coordinator (also on failure) and
 * returns the summary, every round's record and the run-end each client heard.
 */
export async function runToEnd(coordinator: Coordinator, clients: readonly FtlClient[]): Promise<RunOutcome & { ends: RunEnd[] }> {
  const ends = clients.map((c) => c.run());
  const rows: RoundRecord[] = [];
  try {
    const summary = await coordinator.run((r) => rows.push(r));
    return { summary, rows, ends: await Promise.all(ends) };
  } finally {
    await coordinator.close();
  }
}
