import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FtlClient } from '@ftl/client';
import { Coordinator, defaultCoordinatorConfig, type CoordinatorConfig, type RoundRecord, type RunSummary } from '@ftl/coordinator';
import { createLogger, initBackend, loadBuiltinDataset, loadClientShard, type ImageDataset, type Logger, type PartitionSpec } from '@ftl/shared';

let mnist: ImageDataset | undefined;

/** A scratch folder under the OS temp dir. */
export function scratch(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `ftl-${prefix}-`));
}

/** Starts a real coordinator on a free loopback port with test-sized defaults. */
export async function startCoordinator(over: Partial<CoordinatorConfig>): Promise<{ coordinator: Coordinator; url: string }> {
  await initBackend();
  const config: CoordinatorConfig = {
    ...defaultCoordinatorConfig(),
    port: 0,
    runId: 'test-run',
    minClients: 3,
    waitTimeoutMs: 60_000,
    roundDeadlineMs: 60_000,
    rounds: 2,
    exportDir: undefined,
    ...over,
  };
  const coordinator = await Coordinator.create(config, createLogger('coordinator'));
  const { url } = await coordinator.listen();
  return { coordinator, url };
}

/** A real client on a slice of MNIST (the pool cut to `limit` samples, partitioned among `clients`). */
export async function makeClient(o: {
  url: string;
  index: number;
  clients: number;
  limit: number;
  cacheDir: string;
  partition?: PartitionSpec;
  log?: Logger;
  progressEveryMs?: number;
}): Promise<FtlClient> {
  await initBackend();
  mnist ??= loadBuiltinDataset('mnist');
  const shard = loadClientShard(
    { dataset: 'mnist', partition: o.partition ?? { kind: 'iid' }, clients: o.clients, index: o.index, seed: 5, limit: o.limit },
    undefined,
    mnist,
  );
  return new FtlClient({
    serverUrl: o.url,
    name: `client-${o.index}`,
    shard,
    cacheDir: o.cacheDir,
    log: (o.log ?? createLogger('client')).child({ client: o.index }),
    ...(o.progressEveryMs !== undefined ? { progressEveryMs: o.progressEveryMs } : {}),
  });
}

/**
 * Runs `clients` against `coordinator` until the run ends, closes the coordinator (also on failure) and
 * returns the summary and every round's record.
 */
export async function runToEnd(coordinator: Coordinator, clients: readonly FtlClient[]): Promise<{ summary: RunSummary; rows: RoundRecord[] }> {
  const ends = clients.map((c) => c.run());
  const rows: RoundRecord[] = [];
  try {
    const summary = await coordinator.run((r) => rows.push(r));
    await Promise.all(ends);
    return { summary, rows };
  } finally {
    await coordinator.close();
  }
}
