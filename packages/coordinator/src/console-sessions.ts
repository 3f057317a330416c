import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** The console's session cookie: a random id that names a server-side session, never the operator token. */
export const SESSION_COOKIE = 'ftl-session';

/** The header a console request that changes state carries its session's CSRF token in. */
export const CSRF_HEADER = 'x-ftl-csrf';

/** One operator's console session, kept in the server's memory only (a restart logs everyone out). */
export interface ConsoleSession {
  /** The cookie's value: 32 random bytes, base64url. */
  id: string;
  /** Sent back with every state-changing request (header {@link CSRF_HEADER}); 32 random bytes, base64url. */
  csrf: string;
  /** `Date.now()` after which the session is gone, moved on at each use up to {@link SessionOptions.maxAgeMs}. */
  expiresAt: number;
  /** `Date.now()` at login: no session outlives `createdAt + maxAgeMs`, however busy. */
  createdAt: number;
}

/** How long sessions live, and how many the server keeps. */
export interface SessionOptions {
  /** A session unused this long is gone (default 2 h). */
  idleMs: number;
  /** No session lives longer than this from its login (default 12 h). */
  maxAgeMs: number;
  /** At most this many live sessions; a login beyond it ends the oldest (default 64). */
  maxSessions: number;
  /** The clock (tests move it). */
  now: () => number;
}

const DEFAULTS: SessionOptions = { idleMs: 2 * 3600_000, maxAgeMs: 12 * 3600_000, maxSessions: 64, now: Date.now };

const randomId = () => randomBytes(32).toString('base64url');

/** Whether two strings are equal, compared in constant time for equal lengths. */
export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The request's cookies by name (the first of a repeated name wins); malformed pairs are skipped. */
export function requestCookies(req: IncomingMessage): Map<string, string> {
  const cookies = new Map<string, string>();
  for (const pair of (req.headers.cookie ?? '').split(';')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    const name = pair.slice(0, eq).trim();
    if (!cookies.has(name)) cookies.set(name, pair.slice(eq + 1).trim());
  }
  return cookies;
}

/**
 * The console's sessions: a login creates one (random id for the cookie, random CSRF token), each use
 * moves its expiry on, logout or expiry ends it. Ids are looked up in a map, so a guessed or stale cookie
 * finds nothing; nothing about a session is derived from the operator token.
 *
 * @example
 * const sessions = new ConsoleSessions();
 * const s = sessions.create();               // Set-Cookie: ftl-session=<s.id>; HttpOnly; SameSite=Strict
 * sessions.fromRequest(req)?.csrf === req.headers['x-ftl-csrf'];
 */
export class ConsoleSessions {
  private readonly sessions = new Map<string, ConsoleSession>();
  private readonly options: SessionOptions;

  constructor(options: Partial<SessionOptions> = {}) {
    this.options = { ...DEFAULTS, ...options };
  }

  /** Seconds a new session's cookie may live (its absolute limit; the server ends it sooner when idle). */
  get cookieMaxAgeSeconds(): number {
    return Math.floor(this.options.maxAgeMs / 1000);
  }

  /** How many sessions are live now. */
  get size(): number {
    this.sweep();
    return this.sessions.size;
  }

  /** A new session; the oldest one ends when there are already `maxSessions`. */
  create(): ConsoleSession {
    this.sweep();
    while (this.sessions.size >= this.options.maxSessions) this.sessions.delete(this.sessions.keys().next().value!);
    const now = this.options.now();
    const session = { id: randomId(), csrf: randomId(), createdAt: now, expiresAt: now + this.options.idleMs };
    this.sessions.set(session.id, session);
    return session;
  }

  /** The live session of `id`, its expiry moved on; undefined for an unknown or expired id. */
  get(id: string | undefined): ConsoleSession | undefined {
    if (id === undefined) return undefined;
    const session = this.sessions.get(id);
    if (!session) return undefined;
    const now = this.options.now();
    if (now >= session.expiresAt) {
      this.sessions.delete(id);
      return undefined;
    }
    session.expiresAt = Math.min(now + this.options.idleMs, session.createdAt + this.options.maxAgeMs);
    return session;
  }

  /** The live session the request's cookie names, if any. */
  fromRequest(req: IncomingMessage): ConsoleSession | undefined {
    return this.get(requestCookies(req).get(SESSION_COOKIE));
  }

  /** Ends a session (logout). */
  end(id: string): void {
    this.sessions.delete(id);
  }

  /** Ends every session (the server closes). */
  clear(): void {
    this.sessions.clear();
  }

  private sweep(): void {
    const now = this.options.now();
    for (const [id, s] of this.sessions) if (now >= s.expiresAt) this.sessions.delete(id);
  }
}
