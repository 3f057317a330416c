import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { hashClientToken, parseRunConfig, Store } from '@ftl/coordinator';
import { selfSignedCertificate } from '@ftl/shared/testing';
import { afterEach, describe, expect, test } from 'vitest';
import { scratch } from './test-federation.js';

// The built programs (`npm test` builds first), run from a scratch folder as an operator would: what
// they print is what a user sees.
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const COORDINATOR = join(ROOT, 'packages/coordinator/dist/cli.js');
const CLIENT = join(ROOT, 'packages/client/dist/cli.js');

interface Proc {
  child: ChildProcess;
  stdout: string[];
  stderr: string[];
  exited: Promise<number | null>;
  /** Resolves with the first stdout line matching `re`, or with the exit code if the program ends first. */
  lineOrExit(re: RegExp): Promise<{ line: string } | { code: number | null }>;
}

const running: Proc[] = [];

function start(args: string[], cwd: string, program = COORDINATOR): Proc {
  const child = spawn(process.execPath, [program, ...args], { cwd, env: { ...process.env, FTL_LOG: 'warn' } });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const watchers: Array<(line: string) => void> = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    stdout.push(line);
    for (const w of watchers) w(line);
  });
  createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line));
  // Both streams read to their end before the exit counts, so no line is missed.
  const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const proc: Proc = {
    child,
    stdout,
    stderr,
    exited: closed,
    lineOrExit: (re) =>
      new Promise((resolve) => {
        const seen = stdout.find((l) => re.test(l));
        if (seen !== undefined) return resolve({ line: seen });
        watchers.push((line) => re.test(line) && resolve({ line }));
        void closed.then((code) => resolve({ code }));
      }),
  };
  running.push(proc);
  return proc;
}

/** Runs a program to its end. */
async function run(args: string[], cwd: string, program = COORDINATOR): Promise<{ code: number | null; stdout: string[]; stderr: string[] }> {
  const p = start(args, cwd, program);
  const code = await p.exited;
  return { code, stdout: p.stdout, stderr: p.stderr };
}

/** A serve that is up; its port from the line it prints. */
async function serving(args: string[], cwd: string): Promise<{ proc: Proc; port: number }> {
  const proc = start(['serve', '--port', '0', ...args], cwd);
  const up = await proc.lineOrExit(/^coordinator serving on https?:\/\/127\.0\.0\.1:\d+/);
  if (!('line' in up)) throw new Error(`serve exited ${up.code}: ${proc.stderr.join('\n')}`);
  return { proc, port: Number(/:(\d+) /.exec(up.line)![1]) };
}

function stop(proc: Proc, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  proc.child.kill(signal);
  return proc.exited;
}

/** The program failed with exactly this one error line and no stack trace. */
function expectOneLineError(r: { code: number | null; stderr: string[] }, message: string | RegExp): void {
  expect(r.code).toBe(1);
  const errors = r.stderr.filter((l) => l.startsWith('error'));
  expect(errors).toHaveLength(1);
  if (typeof message === 'string') expect(errors[0]).toBe(message);
  else expect(errors[0]).toMatch(message);
  expect(r.stderr.filter((l) => /^\s+at /.test(l))).toEqual([]);
}

function occupiedPort(): Promise<{ port: number; server: Server }> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => resolve({ port: (server.address() as { port: number }).port, server }));
  });
}

/** A certificate for 127.0.0.1, as the paths of its two files. */
function selfSigned(dir: string): { cert: string; key: string } {
  const { certFile, keyFile } = selfSignedCertificate(dir, { commonName: '127.0.0.1', san: 'IP:127.0.0.1' });
  return { cert: certFile, key: keyFile };
}

afterEach(async () => {
  for (const p of running.splice(0)) {
    if (p.child.exitCode === null && p.child.signalCode === null) await stop(p, 'SIGKILL');
  }
});

describe('one coordinator per database', () => {
  test('a second serve, or a one-run coordinator, on a database a serve holds refuses in one line; clients add --db still works; after SIGTERM the next serve starts', async () => {
    const dir = await scratch('db-lock');
    const db = join(dir, 'state', 'c.db');
    const first = await serving(['--db', db], dir);
    const pid = first.proc.child.pid!;
    const second = start(['serve', '--port', '0', '--db', db], dir);
    expect(await second.lineOrExit(/serving on/)).toEqual({ code: 1 });
    const holder = JSON.parse(readFileSync(`${db}.lock`, 'utf8')) as { pid: number; startedAt: string };
    expect(holder.pid).toBe(pid);
    const inUse = `error [CONFLICT]: database ${db} is in use by another coordinator (pid ${pid}, started ${holder.startedAt}); stop it first or use another --db`;
    expectOneLineError({ code: await second.exited, stderr: second.stderr }, inUse);
    expectOneLineError(await run(['--port', '0', '--db', db, '--run-id', 'other', '--wait-timeout', '1'], dir), inUse);

    const added = await run(['clients', 'add', 'site-a', '--db', db], dir);
    expect(added.code).toBe(0);
    expect(added.stdout[0]).toBe('client site-a added. Its token (shown once; give it to the site, e.g. as FTL_TOKEN):');

    expect(await stop(first.proc)).toBe(0);
    expect(existsSync(`${db}.lock`)).toBe(false);
    const next = await serving(['--db', db], dir);
    expect(await stop(next.proc)).toBe(0);
  });

  test('a serve killed with SIGKILL leaves its lock behind; the next serve takes it over and says so', async () => {
    const dir = await scratch('db-lock-stale');
    const db = join(dir, 'c.db');
    const killed = await serving(['--db', db], dir);
    const pid = killed.proc.child.pid!;
    expect(await stop(killed.proc, 'SIGKILL')).toBe(null);
    expect(JSON.parse(readFileSync(`${db}.lock`, 'utf8')).pid).toBe(pid);

    const next = await serving(['--db', db], dir);
    expect(next.proc.stderr.filter((l) => l.includes('db-lock-taken-over'))).toEqual([
      expect.stringMatching(new RegExp(`^ftl coordinator warn db-lock-taken-over db=${db} previousPid=${pid} previousStart=\\S+ detail=`)),
    ]);
    expect(JSON.parse(readFileSync(`${db}.lock`, 'utf8')).pid).toBe(next.proc.child.pid);
    expect(await stop(next.proc)).toBe(0);
  });
});

describe('a one-run coordinator and its database lock', () => {
  test('Ctrl-C while it waits for clients ends it and releases the lock', async () => {
    const dir = await scratch('one-run-signals');
    const db = join(dir, 'c.db');
    const args = (id: string) => ['--port', '0', '--db', db, '--run-id', id, '--min-clients', '1', '--wait-timeout', '600', '--out', join(dir, id)];
    const listening = /^coordinator listening on /;

    const once = start(args('once'), dir);
    expect(await once.lineOrExit(listening)).toMatchObject({ line: expect.any(String) });
    once.child.kill('SIGINT');
    await once.exited;
    expect(existsSync(`${db}.lock`)).toBe(false);
  });
});

describe('start-up errors are one line naming what to change', () => {
  test.each([
    ['one run', []],
    ['serve', ['serve']],
  ])('a port in use (%s)', async (_, mode) => {
    const dir = await scratch('port');
    const { port, server } = await occupiedPort();
    try {
      expectOneLineError(
        await run([...mode, '--port', String(port), '--db', join(dir, 'c.db')], dir),
        `error [INVALID_CONFIG]: port ${port} on 127.0.0.1 is in use by another program; stop it or pass --port (0 picks a free port)`,
      );
    } finally {
      server.close();
    }
  });

  test.each([
    ['one run', []],
    ['serve', ['serve']],
  ])('certificate and key swapped, or not PEM (%s)', async (_, mode) => {
    const dir = await scratch('tls-files');
    const { cert, key } = selfSigned(dir);
    const db = ['--db', join(dir, 'c.db'), '--port', '0'];
    expectOneLineError(
      await run([...mode, ...db, '--tls-cert', key, '--tls-key', cert], dir),
      `error [INVALID_CONFIG]: --tls-cert ${key} is not a PEM certificate (it holds a private key; were --tls-cert and --tls-key swapped?); give the server's certificate in PEM`,
    );
    expectOneLineError(
      await run([...mode, ...db, '--tls-cert', cert, '--tls-key', cert], dir),
      `error [INVALID_CONFIG]: --tls-key ${cert} is not a PEM private key (it holds a certificate; were --tls-cert and --tls-key swapped?); give the certificate's private key in PEM`,
    );
    const other = selfSigned(await scratch('tls-other'));
    expectOneLineError(
      await run([...mode, ...db, '--tls-cert', cert, '--tls-key', other.key], dir),
      `error [INVALID_CONFIG]: --tls-key ${other.key} is not the key of the certificate in --tls-cert ${cert}; give the key the certificate was made with`,
    );
  });

  test.each([
    [COORDINATOR, ['--rounds', '-1'], 'error [INVALID_CONFIG]: command line: --rounds (rounds) must be a positive integer (got -1)'],
    [COORDINATOR, ['serve', '--port', '-5'], 'error [INVALID_CONFIG]: --port must be an integer ≥ 0 and ≤ 65535 (got "-5")'],
    [COORDINATOR, ['--lr', '-0.1'], 'error [INVALID_CONFIG]: command line: --lr (fit.learningRate) must be a number > 0 (got -0.1)'],
    [CLIENT, ['--clients', '3', '--index', '-1'], 'error [INVALID_CONFIG]: --index must be an integer ≥ 0 and ≤ 2 (got "-1")'],
  ])('a negative number after a flag reaches its check: %s %j', async (program, args, message) => {
    expectOneLineError(await run(args, await scratch('negative'), program), message);
  });
});

describe('the operator commands find the server and its token', () => {
  test('serve --db elsewhere prints the token file and the flag; runs list --db finds it; without it the message names the file it looked for', async () => {
    const dir = await scratch('token');
    const db = join(dir, 'x', 'c.db');
    const { proc, port } = await serving(['--db', db], dir);
    const tokenFile = join(dir, 'x', 'operator-token');
    expect(await proc.lineOrExit(/^operator token/)).toEqual({
      line: `operator token written to ${tokenFile}; the clients and runs commands need --token-file ${tokenFile} (or --db x/c.db)`,
    });
    const url = ['--url', `http://127.0.0.1:${port}`];
    expect(await run(['runs', 'list', ...url, '--db', db], dir)).toMatchObject({ code: 0, stdout: ['id\tstatus\trounds\tcreated\twhy'] });
    expect(await run(['runs', 'list', ...url, '--token-file', tokenFile], dir)).toMatchObject({ code: 0 });
    expectOneLineError(
      await run(['runs', 'list', '--url', `https://127.0.0.1:${port}`, '--db', db], dir),
      `error [INVALID_CONFIG]: https://127.0.0.1:${port} does not answer in TLS (the TLS handshake got a plain reply); if the coordinator serves plain HTTP, use http:// in --url`,
    );
    expectOneLineError(
      await run(['runs', 'list', ...url, '--wait', '0'], dir),
      `error [UNAUTHORIZED]: no operator token in ${join(dir, '.ftl', 'operator-token')} (the default); serve writes it beside its --db ` +
        '(it prints the file when it starts): pass --token-file FILE, or --db with the database serve uses, or set FTL_OPERATOR_TOKEN',
    );
  });

  test('a self-signed TLS server: untrusted without --ca-file, trusted with it; a refused connection says nothing listens there', async () => {
    const dir = await scratch('operator-tls');
    const { cert, key } = selfSigned(dir);
    const db = join(dir, 'c.db');
    const { port } = await serving(['--db', db, '--tls-cert', cert, '--tls-key', key], dir);
    const url = `https://127.0.0.1:${port}`;
    expectOneLineError(
      await run(['runs', 'list', '--url', url, '--db', db], dir),
      `error [INVALID_CONFIG]: the certificate of ${url} is not trusted (self-signed certificate, DEPTH_ZERO_SELF_SIGNED_CERT); ` +
        "pass --ca-file with the CA certificate (PEM) that signed it, or for a self-signed certificate the certificate itself (serve's --tls-cert)",
    );
    expect(await run(['runs', 'list', '--url', url, '--db', db, '--ca-file', cert], dir)).toMatchObject({
      code: 0,
      stdout: ['id\tstatus\trounds\tcreated\twhy'],
    });
    expectOneLineError(
      await run(['runs', 'list', '--url', `http://127.0.0.1:${port}`, '--db', db, '--wait', '0'], dir),
      // How the TLS server drops a plain request (reset or hang-up) is node's to choose; the advice is ours.
      new RegExp(
        `^error \\[TIMEOUT\\]: http://127\\.0\\.0\\.1:${port} closed the connection without an answer \\([^)]+\\); if the coordinator serves HTTPS, use https:// in --url$`,
      ),
    );
    expectOneLineError(
      await run(['runs', 'list', '--url', url, '--db', db, '--ca-file', key], dir),
      `error [INVALID_CONFIG]: --ca-file ${key} is not a PEM certificate (no "-----BEGIN CERTIFICATE-----" block); give the CA certificate, or serve's --tls-cert when it is self-signed`,
    );

    const closed = await occupiedPort();
    await new Promise((resolve) => closed.server.close(resolve));
    expectOneLineError(
      await run(['runs', 'list', '--url', `http://127.0.0.1:${closed.port}`, '--db', db, '--wait', '0'], dir),
      `error [TIMEOUT]: nothing listens at http://127.0.0.1:${closed.port} (connection refused); start "ftl-coordinator serve" there, or pass the --url it printed`,
    );
  });

  test('clients add --db --save writes the token to the file (mode 0600) and does not print it', async () => {
    const dir = await scratch('clients-save');
    const db = join(dir, 'c.db');
    const file = join(dir, 'tokens', 'site-a.token');
    const r = await run(['clients', 'add', '--db', db, 'site-a', '--save', file], dir);
    expect(r).toMatchObject({ code: 0, stdout: [`client site-a added; its token is in ${file} (give it to the site for --token-file)`] });
    const token = readFileSync(file, 'utf8').trim();
    expect(token).toMatch(/^[0-9a-f]{64}$/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // A taken name leaves the file (that site's token) alone; an unwritable file registers nobody.
    expectOneLineError(
      await run(['clients', 'add', 'site-a', '--db', db, '--save', file], dir),
      `error [CONFLICT]: client site-a is already registered in ${db}; choose another name or revoke it first`,
    );
    expect(readFileSync(file, 'utf8').trim()).toBe(token);
    expectOneLineError(
      await run(['clients', 'add', 'site-b', '--db', db, '--save', join(file, 'x')], dir),
      new RegExp(`^error \\[INVALID_CONFIG\\]: --save: cannot write ${join(file, 'x')} \\(.+\\); choose a file in a writable folder$`),
    );
    const store = Store.open(db);
    expect(store.getClient('site-a')?.tokenHash).toBe(hashClientToken(token));
    expect(store.listClients().map((c) => c.name)).toEqual(['site-a']);
    store.close();
  });
});

describe('a one-run coordinator on a run id its database already has', () => {
  test('other settings are refused before anything loads, listing each; a completed run is refused saying where its model is', async () => {
    const dir = await scratch('run-reuse');
    const db = join(dir, 'c.db');
    const store = Store.open(db);
    store.createRun('first', parseRunConfig({ runId: 'first' }));
    store.setRunStatus('first', 'running');
    store.createRun('done', parseRunConfig({ runId: 'done' }));
    store.setRunStatus('done', 'completed');
    store.appendEvent('done', 'model-exported', { dir: join(dir, 'model') });
    store.close();
    const args = ['--port', '0', '--db', db, '--wait-timeout', '1', '--min-clients', '1'];
    expectOneLineError(
      await run([...args, '--run-id', 'first', '--hidden', '64', '--epochs', '2'], dir),
      `error [CONFLICT]: run first already exists in ${db} with fit.epochs 5 (now 2), hidden [] (now [64]); use another --run-id, or give its settings again to resume it`,
    );
    expectOneLineError(
      await run([...args, '--run-id', 'done'], dir),
      `error [CONFLICT]: run done already completed 0 rounds in ${db}; its model is in ${join(dir, 'model')}; use another --run-id`,
    );
  });
});

describe('runMain', () => {
  test('an unexpected error is one line without a stack, unless FTL_LOG=debug asks for it', async () => {
    const script = "import { runMain } from '@ftl/shared'; runMain(async () => { throw new TypeError('boom\\nsecond line'); });";
    const once = (level: string) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, env: { ...process.env, FTL_LOG: level } });
        let stderr = '';
        child.stderr.on('data', (d) => (stderr += d));
        child.on('close', (code) => resolve({ code, stderr }));
      });
    expect(await once('warn')).toEqual({
      code: 1,
      stderr: 'error: TypeError: boom second line (an unexpected error; run with FTL_LOG=debug to see where it came from)\n',
    });
    const debug = await once('debug');
    expect(debug.code).toBe(1);
    expect(debug.stderr).toMatch(/^error: TypeError: boom second line .*\nTypeError: boom\nsecond line\n\s+at /);
  });
});
