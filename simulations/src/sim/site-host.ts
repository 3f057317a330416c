import { Worker } from 'node:worker_threads';
import { z } from 'zod';
import { ComputeTurns, FtlClient } from '@ftl/client';
import { ErrorCode, FtlError, isFtlError, type ChannelConnector, type LocalShard, type Logger, type RawTable, type Weights } from '@ftl/shared';
import { siteSpecMessage, type SiteSpec } from './site-spec.js';

/** Where a federation's sites run, and how each one ended. */
export interface SiteHost {
  /** One per site, in the order given: settles when the site's client has ended, with undefined or why it failed. */
  readonly ends: readonly Promise<Error | undefined>[];
  /** Stops what still runs: at once when `abort`, else after giving the sites a moment to leave by themselves. */
  close(abort: boolean): Promise<void>;
}

/** A table site of a simulation: its CSV as read, and the seed of its training/validation split. */
export interface TableSite {
  table: RawTable;
  seed: number;
}

/** True when `site` is a {@link TableSite}. */
export function isTableSite(site: unknown): site is TableSite {
  return typeof site === 'object' && site !== null && 'table' in site;
}

/** A site to run in this thread: its place in the federation (it names the site) and its data (images, or a table). */
export interface ThreadSite {
  index: number;
  shard?: LocalShard;
  table?: TableSite;
  /** Rewrites every trained update before it is sent: a hostile site. */
  transformUpdate?: (trained: Weights, global: Weights) => Weights;
}

/** Where the sites' clients connect, and where they cache the backbone and their features. */
export interface SiteConnection {
  serverUrl: string;
  cacheDir: string;
  /** The sites' privacy ledgers: one folder per run, so no experiment spends another's ε. */
  ledgerDir: string;
}

/** How sites in this thread reach the coordinator: over loopback socket.io (the default), or an in-memory hub. */
export interface ThreadConnection extends SiteConnection {
  connect?: ChannelConnector;
}

/** The client name of site `index`. */
export function siteName(index: number): string {
  return `site-${index}`;
}

/** What site `index` failed with, its message naming the site and its code kept. */
export function siteFailure(index: number, err: unknown): FtlError {
  const message = err instanceof Error ? err.message : String(err);
  return new FtlError(isFtlError(err) ? err.code : ErrorCode.InternalError, `${siteName(index)}: ${message}`, { cause: err });
}

/**
 * Runs the sites' clients in this thread, taking turns at its compute so it still answers pings between
 * batches. Every client's end is caught: a failure is a value in `ends`, never an unhandled rejection.
 */
export function hostSitesInThread(sites: readonly ThreadSite[], o: ThreadConnection & { log: Logger }): SiteHost {
  const turns = new ComputeTurns();
  const clients = sites.map(
    ({ index, shard, table, transformUpdate }) =>
      new FtlClient({
        serverUrl: o.serverUrl,
        name: siteName(index),
        ...(table ? { table: table.table, tableSplit: { seed: table.seed } } : { shard: shard! }),
        cacheDir: o.cacheDir,
        ledgerDir: o.ledgerDir,
        // A simulated site has no one to show its audit log to: no fsync per message in a study.
        auditLog: false,
        log: o.log.child({ client: index }),
        turns,
        ...(o.connect ? { connect: o.connect } : {}),
        ...(transformUpdate ? { transformUpdate } : {}),
      }),
  );
  const ends = clients.map((c, i) =>
    c.run().then(
      () => undefined,
      (err: unknown) => siteFailure(sites[i]!.index, err),
    ),
  );
  return {
    ends,
    close: async () => {
      for (const c of clients) c.close();
    },
  };
}

/** What a site worker is given: where to connect, and its sites by their place in the federation. */
export interface SiteWorkerData extends SiteConnection {
  /** Each spec in its message form (`siteSpecMessage`), checked by the worker site by site. */
  sites: { index: number; spec: unknown }[];
}

const SiteWorkerDataSchema = z.strictObject({
  serverUrl: z.string().min(1),
  cacheDir: z.string().min(1),
  ledgerDir: z.string().min(1),
  sites: z.array(z.strictObject({ index: z.number().int().min(0), spec: z.unknown() })),
});

/** Validates a site worker's `workerData`. @throws FtlError(INVALID_MESSAGE) */
export function parseSiteWorkerData(raw: unknown): SiteWorkerData {
  const r = SiteWorkerDataSchema.safeParse(raw);
  if (!r.success) throw new FtlError(ErrorCode.InvalidMessage, `invalid site worker data: ${r.error.message}`);
  return r.data;
}

/** What a site worker tells its host: one of its sites ended, with the error it failed with, if any. */
export interface SiteEndMessage {
  type: 'site-end';
  site: number;
  error?: { message: string; code: ErrorCode };
}

/** The message saying site `site` ended, with `err` if it failed. */
export function siteEndMessage(site: number, err: Error | undefined): SiteEndMessage {
  if (err === undefined) return { type: 'site-end', site };
  return { type: 'site-end', site, error: { message: err.message, code: isFtlError(err) ? err.code : ErrorCode.InternalError } };
}

const CODES = Object.values(ErrorCode) as [ErrorCode, ...ErrorCode[]];
const SiteEndMessageSchema = z.strictObject({
  type: z.literal('site-end'),
  site: z.number().int().min(0),
  error: z.strictObject({ message: z.string(), code: z.enum(CODES) }).optional(),
});

/** Validates a message from a site worker. @throws FtlError(INVALID_MESSAGE) */
export function parseSiteEndMessage(raw: unknown): SiteEndMessage {
  const r = SiteEndMessageSchema.safeParse(raw);
  if (!r.success) throw new FtlError(ErrorCode.InvalidMessage, `invalid message from a site worker: ${r.error.message}`);
  return r.data;
}

// How long workers whose sites have all ended get to close their connections before they are stopped.
const LEAVE_MS = 5000;

let running = 0;

/** Site worker threads started and not yet exited, in this thread: zero once every federation has closed. */
export function runningSiteWorkers(): number {
  return running;
}

/**
 * Runs the sites in `min(workers, sites)` worker threads started from `workerUrl` (the built
 * `site-worker.js`), site i in worker i mod that count. Each worker builds its own sites from their specs,
 * so this thread never holds their images, and runs their clients against `serverUrl`. A worker that
 * throws, cannot be started or stops early ends each of its unfinished sites with an error that says so.
 */
export function hostSitesInWorkers(specs: readonly SiteSpec[], o: SiteConnection & { workers: number; workerUrl: URL; log: Logger }): SiteHost {
  const settle: ((err: Error | undefined) => void)[] = [];
  const ends = specs.map((_, i) => new Promise<Error | undefined>((resolve) => (settle[i] = resolve)));
  const count = Math.min(o.workers, specs.length);
  const threads: { worker: Worker; exited: Promise<void> }[] = [];
  for (let w = 0; w < count; w++) {
    const sites = specs.flatMap((spec, index) => (index % count === w ? [{ index, spec: siteSpecMessage(spec) }] : []));
    const open = new Set(sites.map((s) => s.index));
    const end = (index: number, err: Error | undefined) => {
      if (open.delete(index)) settle[index]!(err);
    };
    // The first cause is the one kept: an error event is followed by an exit, which must not replace it.
    const failAll = (why: string, cause?: unknown) => {
      if (open.size === 0) return;
      const err = new FtlError(ErrorCode.InternalError, `site worker ${w} (${[...open].map(siteName).join(', ')}) ${why}`, { cause });
      for (const index of [...open]) end(index, err);
    };
    const data: SiteWorkerData = { serverUrl: o.serverUrl, cacheDir: o.cacheDir, ledgerDir: o.ledgerDir, sites };
    let worker: Worker;
    try {
      worker = new Worker(o.workerUrl, { workerData: data });
    } catch (err) {
      failAll(`could not start from ${o.workerUrl.href}: ${(err as Error).message}`, err);
      continue;
    }
    running++;
    const exited = new Promise<void>((resolve) =>
      worker.once('exit', (code) => {
        running--;
        failAll(`stopped (exit code ${code}) before its sites ended`);
        resolve();
      }),
    );
    worker.on('message', (raw: unknown) => {
      try {
        const m = parseSiteEndMessage(raw);
        end(m.site, m.error ? new FtlError(m.error.code, m.error.message) : undefined);
      } catch (err) {
        failAll((err as Error).message, err);
      }
    });
    worker.on('error', (err) => failAll(`failed: ${err.message}`, err));
    worker.on('messageerror', (err) => failAll(`sent a message that could not be read: ${err.message}`, err));
    o.log.debug('site-worker-started', { worker: w, sites: sites.length });
    threads.push({ worker, exited });
  }
  return {
    ends,
    close: async (abort) => {
      await Promise.all(
        threads.map(async ({ worker, exited }) => {
          if (!abort) await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, LEAVE_MS).unref())]);
          await worker.terminate();
          await exited;
        }),
      );
    },
  };
}
