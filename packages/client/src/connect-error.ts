import { tlsFailure } from '@ftl/shared';
import { oneLine } from './one-line.js';

/** A failed connection attempt, as the site's operator needs it: what went wrong, and whether retrying can help. */
export interface ConnectFailure {
  /** One line: what went wrong and what to do. */
  message: string;
  /** True when no retry can succeed until someone changes something (a certificate, a flag). */
  final: boolean;
}

const NO_ROUTE = new Set(['ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN']);

/**
 * Reads a socket.io `connect_error` (engine.io wraps the network's error as "websocket error", the same
 * text for every cause) down to its cause: a certificate the client does not trust is final (retrying
 * cannot fix it); a refused port, a failed DNS lookup or an unreachable host may be passing, so they are
 * retried, each with its own text.
 *
 * @example
 * describeConnectError(err, 'https://coordinator:8443', false)
 * // { final: true, message: "the coordinator's certificate is not trusted (self-signed certificate); pass its CA with --ca-file" }
 */
export function describeConnectError(err: unknown, serverUrl: string, caGiven: boolean): ConnectFailure {
  const description = (err as { description?: { error?: unknown; message?: unknown } } | undefined)?.description;
  const cause = (description?.error ?? description) as { code?: unknown; message?: unknown } | undefined;
  const code = typeof cause?.code === 'string' ? cause.code : '';
  const why = oneLine(typeof cause?.message === 'string' && cause.message ? cause.message : err instanceof Error ? err.message : String(err), 200);
  const url = safeUrl(serverUrl);
  const host = url ? url.hostname.replace(/^\[|\]$/g, '') : serverUrl;
  const where = url ? `${host}:${url.port || (url.protocol === 'https:' ? '443' : '80')}` : serverUrl;
  const refused = tlsFailure(code);
  if (refused === 'untrusted') {
    return {
      final: true,
      message: caGiven
        ? `the coordinator's certificate is not trusted (${why}); the --ca-file given did not sign it: pass the CA that did, or the coordinator's own certificate`
        : `the coordinator's certificate is not trusted (${why}); pass its CA with --ca-file`,
    };
  }
  if (refused === 'not-valid-now') {
    return {
      final: true,
      message: `the coordinator's certificate is not valid now (${why}); ask its operator to renew it, and check this machine's clock`,
    };
  }
  if (refused === 'wrong-name') {
    return { final: true, message: `the coordinator's certificate is not issued for ${host} (${why}); use a --server address the certificate lists` };
  }
  if (/wrong version number|packet length too long|unknown protocol/i.test(why)) {
    return {
      final: true,
      message: `the coordinator at ${where} does not speak TLS (${why}); use an http:// --server URL, or start the coordinator with a certificate`,
    };
  }
  if (code === 'ECONNREFUSED')
    return { final: false, message: `nothing is listening at ${where} (connection refused); is the coordinator running there?` };
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME') {
    return {
      final: false,
      message: `cannot resolve the host ${host} (DNS lookup failed: ${code}); check the --server address and this machine's network`,
    };
  }
  if (NO_ROUTE.has(code))
    return { final: false, message: `cannot reach ${where} (${code}); check the network between this site and the coordinator` };
  if (code === 'ECONNRESET' && url?.protocol === 'http:') {
    return {
      final: false,
      message: `the connection to ${where} was closed during the handshake (${why}); if the coordinator serves https, use an https:// --server URL`,
    };
  }
  if (why === 'timeout') return { final: false, message: `the coordinator at ${where} did not answer the connection in time` };
  return { final: false, message: `connecting to ${where} failed (${why})` };
}

function safeUrl(text: string): URL | undefined {
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}
