import { join } from 'node:path';
import type { FtlClient } from '@ftl/client';
import { ApiClient, CoordinatorServer, defaultCoordinatorConfig, Store, type RunView } from '@ftl/coordinator';
import * as tf from '@tensorflow/tfjs';
import { createLogger, federationSplit, initBackend, loadBuiltinDataset, loadLayersModelFromFolder, type Logger } from '@ftl/shared';
import { readFile } from 'node:fs/promises';
import { describe, expect, test } from 'vitest';
import { makeClient, scratch } from './test-federation.js';

const OPERATOR_TOKEN = 'operator-secret-for-tests-0123456789';

async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 90_000): Promise<T> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(v).slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Sites `site-0` and `site-1` (with their registered tokens, when given) on 800 MNIST samples; they stay
 * connected between runs.
 */
function longLivedSites(url: string, o: { seed: number; cacheDir: string; log: Logger; tokens?: Map<string, string> }): Promise<FtlClient[]> {
  return Promise.all(
    [0, 1].map((index) =>
      makeClient({
        url,
        index,
        clients: 2,
        limit: 800,
        seed: o.seed,
        cacheDir: o.cacheDir,
        log: o.log,
        stay: true,
        name: `site-${index}`,
        token: o.tokens?.get(`site-${index}`),
      }),
    ),
  );
}

describe('operator REST API', () => {
  test('registers clients, creates, starts, pauses, resumes and exports runs one after another, with clear errors', async () => {
    await initBackend();
    const dir = await scratch('api');
    const log = createLogger('test', { level: 'silent' });
    const store = Store.open(join(dir, 'coordinator.db'));
    const server = await CoordinatorServer.create({ ...defaultCoordinatorConfig(), port: 0, requireAuth: true, exportDir: undefined }, log, store, {
      operatorToken: OPERATOR_TOKEN,
      exportRoot: join(dir, 'runs'),
    });
    const { url } = await server.listen();
    const api = new ApiClient({ url, token: OPERATOR_TOKEN });
    const run = (id: string) => api.call<RunView>('GET', `/api/runs/${id}`);

    // No token, a wrong token: 401 with a typed error body.
    const anonymous = await fetch(`${url}/api/runs`);
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toEqual({ error: { code: 'UNAUTHORIZED', message: expect.stringContaining('operator token') } });
    await expect(new ApiClient({ url, token: 'nope' }).call('GET', '/api/clients')).rejects.toMatchObject({ code: 'UNAUTHORIZED' });

    // Clients: the token is returned once; duplicates and bad names are refused.
    const tokens = new Map<string, string>();
    for (const name of ['site-0', 'site-1']) {
      const added = await api.call<{ name: string; token: string }>('POST', '/api/clients', { name });
      expect(added.token).toMatch(/^[0-9a-f]{64}$/);
      tokens.set(name, added.token);
    }
    expect(store.getClient('site-0')?.tokenHash).not.toContain(tokens.get('site-0'));
    await expect(api.call('POST', '/api/clients', { name: 'site-0' })).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(api.call('POST', '/api/clients', { name: 'bad name!' })).rejects.toMatchObject({
      code: 'INVALID_CONFIG',
      message: expect.stringMatching(/client name must be/),
    });
    // Names that are path components or object internals never register (the handshake refuses them too).
    for (const name of ['.', '..', '__proto__', 'constructor', 'prototype']) {
      await expect(api.call('POST', '/api/clients', { name })).rejects.toMatchObject({
        code: 'INVALID_CONFIG',
        message: expect.stringMatching(/client name must be/),
      });
    }
    expect(
      store
        .listClients()
        .map((c) => c.name)
        .sort(),
    ).toEqual(['site-0', 'site-1']);

    // Runs: invalid configs are refused with the field and the value; malformed JSON too.
    await expect(api.call('POST', '/api/runs', { rounds: -1 })).rejects.toMatchObject({
      code: 'INVALID_CONFIG',
      message: 'run config: rounds must be a positive integer (got -1)',
    });
    const malformed = await fetch(`${url}/api/runs`, { method: 'POST', headers: { authorization: `Bearer ${OPERATOR_TOKEN}` }, body: '{"rounds":' });
    expect(malformed.status).toBe(400);
    await expect(api.call('POST', '/api/runs/nope/start')).rejects.toMatchObject({ code: 'NOT_FOUND' });

    const small = { minClients: 2, fit: { epochs: 1, batchSize: 32, learningRate: 0.002 }, roundDeadlineSeconds: 60, waitTimeoutSeconds: 60 };
    const created = await api.call<RunView>('POST', '/api/runs', { runId: 'r1', rounds: 6, ...small });
    expect(created).toMatchObject({ id: 'r1', status: 'created', rounds: [] });
    await expect(api.call('POST', '/api/runs', { runId: 'r1' })).rejects.toMatchObject({ code: 'CONFLICT' });

    // Two long-lived sites (they stay connected between runs).
    const clients = await longLivedSites(url, { seed: 2, cacheDir: join(dir, 'cache'), log, tokens });
    const ends = clients.map((c) => c.run());
    for (const end of ends) end.catch(() => {}); // asserted below; a rejection before then is not unhandled

    await api.call('POST', '/api/runs/r1/start');
    await expect(api.call('POST', '/api/runs/r1/start')).rejects.toMatchObject({ code: 'CONFLICT' });
    await until(
      'round 1 of r1',
      () => run('r1'),
      (r) => r.rounds.length >= 1,
    );
    const pausing = await api.call<RunView>('POST', '/api/runs/r1/pause');
    expect(pausing.status).toBe('running'); // pauses after the current round
    const paused = await until(
      'r1 paused',
      () => run('r1'),
      (r) => r.status === 'paused',
    );
    expect(paused.rounds.length).toBeLessThan(6);
    expect(paused.live).toBeUndefined();

    const resumed = await api.call<RunView>('POST', '/api/runs/r1/resume');
    expect(resumed.status).toBe('running');
    const done = await until(
      'r1 completed',
      () => run('r1'),
      (r) => r.status === 'completed',
    );
    expect(done.rounds.map((r) => r.round)).toEqual([1, 2, 3, 4, 5, 6]); // no round run twice across the pause
    expect(done.rounds.every((r) => r.status === 'aggregated' && r.accepted === 2)).toBe(true);
    expect(done.rounds.at(-1)!.valAccuracy).toBeGreaterThan(0.7);

    // The model archive loads as a TensorFlow.js model that classifies held-out digits.
    const out = join(dir, 'r1-model');
    expect(await api.downloadModel('r1', out)).toEqual(['ftl-model.json', 'model.json', 'weights.bin']);
    const meta = JSON.parse(await readFile(join(out, 'ftl-model.json'), 'utf8')) as { runId: string; rounds: unknown[] };
    expect(meta).toMatchObject({ runId: 'r1' });
    expect(meta.rounds).toHaveLength(6);
    const model = await loadLayersModelFromFolder(out);
    const { test: heldOut } = federationSplit(loadBuiltinDataset('mnist'));
    const n = 300;
    const x = tf.tensor4d(heldOut.images.subarray(0, n * 784), [n, 28, 28, 1]);
    const predicted = Array.from((model.predict(x) as tf.Tensor).argMax(1).dataSync());
    const correct = predicted.filter((p, i) => p === heldOut.labels[i]).length;
    expect(correct / n).toBeGreaterThan(0.7);
    x.dispose();
    model.dispose();

    // A second run on the same server, with the same connected sites; a third cannot start meanwhile.
    await api.call('POST', '/api/runs', { runId: 'r2', rounds: 1, ...small });
    await api.call('POST', '/api/runs', { runId: 'r3', rounds: 1, ...small });
    await api.call('POST', '/api/runs/r2/start');
    await expect(api.call('POST', '/api/runs/r3/start')).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/r2 is running/) });
    const r2 = await until(
      'r2 completed',
      () => run('r2'),
      (r) => r.status === 'completed',
    );
    expect(r2.rounds).toHaveLength(1);
    await api.call('POST', '/api/runs/r3/stop');
    expect((await run('r3')).status).toBe('stopped');
    const { runs } = await api.call<{ runs: Array<{ id: string; status: string; roundsDone: number }> }>('GET', '/api/runs');
    expect(runs.map((r) => [r.id, r.status, r.roundsDone]).sort()).toEqual([
      ['r1', 'completed', 6],
      ['r2', 'completed', 1],
      ['r3', 'stopped', 0],
    ]);

    // Revoking a site disconnects it at once, and the site stops with the reason.
    await api.call('POST', '/api/clients/site-1/revoke');
    await expect(ends[1]).rejects.toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringMatching(/closed this connection \(revoked\)/) });
    const listed = await until(
      'site-1 gone',
      () => api.call<{ clients: Array<{ name: string; revoked: boolean; connected: boolean }> }>('GET', '/api/clients'),
      (c) => c.clients.find((x) => x.name === 'site-1')?.connected === false,
    );
    expect(listed.clients).toEqual([
      expect.objectContaining({ name: 'site-0', revoked: false, connected: true }),
      expect.objectContaining({ name: 'site-1', revoked: true, connected: false }),
    ]);

    for (const c of clients) c.close();
    await Promise.allSettled(ends);
    await server.close();
    store.close();
  });

  test('a server that shuts down mid-run leaves the run running; the next server on the database resumes it and the sites come back', async () => {
    await initBackend();
    const dir = await scratch('api-restart');
    const log = createLogger('test', { level: 'silent' });
    const store = Store.open(join(dir, 'coordinator.db'));
    const config = { ...defaultCoordinatorConfig(), port: 0, requireAuth: false, exportDir: undefined };
    const first = await CoordinatorServer.create(config, log, store, { operatorToken: OPERATOR_TOKEN, exportRoot: join(dir, 'runs') });
    const { url, port } = await first.listen();
    const api = new ApiClient({ url, token: OPERATOR_TOKEN });
    await api.call('POST', '/api/runs', { runId: 'long', rounds: 5, minClients: 2, fit: { epochs: 1, batchSize: 32, learningRate: 0.002 } });
    const clients = await longLivedSites(url, { seed: 3, cacheDir: join(dir, 'cache'), log });
    const ends = clients.map((c) => c.run());
    for (const end of ends) end.catch(() => {});
    await api.call('POST', '/api/runs/long/start');
    await until(
      'round 1',
      () => api.call<RunView>('GET', '/api/runs/long'),
      (r) => r.rounds.length >= 1,
    );
    await first.close();
    const left = store.listRounds('long').length;
    expect(store.getRun('long')?.status).toBe('running');
    expect(left).toBeLessThan(5);

    const second = await CoordinatorServer.create({ ...config, port }, log, store, { operatorToken: OPERATOR_TOKEN, exportRoot: join(dir, 'runs') });
    await second.listen();
    expect(second.resumeInterrupted()).toEqual(['long']);
    const done = await until(
      'long completed',
      () => api.call<RunView>('GET', '/api/runs/long'),
      (r) => r.status === 'completed',
    );
    expect(done.rounds.map((r) => r.round)).toEqual([1, 2, 3, 4, 5]);
    expect(done.rounds.slice(left).every((r) => r.accepted === 2)).toBe(true); // both sites reconnected by themselves
    expect(store.listEvents('long').map((e) => e.type)).toContain('run-interrupted');

    for (const c of clients) c.close();
    await Promise.allSettled(ends);
    await second.close();
    store.close();
  });
});
