import { spawn } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FtlClient } from '@ftl/client';
import { ApiClient, CoordinatorServer, defaultCoordinatorConfig, Store, type RunListItem, type RunView, type SiteState } from '@ftl/coordinator';
import { createLogger, initBackend, loadBuiltinDataset, loadClientShard } from '@ftl/shared';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { scratch } from './test-federation.js';

// The operator CLI as an operator runs it: the built program (`npm test` builds first), as a child process.
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'packages/coordinator/dist/cli.js');
const TOKEN = 'operator-secret-for-the-reasons-0123456789';

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, FTL_LOG: 'warn' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(v).slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let dir: string;
let store: Store;
let server: CoordinatorServer;
let url: string;
let api: ApiClient;
let tokenFile: string;

beforeAll(async () => {
  await initBackend();
  dir = await scratch('reasons');
  store = Store.open(join(dir, 'coordinator.db'));
  server = await CoordinatorServer.create(
    { ...defaultCoordinatorConfig(), port: 0, requireAuth: false, exportDir: undefined },
    createLogger('test', { level: 'silent' }),
    store,
    { operatorToken: TOKEN, exportRoot: join(dir, 'runs') },
  );
  ({ url } = await server.listen());
  api = new ApiClient({ url, token: TOKEN });
  tokenFile = join(dir, 'operator-token');
  await writeFile(tokenFile, TOKEN);
});
afterAll(async () => {
  await server?.close();
  store?.close();
  await rm(dir, { recursive: true, force: true });
});

const run = (id: string) => api.call<RunView>('GET', `/api/runs/${id}`);
const lonely = { rounds: 1, minClients: 1, waitTimeoutSeconds: 1 };
const WANT = /^only 0 of the 1 clients needed were ready after 1 s; start more clients or lower minClients$/;

describe('why a run failed, stopped or paused', () => {
  test('a run that fails for want of clients says why in the API, runs status and runs list', async () => {
    await api.call('POST', '/api/runs', { runId: 'lonely', ...lonely });
    await api.call('POST', '/api/runs/lonely/start');
    const failed = await until(
      'lonely failed',
      () => run('lonely'),
      (r) => r.status === 'failed',
    );
    expect(failed.reason).toEqual({ message: expect.stringMatching(WANT), phase: 'waiting-for-clients', round: 0, code: 'TIMEOUT' });
    expect(failed.sites).toEqual([]);
    const { runs } = await api.call<{ runs: RunListItem[] }>('GET', '/api/runs');
    expect(runs.find((r) => r.id === 'lonely')?.reason).toEqual(failed.reason);
    expect(store.listEvents('lonely').find((e) => e.type === 'run-failed')?.data).toMatchObject({ phase: 'waiting-for-clients', code: 'TIMEOUT' });

    const status = await cli(['runs', 'status', 'lonely', '--url', url, '--token-file', tokenFile]);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain('run lonely is failed after 0/1 rounds');
    expect(status.stdout).toContain(
      '\nwhy failed: only 0 of the 1 clients needed were ready after 1 s; start more clients or lower minClients (TIMEOUT; in phase waiting-for-clients, before round 1)\n',
    );
    const list = await cli(['runs', 'list', '--url', url, '--token-file', tokenFile]);
    expect(list.stdout).toMatch(/^lonely\tfailed\t0\/1\t\S+\tonly 0 of the 1 clients needed were ready after 1 s; .*\(TIMEOUT; /m);
  });

  test('runs start --watch exits non-zero when the run fails, with its reason in one line on stderr', async () => {
    await api.call('POST', '/api/runs', { runId: 'watched', ...lonely });
    const watched = await cli(['runs', 'start', 'watched', '--watch', '--interval', '0.2', '--url', url, '--token-file', tokenFile]);
    expect(watched.code).toBe(1);
    expect(watched.stderr.trimEnd().split('\n')).toEqual([
      'error [TIMEOUT]: run watched failed: only 0 of the 1 clients needed were ready after 1 s; start more clients or lower minClients (TIMEOUT; in phase waiting-for-clients, before round 1)',
    ]);
    expect(watched.stdout).toContain('run watched is failed after 0/1 rounds');
    // Watching it again afterwards says the same, and so does its status code.
    const again = await cli(['runs', 'status', 'watched', '--watch', '--url', url, '--token-file', tokenFile]);
    expect([again.code, again.stderr]).toEqual([1, expect.stringMatching(/^error \[TIMEOUT\]: run watched failed: only 0 of the 1/)]);
  });

  test('a site that cannot prepare sends its error before it leaves; the run shows it as the site reason, and a stop says who stopped it', async () => {
    await api.call('POST', '/api/runs', { runId: 'pinned', rounds: 1, minClients: 1, waitTimeoutSeconds: 120 });
    await api.call('POST', '/api/runs/pinned/start');
    const wrong = '0'.repeat(64);
    const site = new FtlClient({
      serverUrl: url,
      name: 'pinned-site',
      shard: loadClientShard(
        { dataset: 'mnist', partition: { kind: 'iid' }, clients: 1, index: 0, seed: 1, limit: 100 },
        undefined,
        loadBuiltinDataset('mnist'),
      ),
      cacheDir: join(dir, 'pinned-cache'),
      pinnedSha256: wrong,
      auditLog: false,
      log: createLogger('client', { level: 'silent' }),
    });
    await expect(site.run()).rejects.toMatchObject({ code: 'BACKBONE_DIGEST_MISMATCH' });
    const failed = await until(
      'the site failed and left',
      () => api.call<{ sites: SiteState[] }>('GET', '/api/runs/pinned/sites'),
      (r) => r.sites[0]?.message?.includes('then the connection closed') === true,
    );
    expect(failed.sites).toEqual([
      {
        client: 'pinned-site',
        state: 'failed',
        round: 0,
        message: expect.stringMatching(
          new RegExp(
            `^prepare: backbone digest mismatch: this client expects sha256 ${wrong} .*; then the connection closed \\(after recording its failure\\)$`,
          ),
        ),
        at: expect.any(String),
      },
    ]);
    expect((await run('pinned')).sites).toEqual(failed.sites);
    const status = await cli(['runs', 'status', 'pinned', '--url', url, '--token-file', tokenFile]);
    expect(status.stdout).toContain(`\nsites (1):\n  pinned-site: failed: prepare: backbone digest mismatch: this client expects sha256 ${wrong}`);

    await api.call('POST', '/api/runs/pinned/stop');
    const stopped = await until(
      'pinned stopped',
      () => run('pinned'),
      (r) => r.status === 'stopped',
    );
    expect(stopped.reason).toEqual({ message: 'stopped by the operator after round 0 of 1', phase: 'waiting-for-clients', round: 0 });
  });

  test('stopping a created run records that it never started', async () => {
    await api.call('POST', '/api/runs', { runId: 'never', ...lonely });
    await api.call('POST', '/api/runs/never/stop');
    expect((await run('never')).reason).toEqual({ message: 'stopped by the operator before it started', phase: 'idle', round: 0 });
  });
});
