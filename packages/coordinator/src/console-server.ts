import { readFile, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '@ftl/shared';
import { type ConsoleSession, type ConsoleSessions, CSRF_HEADER, SESSION_COOKIE, sameSecret } from './console-sessions.js';
import { requestUrl } from './request-target.js';

/**
 * What the console offers on this server: `operator` (serve: behind the operator token, with actions),
 * `read-only` (a one-run coordinator on a loopback address: the same page without login or buttons), or
 * `closed` (a one-run coordinator on a network address, which has no operator token to guard the page).
 */
export type ConsoleMode = 'operator' | 'read-only' | 'closed';

/** The built console beside this package: packages/console/dist. */
export const DEFAULT_CONSOLE_DIR = fileURLToPath(new URL('../../console/dist/', import.meta.url));

/** What the console's HTTP routes need from the server. */
export interface ConsoleHttpOptions {
  /** The built console (Vite's output folder). */
  dir: string;
  mode: ConsoleMode;
  sessions: ConsoleSessions;
  /** Whether `token` is the operator token (constant-time). */
  operatorAllowed(token: string): boolean;
  /** The server speaks TLS: the cookie is then `Secure`. */
  secure: boolean;
  log: Logger;
}

/** Files the console serves, by extension; anything else in the folder is not served. */
const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.json': 'application/json; charset=utf-8',
};

/**
 * The page's own code only: no inline script or style element, no other origin, no framing. uPlot and
 * Preact set styles through the DOM, which CSP allows.
 */
const CSP =
  "default-src 'self'; img-src 'self' data:; style-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const PAGE_HEADERS = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  // Not no-referrer: with it Chromium sends `Origin: null` on the login form's POST, which the origin check refuses.
  'referrer-policy': 'same-origin',
};

/** One file name in the folder or in `assets/`: no other folder, no dot-file, so no path leaves the folder. */
const STATIC_PATH = /^\/(?:assets\/|console\/)?[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

/** Vite names every file under `assets/` by its content's hash: a name never changes content. */
const IMMUTABLE = 'public, max-age=31536000, immutable';

/** A login body is one token; anything longer is refused before it is read on. */
const MAX_LOGIN_BYTES = 4096;

/** Failed logins allowed per client address within {@link LOGIN_WINDOW_MS} before the console answers 429. */
const MAX_LOGIN_FAILURES = 10;
const LOGIN_WINDOW_MS = 60_000;

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Whether a browser's `Origin` (when it sends one) is this server: a cross-site form or script is refused. */
export function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

/**
 * The operator console's HTTP side: the built page at `/` (behind a login form in `operator` mode), its
 * files under `/assets/` and `/console/`, login and logout, and the session check the operator API uses
 * to accept the console's calls. Sessions are server-side ({@link ConsoleSessions}); the cookie holds a
 * random id only, HttpOnly and SameSite=Strict.
 *
 * CSRF: the cookie is SameSite=Strict, so no other site's page can send it; in addition every
 * state-changing request (login, logout, the API's POSTs) must come from this origin when the browser
 * names one (`Origin`), and logout and the API's POSTs must carry the session's CSRF token in the
 * `X-Ftl-Csrf` header, which only the console's own script can read (from `/console/session`).
 *
 * @example
 * const web = new ConsoleHttp({ dir: DEFAULT_CONSOLE_DIR, mode: 'operator', sessions, operatorAllowed, secure: false, log });
 * const answer = web.handle(req, res); // undefined: not a console route
 * if (answer) return answer;
 */
export class ConsoleHttp {
  private readonly dir: string;
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly o: ConsoleHttpOptions) {
    this.dir = resolve(o.dir);
  }

  get mode(): ConsoleMode {
    return this.o.mode;
  }

  /**
   * Whether `req` may use the operator API with the console's session instead of a bearer token: a live
   * session, and for anything but GET and HEAD its CSRF token in the `X-Ftl-Csrf` header from this origin.
   */
  sessionAllows(req: IncomingMessage): boolean {
    if (this.o.mode !== 'operator') return false;
    const session = this.o.sessions.fromRequest(req);
    if (!session) return false;
    if (req.method === 'GET' || req.method === 'HEAD') return true;
    return sameOrigin(req) && this.csrfMatches(session, req.headers[CSRF_HEADER]);
  }

  /**
   * Answers the console's routes: a promise of the answer (for the caller's error boundary), or undefined
   * when `req` is not one of them and another route answers it.
   */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void> | undefined {
    const { pathname } = requestUrl(req);
    if (pathname === '/' || pathname === '/index.html') return this.page(req, res);
    if (pathname === '/console/login') return this.login(req, res);
    if (pathname === '/console/logout') return this.logout(req, res);
    if (pathname === '/console/session') return this.session(req, res);
    if ((pathname.startsWith('/assets/') || pathname.startsWith('/console/')) && this.o.mode !== 'closed') return this.file(req, res, pathname);
    return undefined;
  }

  private async page(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.onlyRead(req, res)) return;
    if (this.o.mode === 'closed') {
      return text(
        res,
        req,
        404,
        'the console of a one-run coordinator is served on a loopback address only; run ftl-coordinator serve for the console behind the operator token\n',
      );
    }
    if (this.o.mode === 'operator' && !this.o.sessions.fromRequest(req)) return this.loginPage(req, res, 200);
    const index = await this.read('index.html');
    if (index === undefined) {
      return text(res, req, 503, `the console is not built: ${resolve(this.dir, 'index.html')} is missing; run npm run build\n`);
    }
    send(res, req, 200, index, { 'content-type': CONTENT_TYPES['.html']!, 'cache-control': 'no-cache', ...PAGE_HEADERS });
  }

  private loginPage(req: IncomingMessage, res: ServerResponse, status: number, error?: string): void {
    const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ftl console: log in</title>
<link rel="stylesheet" href="/console/login.css">
<link rel="icon" href="/console/favicon.svg" type="image/svg+xml">
</head>
<body>
<main class="login">
<h1>ftl operator console</h1>
<form method="post" action="/console/login">
<label for="token">Operator token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button>
${error ? `<p role="alert" class="error">${escapeHtml(error)}</p>` : ''}
<p class="hint">The token <code>ftl-coordinator serve</code> printed at start: the file <code>operator-token</code> beside its database (<code>.ftl/operator-token</code>), or <code>FTL_OPERATOR_TOKEN</code>.</p>
</form>
</main>
</body>
</html>
`;
    send(res, req, status, Buffer.from(html), { 'content-type': CONTENT_TYPES['.html']!, 'cache-control': 'no-store', ...PAGE_HEADERS });
  }

  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST') return methodNotAllowed(req, res, 'POST');
    if (this.o.mode !== 'operator') return text(res, req, 404, 'this coordinator has no operator login; run ftl-coordinator serve\n');
    if (!sameOrigin(req)) return text(res, req, 403, 'refused: the login came from another site\n');
    const peer = req.socket.remoteAddress ?? '';
    if (this.recentFailures(peer) >= MAX_LOGIN_FAILURES) {
      return text(res, req, 429, 'too many wrong tokens from this address; wait a minute and try again\n');
    }
    const body = await readSmallBody(req, MAX_LOGIN_BYTES);
    const token = body === undefined ? undefined : new URLSearchParams(body).get('token')?.trim();
    if (!token || !this.o.operatorAllowed(token)) {
      this.failures.set(peer, [...this.recentTimes(peer), Date.now()]);
      this.o.log.warn('console-login-refused', { peer });
      const why = body === undefined ? 'the form was too large' : 'wrong operator token';
      return this.loginPage(req, res, 401, `${why}; paste the token from the operator-token file`);
    }
    this.failures.delete(peer);
    const session = this.o.sessions.create();
    this.o.log.info('console-login', { peer, sessions: this.o.sessions.size });
    res.writeHead(303, {
      location: '/',
      'set-cookie': this.cookie(session.id, this.o.sessions.cookieMaxAgeSeconds),
      'cache-control': 'no-store',
      'content-length': 0,
    });
    res.end();
  }

  private async logout(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST') return methodNotAllowed(req, res, 'POST');
    const session = this.o.sessions.fromRequest(req);
    if (session) {
      if (!sameOrigin(req) || !this.csrfMatches(session, req.headers[CSRF_HEADER])) {
        return text(res, req, 403, "refused: logout needs the session's CSRF token in the X-Ftl-Csrf header; use the console's button\n");
      }
      this.o.sessions.end(session.id);
      this.o.log.info('console-logout', {});
    }
    res.writeHead(204, { 'set-cookie': this.cookie('', 0), 'cache-control': 'no-store' });
    res.end();
  }

  /** What the page's script needs to know: the mode, and in `operator` mode the session's CSRF token. */
  private async session(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.onlyRead(req, res)) return;
    let body: unknown;
    let status = 200;
    if (this.o.mode === 'read-only') body = { mode: 'read-only' };
    else if (this.o.mode === 'closed') [status, body] = [404, { error: { code: 'NOT_FOUND', message: 'no console on this coordinator' } }];
    else {
      const session = this.o.sessions.fromRequest(req);
      if (session) body = { mode: 'operator', csrf: session.csrf };
      else [status, body] = [401, { error: { code: 'UNAUTHORIZED', message: 'not logged in; open / and log in with the operator token' } }];
    }
    send(res, req, status, Buffer.from(`${JSON.stringify(body)}\n`), { 'content-type': CONTENT_TYPES['.json']!, 'cache-control': 'no-store' });
  }

  private async file(req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void> {
    if (!this.onlyRead(req, res)) return;
    const type = CONTENT_TYPES[extname(pathname)];
    const bytes = STATIC_PATH.test(pathname) && type !== undefined ? await this.read(pathname.slice(1)) : undefined;
    if (bytes === undefined) return text(res, req, 404, 'not found\n');
    const cache = pathname.startsWith('/assets/') ? IMMUTABLE : 'no-cache';
    send(res, req, 200, bytes, { 'content-type': type!, 'cache-control': cache, 'x-content-type-options': 'nosniff' });
  }

  /** A file of the built console, or undefined when it is not there (or resolves outside the folder). */
  private async read(relative: string): Promise<Buffer | undefined> {
    const file = resolve(this.dir, relative);
    if (!file.startsWith(this.dir + sep)) return undefined;
    try {
      if (!(await stat(file)).isFile()) return undefined;
      return await readFile(file);
    } catch {
      return undefined;
    }
  }

  private onlyRead(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method === 'GET' || req.method === 'HEAD') return true;
    methodNotAllowed(req, res, 'GET, HEAD');
    return false;
  }

  private csrfMatches(session: ConsoleSession, header: string | string[] | undefined): boolean {
    return typeof header === 'string' && sameSecret(header, session.csrf);
  }

  private cookie(value: string, maxAge: number): string {
    return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${this.o.secure ? '; Secure' : ''}`;
  }

  private recentTimes(peer: string): number[] {
    const since = Date.now() - LOGIN_WINDOW_MS;
    return (this.failures.get(peer) ?? []).filter((t) => t > since);
  }

  private recentFailures(peer: string): number {
    const recent = this.recentTimes(peer);
    if (recent.length === 0) this.failures.delete(peer);
    return recent.length;
  }
}

function send(res: ServerResponse, req: IncomingMessage, status: number, body: Buffer, headers: Record<string, string>): void {
  res.writeHead(status, { ...headers, 'content-length': body.byteLength });
  res.end(req.method === 'HEAD' ? undefined : body);
}

function text(res: ServerResponse, req: IncomingMessage, status: number, body: string): void {
  send(res, req, status, Buffer.from(body), { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
}

function methodNotAllowed(req: IncomingMessage, res: ServerResponse, allow: string): void {
  res.setHeader('allow', allow);
  text(res, req, 405, `${req.method} is not allowed here; use ${allow}\n`);
}

/** The body as text, or undefined when it is longer than `max` bytes (the rest is not read). */
async function readSmallBody(req: IncomingMessage, max: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
