import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { io } from 'socket.io-client';
import { FtlClient } from '@ftl/client';
import { hashClientToken, newClientToken, Store } from '@ftl/coordinator';
import { createLogger, createMsgpackParser, initBackend, loadBuiltinDataset, loadClientShard, PROTOCOL_VERSION } from '@ftl/shared';
import { selfSignedCertificate } from '@ftl/shared/testing';
import { describe, expect, test } from 'vitest';
import { createCoordinator, scratch } from './test-federation.js';

/** Connects a bare socket with the given token; resolves with what happened and how many bytes arrived. */
function attempt(url: string, name: string, token: string | undefined, ca: Buffer): Promise<{ outcome: string; bytes: number }> {
  const counter = { sent: 0, received: 0 };
  const socket = io(url, {
    parser: createMsgpackParser(counter),
    auth: { protocol: PROTOCOL_VERSION, name, ...(token ? { token } : {}) },
    transports: ['websocket'],
    reconnection: false,
    ca: ca.toString('utf8'),
  });
  return new Promise((resolve) => {
    const done = (outcome: string) => {
      socket.disconnect();
      resolve({ outcome, bytes: counter.received });
    };
    socket.on('welcome', () => done('welcome'));
    socket.on('connect_error', (err: Error & { data?: { reason?: string } }) => done(`refused:${err.data?.reason ?? err.message}`));
  });
}

describe('client auth and TLS', () => {
  test('tokens gate the connection before any model byte; revocation applies on reconnect; a TLS run works end to end', async () => {
    await initBackend();
    const dir = await scratch('tls');
    const { certFile, keyFile } = selfSignedCertificate(dir);
    const ca = readFileSync(certFile);
    const store = Store.open(join(dir, 'coordinator.db'));
    const tokens = Object.fromEntries(
      ['site-0', 'site-1', 'site-2'].map((name) => {
        const token = newClientToken();
        store.addClient(name, hashClientToken(token));
        return [name, token];
      }),
    );
    const log = createLogger('test', { level: 'silent' });
    const coordinator = await createCoordinator(
      { runId: 'tls-run', rounds: 1, minClients: 2, requireAuth: true, tls: { cert: ca, key: readFileSync(keyFile) } },
      { store, log },
    );
    const { url } = await coordinator.listen();
    expect(url).toMatch(/^https:\/\//);

    // A refused client gets only the refusal packet (~150 bytes): no welcome, no weights.
    const refused = { outcome: 'refused:unauthorized', bytes: expect.any(Number) };
    for (const [name, token] of [
      ['site-0', undefined],
      ['site-0', tokens['site-1']],
      ['intruder', newClientToken()],
    ] as const) {
      const r = await attempt(url, name, token, ca);
      expect(r, name).toEqual(refused);
      expect(r.bytes).toBeLessThan(512);
    }
    const accepted = await attempt(url, 'site-2', tokens['site-2'], ca);
    expect(accepted.outcome).toBe('welcome');
    store.revokeClient('site-2');
    const again = await attempt(url, 'site-2', tokens['site-2'], ca);
    expect(again).toEqual(refused);
    expect(again.bytes).toBeLessThan(512);

    const mnist = loadBuiltinDataset('mnist');
    const client = (index: number, token: string) =>
      new FtlClient({
        serverUrl: url,
        name: `site-${index}`,
        token,
        ca,
        cacheDir: join(dir, `cache-${index}`),
        log,
        shard: loadClientShard({ dataset: 'mnist', partition: { kind: 'iid' }, clients: 3, index, seed: 1, limit: 600 }, log, mnist),
      });
    const revoked = await client(2, tokens['site-2']!)
      .run()
      .catch((e: unknown) => e);
    expect(revoked).toMatchObject({ code: 'UNAUTHORIZED' });
    const ends = [client(0, tokens['site-0']!).run(), client(1, tokens['site-1']!).run()];
    const summary = await coordinator.run();
    await Promise.all(ends);
    await coordinator.close();
    expect(summary.rounds[0]).toMatchObject({ status: 'aggregated', accepted: 2 });
    expect(store.getClient('site-0')?.lastSeen).not.toBeNull();
    store.close();
  });
});
