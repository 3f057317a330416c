import { ErrorCode, FtlError, parseHandshakeAuth, type ConnectRefusal, type HandshakeAuth, type Logger } from '@ftl/shared';
import { tokenMatches } from './client-tokens.js';
import type { CoordinatorConfig } from './config.js';
import type { Store } from './store/store.js';

/** Whether `host` is a loopback address (or name), reachable only from this machine. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Checks at start-up that the server's client auth makes sense where it listens: tokens need a store,
 * and a server without tokens listens only on loopback unless the operator insists (`--insecure-open`).
 */
export function checkAuthPolicy(config: CoordinatorConfig, store: Store | undefined, log: Logger): void {
  if (config.requireAuth && !store) {
    throw new FtlError(ErrorCode.InvalidConfig, 'client auth checks tokens in the database: give --db too');
  }
  if (!config.requireAuth && !isLoopback(config.host)) {
    if (!config.insecureOpen) {
      throw new FtlError(
        ErrorCode.InvalidConfig,
        `clients without tokens are accepted only on a loopback address, not on --host ${config.host}; register sites with ` +
          '"clients add" and give --require-auth, or pass --insecure-open to let anyone who reaches the port join',
      );
    }
    log.warn('auth-disabled-on-network', {
      host: config.host,
      detail: 'INSECURE: anyone who reaches this port may join as any site and replace it (--insecure-open)',
    });
  } else if (!config.requireAuth) {
    log.warn('auth-disabled', { detail: 'any local client may join; use --require-auth with tokens from "clients add"' });
  }
}

/** The part of a socket.io socket the handshake check uses. */
interface HandshakeSocket {
  handshake: { auth: unknown };
  data: unknown;
  conn: { close(): void };
}

/**
 * The socket.io middleware every connection passes before `connection`: the handshake parsed (protocol,
 * site name), and with `requireAuth` the site's token checked against the store. Every refusal happens
 * here, so a refused client never receives a model byte.
 */
export function handshakeAuth(o: { requireAuth: boolean; store: Store | undefined; log: Logger }) {
  return (socket: HandshakeSocket, next: (err?: Error) => void): void => {
    const refuse = (reason: ConnectRefusal, message: string) => {
      const e = new Error(message) as Error & { data: { reason: ConnectRefusal } };
      e.data = { reason };
      o.log.warn('connection-refused', { reason, detail: message });
      next(e);
      // The refusal is final: close the transport once it has carried the error (socket.io writes it on the
      // next tick; engine.io's close waits for its buffer to drain), so a refused peer holds nothing open.
      setImmediate(() => socket.conn.close());
    };
    let auth: HandshakeAuth;
    try {
      auth = parseHandshakeAuth(socket.handshake.auth);
    } catch (err) {
      refuse((err as FtlError).code === ErrorCode.ProtocolMismatch ? 'protocol-mismatch' : 'malformed-handshake', (err as Error).message);
      return;
    }
    if (o.requireAuth) {
      const known = o.store?.getClient(auth.name);
      if (!known || known.revoked || !auth.token || !tokenMatches(auth.token, known.tokenHash)) {
        refuse('unauthorized', `client "${auth.name}" is unknown, revoked or gave a wrong token; ask the operator for a token`);
        return;
      }
      o.store?.touchClient(auth.name);
    }
    (socket.data as { name: string }).name = auth.name;
    next();
  };
}
