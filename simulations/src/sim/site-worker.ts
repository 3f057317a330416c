/**
 * A site worker thread's entry (started by `hostSitesInWorkers` from the built `site-worker.js`): builds
 * the sites it is given from their specs, loading the built-in dataset once, runs their clients against
 * the coordinator taking turns at this thread's compute, and tells its host as each one ends. A site that
 * cannot be built ends at once with its error; the others still run, so the host hears every site.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createLogger, initBackend, keepClasses, loadBuiltinDataset, type ImageDataset } from '@ftl/shared';
import { hostSitesInThread, parseSiteWorkerData, siteEndMessage, siteFailure, type ThreadSite } from './site-host.js';
import { buildSite, parseSiteSpecMessage, type SiteSpec } from './site-spec.js';

const data = parseSiteWorkerData(workerData);
const post = (site: number, err: Error | undefined) => parentPort?.postMessage(siteEndMessage(site, err));
// Quiet unless FTL_LOG asks: a hundred sites' routine lines would drown the study's progress.
const log = createLogger('simulation', process.env['FTL_LOG'] ? {} : { level: 'warn' });
await initBackend({ log });

// Each task once, however many sites hold parts of it: the sites' own images are copies of their parts.
const tasks = new Map<string, ImageDataset>();
function task(spec: SiteSpec): ImageDataset {
  const key = `${spec.dataset}:${spec.classes?.join(',') ?? 'all'}`;
  let ds = tasks.get(key);
  if (!ds) {
    const full = loadBuiltinDataset(spec.dataset, log);
    tasks.set(key, (ds = spec.classes ? keepClasses(full, spec.classes) : full));
  }
  return ds;
}

const sites: ThreadSite[] = [];
for (const { index, spec } of data.sites) {
  try {
    const parsed = parseSiteSpecMessage(spec);
    sites.push({ index, shard: buildSite(parsed, task(parsed), log) });
  } catch (err) {
    post(index, siteFailure(index, err));
  }
}
// The sites hold copies of their parts: the whole dataset need not outlive their building.
tasks.clear();
const host = hostSitesInThread(sites, { serverUrl: data.serverUrl, cacheDir: data.cacheDir, ledgerDir: data.ledgerDir, log });
await Promise.all(host.ends.map(async (end, i) => post(sites[i]!.index, await end)));
await host.close(false);
