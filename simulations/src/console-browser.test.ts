import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CoordinatorServer, defaultCoordinatorConfig, Store } from '@ftl/coordinator';
import { createLogger, initBackend } from '@ftl/shared';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { chromiumPath } from './report-browser.js';
import { scratch } from './test-federation.js';

// The operator console end to end: a real coordinator server with an operator token, real site processes
// on small shares of MNIST, the built page in Debian's Chromium. Every wait is on the page's DOM or a
// process event, never on time.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SHOTS = join(ROOT, '.ftl/test-output/console');
const TOKEN = 'console-operator-token-0123456789abcdef';
const SITES = ['site-0', 'site-1', 'site-2'];
const RUN = 'console-e2e';
const BROWSER_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Runs a program to its end; rejects with its output when it fails. */
function run(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (out += d));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${args.join(' ')} exited ${code}:\n${out}`))));
  });
}

/** The names of a tar archive's entries (512-byte headers, each followed by its data in 512-byte blocks). */
function tarNames(tar: Buffer): string[] {
  const names: string[] = [];
  for (let at = 0; at + 512 <= tar.length; ) {
    const name = tar
      .subarray(at, at + 100)
      .toString('utf8')
      .replace(/\0.*$/s, '');
    if (name === '') break;
    const size = Number.parseInt(
      tar
        .subarray(at + 124, at + 136)
        .toString('utf8')
        .replace(/\0.*$/s, '')
        .trim() || '0',
      8,
    );
    const prefix = tar
      .subarray(at + 345, at + 500)
      .toString('utf8')
      .replace(/\0.*$/s, '');
    names.push(prefix ? `${prefix}/${name}` : name);
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return names;
}

let server: CoordinatorServer | undefined;
let store: Store | undefined;
let browser: Browser | undefined;
const sites = new Map<string, ChildProcess>();

beforeAll(async () => {
  // The page under test is the one this checkout builds now.
  await run([join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', '--config', 'packages/console/vite.config.ts']);
  await rm(SHOTS, { recursive: true, force: true });
  await mkdir(SHOTS, { recursive: true });
  await initBackend();
});

afterAll(async () => {
  for (const child of sites.values()) child.kill('SIGKILL');
  await browser?.close();
  await server?.close();
  store?.close();
});

/** Starts a site program that stays for the next run; resolves once it has connected. */
function startSite(url: string, name: string, index: number, cache: string): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [
      'packages/client/dist/cli.js',
      ...['--server', url, '--name', name, '--stay', '--dataset', 'mnist', '--clients', String(SITES.length), '--index', String(index)],
      ...['--limit', '150', '--cache-dir', cache, '--no-audit-log'],
    ],
    { cwd: ROOT, env: { ...process.env, FTL_LOG: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  sites.set(name, child);
  return new Promise((resolve, reject) => {
    let out = '';
    const seen = (d: Buffer) => {
      out += d;
      if (/ connected /.test(out)) resolve(child);
    };
    child.stdout!.on('data', seen);
    child.stderr!.on('data', seen);
    child.on('exit', (code) => reject(new Error(`site ${name} exited ${code} before connecting:\n${out}`)));
  });
}

/** The number of rounds the run page shows as done. */
const roundsDone = (page: Page) => page.locator('[data-testid="rounds-done"]').textContent().then(Number);

describe('operator console in a real browser', () => {
  test('log in, create and start a run from the form, watch rounds, see a killed site dropped, stop, download the model; a run short of sites fails with why', async () => {
    const dir = await scratch('console');
    store = Store.open(join(dir, 'coordinator.db'));
    const log = createLogger('coordinator', { level: 'warn' });
    server = await CoordinatorServer.create({ ...defaultCoordinatorConfig(), port: 0 }, log, store, {
      operatorToken: TOKEN,
      exportRoot: join(dir, 'runs'),
    });
    const { url } = await server.listen();
    const cache = join(dir, 'cache');
    await Promise.all(SITES.map((name, i) => startSite(url, name, i, cache)));

    const executablePath = chromiumPath();
    expect(existsSync(executablePath), `no browser at ${executablePath}; apt-get install chromium`).toBe(true);
    browser = await chromium.launch({ executablePath, args: BROWSER_ARGS });
    const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1366, height: 900 } });
    const page = await context.newPage();
    const failures: string[] = [];
    const apiCalls: string[] = [];
    page.on('pageerror', (e) => failures.push(e.message));
    page.on('console', (m) => {
      // The refused login and the refused config are answered 401 and 400 on purpose; Chromium logs both.
      if (m.type() === 'error' && !/status of 40[01]/.test(m.text())) failures.push(m.text());
    });
    page.on('request', (r) => {
      if (!r.url().startsWith(url)) failures.push(`outside request: ${r.url()}`);
      if (new URL(r.url()).pathname.startsWith('/api/')) apiCalls.push(`${r.method()} ${new URL(r.url()).pathname}`);
    });

    // Log in: a wrong token is refused on the form, the right one sets an HttpOnly, SameSite=Strict session.
    await page.goto(url);
    await page.screenshot({ path: join(SHOTS, '1-login.png') });
    await page.fill('#token', 'not-the-token-at-all');
    await page.click('button[type=submit]');
    await expect.poll(() => page.locator('[role=alert]').textContent()).toContain('wrong operator token');
    await page.fill('#token', TOKEN);
    await page.click('button[type=submit]');
    await page.waitForSelector('h1#runs-title');
    const [cookie] = await context.cookies();
    expect(cookie).toMatchObject({ name: 'ftl-session', httpOnly: true, sameSite: 'Strict' });
    expect(cookie!.value).not.toContain(TOKEN);
    expect(page.url()).not.toContain(TOKEN);
    await page.waitForSelector('.connection.up');

    // The form: a bad value comes back from the API's schema beside its field; then the run is created.
    await page.click('a[href="#/new"]');
    await page.fill('#f-runId', RUN);
    await page.fill('#f-rounds', '-1');
    await page.click('button[type=submit]');
    await expect.poll(() => page.locator('#f-rounds-error').textContent()).toMatch(/^rounds must be/);
    for (const [field, value] of [
      ['#f-rounds', '400'],
      ['#f-minClients', '3'],
      ['#f-fit-epochs', '1'],
      ['#f-roundDeadlineSeconds', '60'],
    ]) {
      await page.fill(field!, value!);
    }
    await page.click('button[type=submit]');
    await page.waitForSelector(`h1#run-title:text("Run ${RUN}")`);
    await page.waitForSelector('[data-status="created"]');

    // Start, then wait on the page for rounds to come in.
    await page.click('button:text("Start")');
    await page.waitForSelector('[data-status="running"]');
    await page.waitForSelector('table.rounds tr[data-round="2"]');
    await page.waitForSelector('.charts canvas');
    await page.screenshot({ path: join(SHOTS, '2-running.png'), fullPage: true });

    // A site dies: the page marks it dropped, with why, in the round it left.
    const victim = sites.get('site-2')!;
    const exited = new Promise((resolve) => victim.once('exit', resolve));
    victim.kill('SIGKILL');
    await exited;
    const dropped = page.locator('[data-dropped="site-2"]').first();
    await dropped.waitFor();
    expect(await dropped.textContent()).toMatch(/^dropped site-2: .*(disconnect|transport close)/);
    const round = Number(await dropped.locator('xpath=ancestor::tr').getAttribute('data-round'));
    // The page's round is the one the run's record says the site left in (killed while training it, or
    // after its update, while the round was evaluated).
    const record = (await page.request.get(`${url}/api/runs/${RUN}`).then((r) => r.json())) as {
      sites: Array<{ client: string; state: string; round?: number }>;
    };
    const left = record.sites.find((s) => s.client === 'site-2');
    expect(['dropped', 'disconnected']).toContain(left?.state);
    expect(left?.round).toBe(round);
    await page.screenshot({ path: join(SHOTS, '3-site-dropped.png'), fullPage: true });

    // Stop: the status changes with its reason as the API has it.
    const before = await roundsDone(page);
    await page.click('button:text("Stop")');
    // A stop takes effect when the round in progress closes, which may take up to its 60 s deadline; the
    // run's record says when, and the page must show it then.
    await expect
      .poll(async () => ((await page.request.get(`${url}/api/runs/${RUN}`).then((r) => r.json())) as { status: string }).status, {
        timeout: 90_000,
      })
      .toBe('stopped');
    await page.waitForSelector('[data-status="stopped"]');
    const view = (await page.request.get(`${url}/api/runs/${RUN}`).then((r) => r.json())) as {
      status: string;
      rounds: unknown[];
      reason?: { message: string };
    };
    expect(view.status).toBe('stopped');
    expect(await roundsDone(page)).toBeGreaterThanOrEqual(before);
    expect(view.reason?.message).toMatch(/stop/);
    expect(await page.locator('.status-line .reason').first().textContent()).toContain(view.reason!.message);
    await page.screenshot({ path: join(SHOTS, '4-stopped.png'), fullPage: true });

    // The model: a gzipped tar of a TensorFlow.js model folder.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('a:text("Download model")')]);
    const file = join(dir, 'model.tar.gz');
    await download.saveAs(file);
    const bytes = await readFile(file);
    expect([bytes[0], bytes[1]]).toEqual([0x1f, 0x8b]);
    const names = tarNames(gunzipSync(bytes)).map((n) => n.replace(/^.*\//, ''));
    expect(names).toEqual(expect.arrayContaining(['model.json', 'weights.bin', 'ftl-model.json']));

    // The finished run prints as one page.
    await page.emulateMedia({ media: 'print' });
    await page.screenshot({ path: join(SHOTS, '5-report.png'), fullPage: true });
    const pdf = (await page.pdf({ format: 'A4', printBackground: true })).toString('latin1');
    expect(pdf.match(/\/Type\s*\/Page[^s]/g)).toHaveLength(1);

    // A run that fails for want of sites says why on the page, as the API has it.
    await page.emulateMedia({ media: 'screen' });
    await page.click('a[href="#/new"]');
    await page.fill('#f-runId', 'wanting');
    await page.fill('#f-minClients', '9');
    await page.fill('#f-waitTimeoutSeconds', '1');
    await page.click('button[type=submit]');
    await page.waitForSelector('h1#run-title:text("Run wanting")');
    await page.click('button:text("Start")');
    await page.waitForSelector('[data-status="failed"]');
    const failed = (await page.request.get(`${url}/api/runs/wanting`).then((r) => r.json())) as { status: string; reason?: { message: string } };
    expect(failed.status).toBe('failed');
    expect(failed.reason?.message).toMatch(/of the 9 clients needed were ready/);
    expect(await page.locator('.status-line .reason').first().textContent()).toContain(failed.reason!.message);
    await page.screenshot({ path: join(SHOTS, '6-failed-for-want-of-sites.png'), fullPage: true });

    // Live, not polled: the page called the API only for what the operator did.
    expect(apiCalls.filter((c) => c.startsWith('GET')).every((c) => c.endsWith('/model'))).toBe(true);
    expect(apiCalls.filter((c) => c.startsWith('POST'))).toEqual([
      'POST /api/runs',
      'POST /api/runs',
      `POST /api/runs/${RUN}/start`,
      `POST /api/runs/${RUN}/stop`,
      'POST /api/runs',
      'POST /api/runs/wanting/start',
    ]);
    expect(failures).toEqual([]);
  }, 240_000);
});
