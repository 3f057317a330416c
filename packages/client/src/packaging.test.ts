import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodePng } from '@ftl/shared';
import { readmeBlock } from '@ftl/shared/testing';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

// A site installs the client alone: the packed tarballs of @ftl/shared and @ftl/client, `npm install`ed into
// an empty folder with no workspace around it. The tarballs hold what `tsc -b` built (`npm test` builds
// before it runs the tests); the coordinator runs from the workspace, as it would run elsewhere.
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PACKED = ['packages/shared', 'packages/client'];
/** What a site must never have to install: the coordinator's database, test and lint tools, the demo datasets. */
const NEVER_INSTALLED = [
  'better-sqlite3',
  'vitest',
  'fast-check',
  '@biomejs/biome',
  'typescript',
  'mnist',
  'fashion-mnist',
  '@ftl/datasets',
  '@ftl/coordinator',
  'socket.io',
];
const CLASSES = ['top', 'bottom'];
const INSTALL_TIMEOUT_MS = 150_000;

interface Exited {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** npm's own variables of the `npm test` that runs this, which would point a child npm at the workspace. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^npm_(package|lifecycle|command|config_(local_prefix|workspaces?|include_workspace_root))/i.test(k) && k !== 'INIT_CWD') env[k] = v;
  }
  return { ...env, ...extra };
}

/** Runs a program to its end, killed after `timeoutMs` so a hung npm or client fails the test instead of stalling it. */
function exec(command: string, args: string[], o: { cwd: string; timeoutMs: number; env?: Record<string, string> }): Promise<Exited> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: o.cwd, env: childEnv(o.env) });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, o.timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut });
    });
  });
}

const tail = (text: string, lines = 15) => text.trim().split('\n').slice(-lines).join('\n');

/** Every package name under a node_modules tree, nested copies included. */
async function installedPackages(nodeModules: string): Promise<Set<string>> {
  const names = new Set<string>();
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (entry.name.startsWith('.')) continue;
      if (entry.name.startsWith('@')) {
        for (const scoped of await readdir(join(dir, entry.name)).catch(() => [])) {
          names.add(`${entry.name}/${scoped}`);
          await walk(join(dir, entry.name, scoped, 'node_modules'));
        }
      } else {
        names.add(entry.name);
        await walk(join(dir, entry.name, 'node_modules'));
      }
    }
  };
  await walk(nodeModules);
  return names;
}

/** An image folder of two classes a head tells apart easily: a bright band at the top or at the bottom. */
async function writeImages(dir: string, perClass: number): Promise<void> {
  let state = 7;
  const noise = () => ((state = (state * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31) * 0.2;
  for (const label of CLASSES) {
    await mkdir(join(dir, label), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const data = new Float32Array(28 * 28);
      for (let y = 0; y < 28; y++) {
        const bright = label === 'top' ? y < 12 : y >= 16;
        for (let x = 0; x < 28; x++) data[y * 28 + x] = Math.min(1, (bright ? 0.8 : 0) + noise());
      }
      await writeFile(join(dir, label, `${i}.png`), encodePng({ data, height: 28, width: 28, channels: 1 }));
    }
  }
}

let work: string;
let site: string;
let tarballs: { name: string; filename: string; files: string[] }[];
let clientVersion: string;

beforeAll(async () => {
  for (const pkg of [...PACKED, 'packages/coordinator']) {
    if (!existsSync(join(ROOT, pkg, 'dist', 'index.js'))) throw new Error(`${pkg}/dist is missing: build first (npx tsc -b; npm test does)`);
  }
  clientVersion = (JSON.parse(await readFile(join(ROOT, 'packages/client/package.json'), 'utf8')) as { version: string }).version;
  work = await mkdtemp(join(tmpdir(), 'ftl-packaging-'));
  const packed = await exec('npm', ['pack', ...PACKED.flatMap((p) => ['--workspace', p]), '--pack-destination', work, '--json'], {
    cwd: ROOT,
    timeoutMs: 60_000,
  });
  if (packed.code !== 0) throw new Error(`npm pack failed (exit ${packed.code}):\n${tail(packed.stderr)}`);
  tarballs = (JSON.parse(packed.stdout) as { name: string; filename: string; files: { path: string }[] }[]).map((t) => ({
    name: t.name,
    filename: t.filename,
    files: t.files.map((f) => f.path),
  }));
  site = join(work, 'site');
  await mkdir(site);
  await writeFile(join(site, 'package.json'), `${JSON.stringify({ name: 'ftl-site', private: true })}\n`);
  // From the npm cache when it has everything (after `npm ci` it does), else from the registry, with bounds
  // on every fetch so an unreachable registry ends the install with npm's own error, not a hang.
  const install = await exec(
    'npm',
    [
      'install',
      '--no-audit',
      '--no-fund',
      '--prefer-offline',
      '--omit=optional', // tfjs-node: its native binary is optional, and the client runs on WASM without it
      '--fetch-timeout=20000',
      '--fetch-retries=1',
      ...tarballs.map((t) => join(work, t.filename)),
    ],
    { cwd: site, timeoutMs: INSTALL_TIMEOUT_MS },
  );
  if (install.code !== 0) {
    throw new Error(
      `npm install of the packed client ${install.timedOut ? `did not finish in ${INSTALL_TIMEOUT_MS / 1000} s` : `failed (exit ${install.code})`}: ` +
        `a package missing from the npm cache needs the registry (is it reachable?); npm said:\n${tail(install.stderr)}`,
    );
  }
}, 240_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('the packed client, installed alone', () => {
  test('the tarballs hold the built code and no tests, sources or source maps', () => {
    expect(tarballs.map((t) => t.name).sort()).toEqual(['@ftl/client', '@ftl/shared']);
    for (const t of tarballs) {
      expect(t.files).toContain('package.json');
      expect(t.files).toContain('dist/index.js');
      const unwanted = t.files.filter((f) => /\.test\.|\.map$|^src\/|^test-support\/|^fuzz-corpus\/|node_modules\//.test(f));
      expect(unwanted, `${t.name} packs ${unwanted.join(', ')}`).toEqual([]);
    }
    expect(tarballs.find((t) => t.name === '@ftl/client')!.files).toContain('dist/cli.js');
  });

  test('installs without the database, the test tools or the datasets', async () => {
    const installed = await installedPackages(join(site, 'node_modules'));
    expect(installed.has('@ftl/client') && installed.has('@ftl/shared') && installed.has('@tensorflow/tfjs')).toBe(true);
    expect(NEVER_INSTALLED.filter((name) => installed.has(name))).toEqual([]);
  });

  test('its ftl-client answers --version from its package.json and -h with its help', async () => {
    const bin = join(site, 'node_modules', '.bin', 'ftl-client');
    const version = await exec(bin, ['--version'], { cwd: site, timeoutMs: 30_000 });
    expect(version.stdout).toBe(`ftl-client ${clientVersion}\n`);
    const help = await exec(bin, ['-h'], { cwd: site, timeoutMs: 30_000 });
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^ftl-client \[options\]/);
    expect(help.stdout).toContain('--feature-cache-max-mb');
  });

  test('--dataset says in one line that the datasets are a separate package, and how to install it', async () => {
    const r = await exec(join(site, 'node_modules', '.bin', 'ftl-client'), ['--dataset', 'mnist', '--cache-dir', join(work, 'no-datasets')], {
      cwd: site,
      timeoutMs: 60_000,
      env: { FTL_LOG: 'warn' },
    });
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines.at(-1)).toMatch(
      /^error \[DATASET\]: the built-in datasets are in the optional package @ftl\/datasets, which is not installed; install it/,
    );
    expect(lines.at(-1)).toContain('npm install @ftl/datasets');
  });

  test('joins a coordinator and completes a federated run on a folder of images, then loads the export as the README shows', async () => {
    const images = join(work, 'images');
    await writeImages(images, 12);
    const exportDir = join(site, '.ftl', 'global-model'); // where the README's example looks
    const coordinator = spawn(
      process.execPath,
      [
        'packages/coordinator/dist/cli.js',
        ...['--port', '0', '--run-id', 'packaged', '--rounds', '2', '--min-clients', '1', '--wait-timeout', '60'],
        ...['--classes', CLASSES.join(','), '--epochs', '3', '--db', join(work, 'coordinator.db'), '--out', exportDir],
      ],
      { cwd: ROOT, env: childEnv({ FTL_LOG: 'warn' }) },
    );
    const stopped = exited(coordinator);
    try {
      const url = await listeningUrl(coordinator);
      const client = await exec(
        join(site, 'node_modules', '.bin', 'ftl-client'),
        ['--server', url, '--name', 'site-a', '--data-dir', images, '--cache-dir', join(work, 'cache'), '--feature-cache-max-mb', '16'],
        { cwd: site, timeoutMs: 90_000, env: { FTL_LOG: 'warn' } },
      );
      expect(client.timedOut).toBe(false);
      expect(client.code, client.stderr).toBe(0);
      const done = await stopped;
      expect(done.code, done.stderr).toBe(0);
      expect(done.stdout).toMatch(/run packaged completed after 2 rounds/);
    } finally {
      coordinator.kill('SIGKILL');
    }
    expect((await readdir(join(work, 'cache', 'features'))).filter((f) => f.endsWith('.f32')).length).toBeGreaterThan(0);
    // The README's example, run against the installed packages only (no workspace, no tfjs-node).
    await writeFile(join(site, 'load.mjs'), await readmeBlock('load-export', 'js'));
    const loaded = await exec(process.execPath, ['load.mjs'], { cwd: site, timeoutMs: 60_000, env: { FTL_LOG: 'warn' } });
    expect(loaded.code, loaded.stderr).toBe(0);
    const labels = loaded.stdout.trim().split(' ');
    expect(labels).toHaveLength(2);
    expect(CLASSES).toEqual(expect.arrayContaining(labels));
  }, 150_000);
});

/** The coordinator's URL from its "coordinator listening on URL (run …)" line. */
function listeningUrl(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`the coordinator did not start in 60 s:\n${tail(err)}`)), 60_000);
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /coordinator listening on (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.on('exit', (code) => reject(new Error(`the coordinator exited (${code}) before listening:\n${tail(err)}`)));
  });
}

/** The coordinator's whole output once it exits (it does when its run ends; the test's own timeout bounds it). */
function exited(child: ChildProcess): Promise<Exited> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr, timedOut: false })));
}
