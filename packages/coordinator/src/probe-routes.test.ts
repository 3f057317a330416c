import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createLogger, initBackend, type Logger } from '@ftl/shared';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { defaultCoordinatorConfig, type CoordinatorConfig } from './config.js';
import { Coordinator } from './coordinator.js';
import { recordRoundPrivacy } from './round-privacy.js';
import { CoordinatorServer } from './coordinator-server.js';
import type { ServerOptions } from './server-options.js';
import { Store } from './store/store.js';

const TOKEN = 'operator-token-for-the-probes-0123456789';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const clean of cleanups.splice(0).reverse()) await clean();
});
beforeAll(async () => {
  await initBackend();
});

/** A log that keeps its lines, at `level`. */
function memoryLog(level: 'debug' | 'info'): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger('test', { level, write: (line) => lines.push(line) }), lines };
}

/** A scratch folder and a store in it, both removed after the test. */
async function scratchStore(): Promise<{ store: Store; db: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'ftl-probes-'));
  const db = join(dir, 'coordinator.db');
  const store = Store.open(db);
  cleanups.push(
    () => rm(dir, { recursive: true, force: true }),
    () => store.close(),
  );
  return { store, db };
}

/** A real server (serve mode when `options.operatorToken` is given) on a free loopback port. */
async function serving(o: { options?: ServerOptions; log?: Logger; config?: Partial<CoordinatorConfig> } = {}) {
  const { store, db } = await scratchStore();
  const config = { ...defaultCoordinatorConfig(), port: 0, exportDir: undefined, ...o.config };
  const server = await CoordinatorServer.create(config, o.log ?? createLogger('test', { level: 'silent' }), store, o.options);
  const { url, metricsUrl } = await server.listen();
  cleanups.push(() => server.close());
  return { server, store, db, url, metricsUrl };
}

async function get(url: string, token?: string): Promise<{ status: number; type: string | null; text: string }> {
  const res = await fetch(url, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

describe('health and readiness', () => {
  test('/healthz and /readyz answer without a token in the server mode, and /readyz names the database when it takes no write', async () => {
    const { url, db, store } = await serving({ options: { operatorToken: TOKEN } });
    const health = await get(`${url}/healthz`);
    expect([health.status, JSON.parse(health.text)]).toEqual([200, { status: 'ok' }]);

    const ready = await get(`${url}/readyz`);
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.text)).toMatchObject({
      status: 'ready',
      failing: [],
      checks: {
        database: { ok: true, message: 'writable' },
        backbone: { ok: true, message: expect.stringMatching(/^loaded \(sha256 [0-9a-f]{12}…/) },
      },
      clients: { connected: 0, ready: 0 },
    });

    // Another program holds the database's write lock: the probe's write fails within its short wait.
    const locker = new Database(db);
    try {
      locker.exec('BEGIN EXCLUSIVE');
      const locked = await get(`${url}/readyz`);
      expect(locked.status).toBe(503);
      expect(JSON.parse(locked.text)).toMatchObject({
        status: 'unavailable',
        failing: ['database'],
        checks: { database: { ok: false, message: expect.stringContaining('database is locked') }, backbone: { ok: true } },
      });
      expect(locked.text).not.toContain(db); // the probe needs no token: the file's path stays in the log
      locker.exec('COMMIT');
    } finally {
      locker.close();
    }
    expect((await get(`${url}/readyz`)).status).toBe(200);

    store.close();
    const closed = await get(`${url}/readyz`);
    expect(closed.status).toBe(503);
    expect(JSON.parse(closed.text)).toMatchObject({ failing: ['database'], checks: { database: { message: expect.stringContaining('not open') } } });
    expect((await get(`${url}/healthz`)).status).toBe(200); // the process still answers
  });

  test('the one-run mode answers /healthz and /readyz too, and /readyz counts the connected sites', async () => {
    const { store } = await scratchStore();
    const config = { ...defaultCoordinatorConfig(), port: 0, exportDir: undefined, runId: 'one-run', minClients: 1 };
    const coordinator = await Coordinator.create(config, createLogger('test', { level: 'silent' }), store);
    const { url } = await coordinator.listen();
    cleanups.push(() => coordinator.close());
    expect(JSON.parse((await get(`${url}/healthz`)).text)).toEqual({ status: 'ok' });
    const ready = await get(`${url}/readyz`);
    expect([ready.status, JSON.parse(ready.text).clients]).toEqual([200, { connected: 0, ready: 0 }]);
    expect((await fetch(`${url}/readyz`, { method: 'POST' })).status).toBe(405);
  });
});

describe('metrics', () => {
  test('/metrics on the main port needs the operator token, and speaks the Prometheus text format', async () => {
    const { url } = await serving({ options: { operatorToken: TOKEN } });
    expect((await get(`${url}/metrics`)).status).toBe(401);
    expect((await get(`${url}/metrics`, 'wrong-token')).status).toBe(401);
    const scraped = await get(`${url}/metrics`, TOKEN);
    expect(scraped.status).toBe(200);
    expect(scraped.type).toMatch(/^text\/plain; version=0\.0\.4/);
    for (const name of [
      'ftl_clients_connected',
      'ftl_clients_ready',
      'ftl_channel_bytes_total',
      'ftl_rounds_completed_total',
      'ftl_round_duration_seconds',
    ]) {
      expect(scraped.text).toContain(`# TYPE ${name} `);
    }
    expect(scraped.text).toMatch(/^ftl_clients_connected 0$/m);
    expect(scraped.text).toMatch(/^process_cpu_user_seconds_total /m); // the default process metrics
  });

  test('each server counts on a registry of its own, so two in one process do not collide', async () => {
    const a = await serving({ options: { operatorToken: TOKEN } });
    const b = await serving({ options: { operatorToken: TOKEN } });
    a.server.metrics.updateAnswered('r1', { accepted: true });
    const [ta, tb] = [(await get(`${a.url}/metrics`, TOKEN)).text, (await get(`${b.url}/metrics`, TOKEN)).text];
    expect(ta).toMatch(/^ftl_updates_accepted_total\{run="r1"\} 1$/m);
    expect(tb).not.toMatch(/^ftl_updates_accepted_total\{run="r1"\}/m);
  });

  test("a run with record-level DP shows each site's ε from its latest round-privacy event", async () => {
    const { server, store, url } = await serving({ options: { operatorToken: TOKEN } });
    const privacy = { mode: 'record', noiseMultiplier: 1.1, clipNorm: 1 };
    server.createRun({ runId: 'dp', rounds: 2, minClients: 1, waitTimeoutSeconds: 60, hidden: [], privacy });
    server.startRun('dp'); // waits for a site; the round's privacy is recorded as a played round records it
    const site = (client: string, epsilon: number) => ({ client, epsilon, delta: 1e-5 });
    const log = createLogger('test', { level: 'silent' });
    recordRoundPrivacy('dp', { round: 1, sites: [site('a', 0.5), site('b', 0.7)], refused: [] }, store, log);
    recordRoundPrivacy('dp', { round: 2, sites: [site('a', 0.9)], refused: [] }, store, log);
    const text = (await get(`${url}/metrics`, TOKEN)).text;
    expect(text).toMatch(/^ftl_privacy_epsilon\{run="dp",site="a"\} 0\.9$/m);
    expect(text).not.toMatch(/^ftl_privacy_epsilon\{run="dp",site="b"\}/m);
    server.stopRun('dp');
  });

  test('--metrics-port serves them without a token on loopback; the one-run mode has them only there', async () => {
    const { store } = await scratchStore();
    const config = { ...defaultCoordinatorConfig(), port: 0, exportDir: undefined, runId: 'one-run', metricsPort: 0 };
    const coordinator = await Coordinator.create(config, createLogger('test', { level: 'silent' }), store);
    const { url, metricsUrl } = await coordinator.listen();
    cleanups.push(() => coordinator.close());
    expect(metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const open = await get(`${metricsUrl}/metrics`);
    expect([open.status, open.text]).toEqual([200, expect.stringContaining('# TYPE ftl_clients_connected gauge')]);
    expect(JSON.parse((await get(`${metricsUrl}/readyz`)).text)).toMatchObject({ status: 'ready' });
    expect((await get(`${metricsUrl}/api/runs`)).status).toBe(404);
    // No operator token in this mode: the main port says where the metrics are instead.
    const main = await get(`${url}/metrics`);
    expect([main.status, main.text]).toEqual([404, expect.stringContaining('--metrics-port')]);
  });
});

describe('request logs', () => {
  test('API requests log at debug: an info-level log has no api line for a GET, a debug-level one has', async () => {
    for (const level of ['info', 'debug'] as const) {
      const { log, lines } = memoryLog(level);
      const { url } = await serving({ options: { operatorToken: TOKEN }, log });
      expect((await get(`${url}/api/runs`, TOKEN)).status).toBe(200);
      const apiLines = lines.filter((l) => / api method=GET path=\/api\/runs status=200/.test(l));
      expect(apiLines).toHaveLength(level === 'debug' ? 1 : 0);
      expect(lines.some((l) => l.includes(' info listening '))).toBe(true); // the log itself works at info
    }
  });
});
