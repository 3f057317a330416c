import { mkdtempSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selfSignedCertificate } from '@ftl/shared/testing';
import { createLogger, ErrorCode, loadBuiltinDataset, loadClientShard, type LocalShard } from '@ftl/shared';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { FtlClient } from './client.js';

const dir = mkdtempSync(join(tmpdir(), 'ftl-connect-'));

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

let shard: LocalShard;
const servers: Server[] = [];
let plainPort: number;
let otherNamePort: number;
let closedPort: number;
const otherName = selfSignedCertificate(dir, { name: 'other', commonName: 'other', san: 'DNS:coordinator.example' });
const unrelated = selfSignedCertificate(dir, { name: 'unrelated', commonName: 'unrelated', san: 'IP:127.0.0.1' });

beforeAll(async () => {
  shard = loadClientShard(
    { dataset: 'mnist', partition: { kind: 'iid' }, clients: 1, index: 0, seed: 1, limit: 20 },
    undefined,
    loadBuiltinDataset('mnist'),
  );
  const plain = createHttpServer((_, res) => res.writeHead(404).end());
  const tls = createHttpsServer(otherName, (_, res) => res.writeHead(404).end());
  servers.push(plain, tls);
  [plainPort, otherNamePort] = [await listen(plain), await listen(tls)];
  const gone = createHttpServer();
  closedPort = await listen(gone);
  await new Promise<void>((resolve) => gone.close(() => resolve()));
});

afterAll(() => Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())))));

/** Runs a client against `serverUrl` until it gives up; returns its error and its log lines. */
async function attempt(serverUrl: string, o: { ca?: Buffer; reconnectionAttempts?: number } = {}): Promise<{ err: unknown; lines: string[] }> {
  const lines: string[] = [];
  const log = createLogger('client', { level: 'warn', write: (line) => lines.push(line) });
  const client = new FtlClient({
    serverUrl,
    name: 'site-a',
    shard,
    cacheDir: join(dir, 'cache'),
    log,
    reconnectionAttempts: o.reconnectionAttempts ?? 5,
    ...(o.ca ? { ca: o.ca } : {}),
  });
  const err = await client.run().catch((e: unknown) => e);
  client.close();
  return { err, lines };
}

describe('reaching the coordinator', () => {
  test('a refused port is retried, each attempt said on one line, then given up naming the cause', async () => {
    const url = `http://127.0.0.1:${closedPort}`;
    const { err, lines } = await attempt(url, { reconnectionAttempts: 1 });
    const cause = `nothing is listening at 127.0.0.1:${closedPort} (connection refused); is the coordinator running there?`;
    expect(err).toMatchObject({ code: ErrorCode.Timeout, message: `could not reach the coordinator at ${url} after 2 attempts: ${cause}` });
    expect(lines).toEqual([
      `ftl client warn connect-failed detail=${JSON.stringify(cause)} next="retrying (1 of 1)"`,
      `ftl client warn connect-failed detail=${JSON.stringify(cause)} next="giving up"`,
    ]);
  });

  test.each<[string, () => { url: string; ca?: Buffer }, RegExp]>([
    [
      'a certificate issued for another name',
      () => ({ url: `https://127.0.0.1:${otherNamePort}`, ca: otherName.cert }),
      /^the coordinator's certificate is not issued for 127\.0\.0\.1 \(.*\); use a --server address the certificate lists$/,
    ],
    [
      'a --ca-file that did not sign the certificate',
      () => ({ url: `https://127.0.0.1:${otherNamePort}`, ca: unrelated.cert }),
      /^the coordinator's certificate is not trusted \(self-signed certificate\); the --ca-file given did not sign it: pass the CA that did, or the coordinator's own certificate$/,
    ],
    [
      'an https URL to a plain http coordinator',
      () => ({ url: `https://127.0.0.1:${plainPort}` }),
      /^the coordinator at 127\.0\.0\.1:\d+ does not speak TLS \(.*\); use an http:\/\/ --server URL, or start the coordinator with a certificate$/,
    ],
  ])('%s is final: one error, no retry', async (_, target, message) => {
    const { url, ca } = target();
    const { err, lines } = await attempt(url, ca ? { ca } : {});
    expect(err).toMatchObject({ code: ErrorCode.InvalidConfig });
    expect((err as Error).message).toMatch(message);
    expect(lines).toEqual([]);
  });
});
