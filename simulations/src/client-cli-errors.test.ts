import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Store } from '@ftl/coordinator';
import { selfSignedCertificate, type SelfSignedCertificate } from '@ftl/shared/testing';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createCoordinator, scratch, startCoordinator } from './test-federation.js';

// The built client program (`npm test` builds first), run as a site would: what it prints is what a
// hospital's operator reads, so every failure must be one line that says what to do, with no stack.
const root = fileURLToPath(new URL('../../', import.meta.url));

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/**
 * Runs the client; with `until`, stops it (SIGTERM) as soon as its stderr matches, so a client that
 * retries is observed without waiting through its retries.
 */
function client(args: string[], until?: RegExp): Promise<Exit> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['packages/client/dist/cli.js', ...args], { cwd: root, env: { ...process.env, FTL_LOG: 'warn' } });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
      if (until?.test(stderr)) child.kill('SIGTERM');
    });
    child.on('exit', (code, signal) => resolve({ code, signal, stderr }));
  });
}

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Exactly one line on stderr: `error [CODE]: message`, and exit 1. */
function expectOneLineError(r: Exit, code: string, message: RegExp): void {
  expect(r.stderr).toMatch(/^error \[[A-Z_]+\]: [^\n]*\n$/);
  expect(r.stderr.startsWith(`error [${code}]: `), r.stderr).toBe(true);
  expect(r.stderr).toMatch(message);
  expect(r.code).toBe(1);
}

let dir: string;
let tls: SelfSignedCertificate;

beforeAll(async () => {
  dir = await scratch('client-errors');
  tls = selfSignedCertificate(dir);
});

describe('client program: errors a site can cause', () => {
  let coordinator: Awaited<ReturnType<typeof startCoordinator>>['coordinator'];
  let url: string;
  let running: Promise<unknown>;

  beforeAll(async () => {
    ({ coordinator, url } = await startCoordinator({ runId: 'errors', minClients: 1, rounds: 1, waitTimeoutMs: 120_000 }));
    running = coordinator.run().catch((err: unknown) => err);
  });

  afterAll(async () => {
    await coordinator.close();
    await running;
  });

  test('a --cache-dir that is a file: one line naming the path and saying to give a folder, before connecting', async () => {
    const file = join(dir, 'not-a-folder');
    writeFileSync(file, 'x');
    const r = await client(['--server', url, '--limit', '20', '--cache-dir', file]);
    expectOneLineError(r, 'INVALID_CONFIG', new RegExp(`--cache-dir ${file} is a file, not a folder; give --cache-dir a folder this user can write`));
  });

  test('a --cache-dir below a file cannot be created: one line saying why', async () => {
    const file = join(dir, 'also-a-file');
    writeFileSync(file, 'x');
    const r = await client(['--server', url, '--limit', '20', '--cache-dir', join(file, 'cache')]);
    expectOneLineError(
      r,
      'INVALID_CONFIG',
      /cannot write the cache in .*also-a-file\/cache \(part of the path is a file, not a folder\); give --cache-dir a folder/,
    );
  });

  test.each<[string, string[], string, RegExp]>([
    ['an unknown flag', ['--rounds', '3'], 'INVALID_CONFIG', /Unknown option '--rounds'.* Run with --help for the options\./],
    ['a flag without its value', ['--name'], 'INVALID_CONFIG', /--name/],
    ['a bad number', ['--clients', 'two'], 'INVALID_CONFIG', /--clients must be an integer ≥ 1 \(got "two"\)/],
    ['a missing data folder', ['--data-dir', '/no/such/folder'], 'DATASET', /\/no\/such\/folder/],
    ['a missing token file', ['--token-file', '/no/such/token'], 'INVALID_CONFIG', /--token-file: cannot read \/no\/such\/token/],
  ])('%s: one line and exit 1, before connecting', async (_, args, code, message) => {
    const r = await client([...args, '--server', 'http://127.0.0.1:9']);
    expectOneLineError(r, code, message);
  });
});

describe('client program: reaching the coordinator', () => {
  test('an https coordinator whose certificate the client does not trust: said once, final, exit 1 without retrying', async () => {
    const { coordinator, url } = await startCoordinator({ runId: 'tls-untrusted', minClients: 1, waitTimeoutMs: 120_000, tls });
    try {
      const r = await client(['--server', url, '--limit', '20', '--cache-dir', join(dir, 'cache')]);
      expectOneLineError(
        r,
        'INVALID_CONFIG',
        /^error \[INVALID_CONFIG\]: the coordinator's certificate is not trusted \(self-signed certificate\); pass its CA with --ca-file\n$/,
      );
    } finally {
      await coordinator.close();
    }
  });

  test('a --ca-file that is not a PEM certificate is refused at start-up', async () => {
    const r = await client(['--server', 'https://127.0.0.1:9', '--ca-file', tls.keyFile]);
    expectOneLineError(
      r,
      'INVALID_CONFIG',
      /--ca-file .*key\.pem holds no PEM certificate; give the coordinator's certificate \(or its CA's\) in PEM form/,
    );
  });

  test('a token the coordinator refuses: one line naming the refusal, exit 1', async () => {
    const store = Store.open(join(dir, 'auth.db'));
    const coordinator = await createCoordinator({ runId: 'auth', minClients: 1, waitTimeoutMs: 120_000, requireAuth: true }, { store });
    const { url } = await coordinator.listen();
    const token = join(dir, 'token');
    writeFileSync(token, 'not-a-token-anyone-issued\n');
    try {
      const r = await client(['--server', url, '--name', 'site-x', '--token-file', token, '--limit', '20', '--cache-dir', join(dir, 'cache')]);
      expectOneLineError(r, 'UNAUTHORIZED', /coordinator refused the connection \(unauthorized\)/);
    } finally {
      await coordinator.close();
      store.close();
    }
  });

  test.each<[string, () => Promise<string>, RegExp]>([
    [
      'a refused port',
      async () => `http://127.0.0.1:${await closedPort()}`,
      /^ftl client warn connect-failed client=client-0 detail="nothing is listening at 127\.0\.0\.1:\d+ \(connection refused\); is the coordinator running there\?" next="retrying \(1 of 20\)"$/,
    ],
    [
      'a host name that does not resolve',
      async () => 'http://no-such-host.invalid:8080',
      /^ftl client warn connect-failed client=client-0 detail="cannot resolve the host no-such-host\.invalid \(DNS lookup failed: E[A-Z_]+\); check the --server address and this machine's network" next="retrying \(1 of 20\)"$/,
    ],
  ])('%s: its own one-line warning that says the client retries', async (_, server, line) => {
    const r = await client(['--server', await server(), '--limit', '20', '--cache-dir', join(dir, 'cache')], /connect-failed.*\n/);
    expect(r.stderr.split('\n')[0]).toMatch(line);
    expect(r.stderr).not.toContain('websocket error');
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack
  });
});
