import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ApiClient, CoordinatorServer, defaultCoordinatorConfig, Store, type RunView, type SiteState } from '@ftl/coordinator';
import { createLogger, initBackend } from '@ftl/shared';
import { describe, expect, test } from 'vitest';
import { HostileClient } from './hostile-client.js';
import { makeClient, scratch } from './test-federation.js';

const TOKEN = 'operator-secret-for-the-metrics-0123456789';

async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 120_000): Promise<T> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(v).slice(0, 800)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The value of one series (`name{labels}` exactly as the text format writes it), or undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('Prometheus metrics of a real run', () => {
  test("count the run's rounds, accepted and refused updates and channel bytes as its own record in the store does", async () => {
    await initBackend();
    const dir = await scratch('metrics');
    const store = Store.open(join(dir, 'coordinator.db'));
    const server = await CoordinatorServer.create(
      { ...defaultCoordinatorConfig(), port: 0, requireAuth: false, exportDir: undefined },
      createLogger('test', { level: 'silent' }),
      store,
      { operatorToken: TOKEN, exportRoot: join(dir, 'runs') },
    );
    const { url } = await server.listen();
    const api = new ApiClient({ url, token: TOKEN });
    const scrape = async () => {
      const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(res.status).toBe(200);
      return res.text();
    };
    try {
      await api.call('POST', '/api/runs', {
        runId: 'm1',
        rounds: 2,
        minClients: 3,
        fractionFit: 1,
        fit: { epochs: 1, batchSize: 32, learningRate: 0.002 },
        roundDeadlineSeconds: 60,
        waitTimeoutSeconds: 120,
      });
      await api.call('POST', '/api/runs/m1/start');
      const log = createLogger('client', { level: 'silent' });
      const honest = await Promise.all(
        [0, 1].map((index) => makeClient({ url, index, clients: 2, limit: 600, cacheDir: join(dir, `cache-${index}`), log, auditLog: false })),
      );
      // A third site whose every update holds NaN: refused (non-finite) in each round, as the hardening tests do.
      const nan = new HostileClient({
        serverUrl: url,
        name: 'nan-site',
        declare: { numTrain: 300, numVal: 100 },
        fit: ({ global }) => ({
          weights: { specs: global.specs, values: new Float32Array(global.values.length).fill(Number.NaN) },
          numExamples: 300,
        }),
        failAfterRefusal: true,
      });
      const ends = Promise.allSettled(honest.map((c) => c.run()));
      await nan.connect();

      // While it runs: three sites connected and ready.
      const during = await until('three ready sites in the metrics', scrape, (t) => sample(t, 'ftl_clients_ready') === 3);
      expect(sample(during, 'ftl_clients_connected')).toBe(3);

      const done = await until(
        'm1 completed',
        () => api.call<RunView>('GET', '/api/runs/m1'),
        (r) => r.status === 'completed',
      );
      const text = await scrape();
      const rounds = store.listRounds('m1');
      const records = rounds.map((r) => r.record);
      expect(records.map((r) => r.status)).toEqual(['aggregated', 'aggregated']);

      expect(sample(text, 'ftl_rounds_completed_total{run="m1"}')).toBe(records.filter((r) => r.status !== 'no-quorum').length);
      const accepted = records.reduce((n, r) => n + r.accepted + (r.excluded ?? 0), 0);
      expect(accepted).toBe(4);
      expect(sample(text, 'ftl_updates_accepted_total{run="m1"}')).toBe(accepted);
      const refused = rounds.flatMap((r) => r.rejected);
      expect(refused.map((r) => [r.clientId, r.reason])).toEqual([
        ['nan-site', 'non-finite'],
        ['nan-site', 'non-finite'],
      ]);
      expect(sample(text, 'ftl_updates_rejected_total{run="m1",reason="non-finite"}')).toBe(records.reduce((n, r) => n + r.rejected, 0));
      expect(nan.acks.filter((a) => a.event === 'fit-result').map((a) => (a.ack as { reason?: string }).reason)).toEqual([
        'non-finite',
        'non-finite',
      ]);

      // Every round's traffic is a part of the channel's totals (which also hold the welcomes, readies and run-end).
      const [bytesIn, bytesOut] = [
        sample(text, 'ftl_channel_bytes_total{direction="in"}')!,
        sample(text, 'ftl_channel_bytes_total{direction="out"}')!,
      ];
      const roundIn = records.reduce((n, r) => n + r.bytesIn, 0);
      const roundOut = records.reduce((n, r) => n + r.bytesOut, 0);
      expect(roundIn).toBeGreaterThan(0);
      expect(roundOut).toBeGreaterThan(0);
      expect(bytesIn).toBeGreaterThanOrEqual(roundIn);
      expect(bytesOut).toBeGreaterThanOrEqual(roundOut);
      expect([bytesIn, bytesOut]).toEqual([server.bytes.received, server.bytes.sent]);

      expect(sample(text, 'ftl_round_duration_seconds_count')).toBe(records.length);
      expect(sample(text, 'ftl_round_duration_seconds_sum')).toBeCloseTo(
        records.reduce((n, r) => n + r.seconds, 0),
        6,
      );
      expect(sample(text, 'ftl_aggregation_seconds_count')).toBe(records.filter((r) => r.status === 'aggregated').length);
      expect(sample(text, 'ftl_privacy_epsilon')).toBeUndefined(); // no DP in this run

      // Every site the run saw has its last state in the run.
      expect(done.sites.map((s: SiteState) => s.client)).toEqual(['client-0', 'client-1', 'nan-site']);
      await ends;
      await nan.ended;
    } finally {
      await server.close();
      store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
