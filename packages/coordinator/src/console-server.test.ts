import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io, type Socket } from 'socket.io-client';
import { createLogger, createMsgpackParser, initBackend } from '@ftl/shared';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { defaultCoordinatorConfig } from './config.js';
import { CONSOLE_SOCKET_PATH, OPERATOR_NAMESPACE } from './console-live.js';
import { ConsoleSessions } from './console-sessions.js';
import { CoordinatorServer } from './coordinator-server.js';
import { Store } from './store/store.js';

const TOKEN = 'operator-token-for-the-console-0123456789';

let dir = '';
const open: Array<{ close(): unknown }> = [];

beforeAll(async () => {
  await initBackend();
  // A stand-in for Vite's output: what the server serves does not depend on what the page does.
  dir = await mkdtemp(join(tmpdir(), 'ftl-console-'));
  await mkdir(join(dir, 'assets'));
  await mkdir(join(dir, 'console'));
  await writeFile(join(dir, 'index.html'), '<!doctype html><title>console</title>');
  await writeFile(join(dir, 'assets', 'index-abc123.js'), 'export {};');
  await writeFile(join(dir, 'assets', 'index-abc123.css'), 'body{}');
  await writeFile(join(dir, 'assets', 'notes.txt'), 'not a type the console serves');
  await writeFile(join(dir, 'console', 'login.css'), 'form{}');
  await writeFile(join(dir, '..', 'secret.txt'), 'outside the console folder');
});

afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

async function start(o: { token?: string; host?: string } = { token: TOKEN }) {
  const store = Store.open(':memory:');
  const log = createLogger('test', { level: 'error' });
  const config = { ...defaultCoordinatorConfig(), port: 0, ...(o.host ? { host: o.host, insecureOpen: true } : {}) };
  const server = await CoordinatorServer.create(config, log, store, {
    consoleDir: dir,
    ...(o.token ? { operatorToken: o.token } : {}),
  });
  open.push(store, server);
  const { url, port } = await server.listen();
  return { server, store, url: o.host ? `http://127.0.0.1:${port}` : url };
}

/** A request with exactly the given target and headers (fetch would normalise `..` away). */
function raw(url: string, target: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>((resolve, reject) => {
    const { hostname, port } = new URL(url);
    const req = request({ hostname, port, path: target, method: init.method ?? 'GET', headers: init.headers ?? {} }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

/** Logs in with the token; returns the Cookie header to send and the session's CSRF token. */
async function login(url: string): Promise<{ cookie: string; csrf: string }> {
  const res = await raw(url, '/console/login', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: url },
    body: `token=${TOKEN}`,
  });
  expect(res.status).toBe(303);
  const cookie = String(res.headers['set-cookie']).split(';')[0]!;
  const session = await fetch(`${url}/console/session`, { headers: { cookie } }).then((r) => r.json() as Promise<{ csrf: string }>);
  return { cookie, csrf: session.csrf };
}

function connect(url: string, cookie?: string): Socket {
  const socket = io(`${url}${OPERATOR_NAMESPACE}`, {
    path: CONSOLE_SOCKET_PATH,
    parser: createMsgpackParser(),
    transports: ['websocket'],
    reconnection: false,
    extraHeaders: { origin: url, ...(cookie ? { cookie } : {}) },
  });
  open.push(socket);
  return socket;
}

const next = <T>(socket: Socket, event: string, match: (value: T) => boolean = () => true) =>
  new Promise<T>((resolve) => {
    const on = (value: T) => {
      if (!match(value)) return;
      socket.off(event, on);
      resolve(value);
    };
    socket.on(event, on);
  });

describe('console login and session', () => {
  test('/ shows the login form until the token is posted; the session cookie is HttpOnly, SameSite=Strict and holds no token', async () => {
    const { url } = await start();
    const form = await raw(url, '/');
    expect(form.status).toBe(200);
    expect(form.body).toContain('<form method="post" action="/console/login">');
    const wrong = await raw(url, '/console/login', { method: 'POST', headers: { origin: url }, body: 'token=nope' });
    expect(wrong.status).toBe(401);
    expect(wrong.body).toContain('wrong operator token');
    expect(wrong.headers['set-cookie']).toBeUndefined();
    const right = await raw(url, '/console/login', { method: 'POST', headers: { origin: url }, body: `token=${encodeURIComponent(TOKEN)}` });
    expect(right.status).toBe(303);
    expect(right.headers.location).toBe('/');
    const cookie = String(right.headers['set-cookie']);
    expect(cookie).toMatch(/^ftl-session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+$/);
    expect(cookie).not.toContain(TOKEN);
    const page = await raw(url, '/', { headers: { cookie: cookie.split(';')[0]! } });
    expect(page.body).toBe('<!doctype html><title>console</title>');
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['cache-control']).toBe('no-cache');
    expect(page.headers['content-security-policy']).toContain("default-src 'self'");
  });

  test('a login from another origin is refused before the token is looked at; too many wrong tokens answer 429', async () => {
    const { url } = await start();
    const foreign = await raw(url, '/console/login', { method: 'POST', headers: { origin: 'http://evil.example' }, body: `token=${TOKEN}` });
    expect(foreign.status).toBe(403);
    expect(foreign.headers['set-cookie']).toBeUndefined();
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) statuses.push((await raw(url, '/console/login', { method: 'POST', body: 'token=wrong' })).status);
    expect(statuses).toEqual([...Array(10).fill(401), 429]);
  });

  test('the API takes the session cookie: reads freely, state changes only with the CSRF token from this origin', async () => {
    const { url } = await start();
    const { cookie, csrf } = await login(url);
    expect((await fetch(`${url}/api/runs`)).status).toBe(401);
    expect((await fetch(`${url}/api/runs`, { headers: { cookie } })).status).toBe(200);
    const create = (headers: Record<string, string>) =>
      raw(url, '/api/runs', { method: 'POST', headers: { cookie, 'content-type': 'application/json', ...headers }, body: '{"runId":"r1"}' });
    expect((await create({})).status).toBe(401);
    expect((await create({ 'x-ftl-csrf': 'guessed' })).status).toBe(401);
    expect((await create({ 'x-ftl-csrf': csrf, origin: 'http://evil.example' })).status).toBe(401);
    expect((await create({ 'x-ftl-csrf': csrf, origin: url })).status).toBe(201);
  });

  test('logout needs the CSRF token and ends the session for good', async () => {
    const { url } = await start();
    const { cookie, csrf } = await login(url);
    expect((await raw(url, '/console/logout', { method: 'POST', headers: { cookie } })).status).toBe(403);
    const out = await raw(url, '/console/logout', { method: 'POST', headers: { cookie, 'x-ftl-csrf': csrf, origin: url } });
    expect(out.status).toBe(204);
    expect(String(out.headers['set-cookie'])).toContain('Max-Age=0');
    expect((await fetch(`${url}/api/runs`, { headers: { cookie } })).status).toBe(401);
    expect((await raw(url, '/', { headers: { cookie } })).body).toContain('action="/console/login"');
  });
});

describe('console files', () => {
  test.each([
    ['/assets/index-abc123.js', 200, 'text/javascript; charset=utf-8', 'public, max-age=31536000, immutable'],
    ['/assets/index-abc123.css', 200, 'text/css; charset=utf-8', 'public, max-age=31536000, immutable'],
    ['/console/login.css', 200, 'text/css; charset=utf-8', 'no-cache'],
  ])('%s is served as %i %s with cache-control %s', async (path, status, type, cache) => {
    const { url } = await start();
    const res = await raw(url, path);
    expect([res.status, res.headers['content-type'], res.headers['cache-control']]).toEqual([status, type, cache]);
  });

  test.each([
    '/assets/../../secret.txt',
    '/assets/%2e%2e/%2e%2e/secret.txt',
    '/assets/..%2f..%2fsecret.txt',
    '/console/../../secret.txt',
    '/assets/.hidden.js',
    '/assets/notes.txt',
    '/assets/missing.js',
    '/assets/',
  ])('%s is not served', async (path) => {
    const { url } = await start();
    const res = await raw(url, path);
    expect(res.status).toBe(404);
    expect(res.body).not.toContain('outside the console folder');
  });
});

describe('console live channel', () => {
  test('refuses a handshake without a session, and one from another origin', async () => {
    const { url } = await start();
    const anonymous = connect(url);
    expect((await next<Error>(anonymous, 'connect_error')).message).toMatch(/not logged in/);
    const { cookie } = await login(url);
    const foreign = io(`${url}${OPERATOR_NAMESPACE}`, {
      path: CONSOLE_SOCKET_PATH,
      parser: createMsgpackParser(),
      transports: ['websocket'],
      reconnection: false,
      extraHeaders: { origin: 'http://evil.example', cookie },
    });
    open.push(foreign);
    await next(foreign, 'connect_error');
    expect(foreign.connected).toBe(false);
  });

  test('pushes the state at once, then the runs list and the watched run as the store records them, without counting in the sites’ bytes', async () => {
    const { server, url } = await start();
    const { cookie, csrf } = await login(url);
    const socket = connect(url, cookie);
    const state = await next<{ mode: string; runs: unknown[]; clients: unknown[] }>(socket, 'state');
    expect(state).toEqual({ mode: 'operator', runs: [], clients: [] });
    const pushed = next<Array<{ id: string; status: string }>>(socket, 'runs', (runs) => runs.length === 1);
    const created = await raw(url, '/api/runs', {
      method: 'POST',
      headers: { cookie, 'x-ftl-csrf': csrf, 'content-type': 'application/json' },
      body: '{"runId":"live-1","rounds":3}',
    });
    expect(created.status).toBe(201);
    expect((await pushed).map((r) => [r.id, r.status])).toEqual([['live-1', 'created']]);
    const watched = (await socket.emitWithAck('watch', 'live-1')) as { run: { id: string; status: string; roundSites: unknown[] } };
    expect(watched.run).toMatchObject({ id: 'live-1', status: 'created', roundSites: [] });
    expect(await socket.emitWithAck('watch', '../x')).toEqual({ error: expect.stringMatching(/run id/) });
    const stopped = next<{ id: string; status: string }>(socket, 'run', (r) => r.status === 'stopped');
    await socket.emitWithAck('watch', 'live-1');
    server.stopRun('live-1');
    expect((await stopped).id).toBe('live-1');
    expect(server.bytes).toEqual({ sent: 0, received: 0 });
  });

  test('a one-run coordinator serves the page read-only on loopback, and not at all on a network address', async () => {
    const local = await start({});
    expect((await raw(local.url, '/')).body).toBe('<!doctype html><title>console</title>');
    expect(await fetch(`${local.url}/console/session`).then((r) => r.json())).toEqual({ mode: 'read-only' });
    expect((await raw(local.url, '/console/login', { method: 'POST', body: `token=${TOKEN}` })).status).toBe(404);
    expect((await next<{ mode: string }>(connect(local.url), 'state')).mode).toBe('read-only');
    const network = await start({ host: '0.0.0.0' });
    const page = await raw(network.url, '/');
    expect(page.status).toBe(404);
    expect(page.body).toContain('loopback');
    expect((await raw(network.url, '/assets/index-abc123.js')).status).toBe(404);
  });
});

describe('console sessions', () => {
  test('end after their idle time, never outlive their maximum age, and the oldest goes when there are too many', () => {
    let now = 0;
    const sessions = new ConsoleSessions({ idleMs: 100, maxAgeMs: 250, maxSessions: 2, now: () => now });
    const a = sessions.create();
    now = 90;
    expect(sessions.get(a.id)).toBe(a);
    now = 180;
    expect(sessions.get(a.id)).toBe(a);
    now = 249;
    expect(sessions.get(a.id)).toBe(a);
    now = 250;
    expect(sessions.get(a.id)).toBeUndefined();
    const b = sessions.create();
    now = 351;
    expect(sessions.get(b.id)).toBeUndefined();
    const c = sessions.create();
    const d = sessions.create();
    const e = sessions.create();
    expect([sessions.get(c.id), sessions.get(d.id)?.id, sessions.get(e.id)?.id]).toEqual([undefined, d.id, e.id]);
    expect(new Set([c.id, d.id, e.id, c.csrf]).size).toBe(4);
  });
});
