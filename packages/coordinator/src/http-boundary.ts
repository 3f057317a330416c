import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode, isFtlError, type Logger } from '@ftl/shared';
import { serveBackbone, type ServedBackbone } from './backbone-server.js';
import { quoteTarget as quote, requestUrl } from './request-target.js';

/** Any request handler: it may answer synchronously or from a promise. */
export type HttpHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

/** Errors that come from the request itself (its target or encoding), not from a fault of the server. */
function isBadRequest(err: unknown): boolean {
  if (isFtlError(err, ErrorCode.InvalidMessage)) return true;
  if (err instanceof URIError) return true;
  return err instanceof TypeError && (err as TypeError & { code?: unknown }).code === 'ERR_INVALID_URL';
}

/**
 * Wraps a request handler so that nothing a request does escapes to the process: a synchronous throw or
 * a rejected promise from a bad target or encoding answers 400, anything else 500 and is logged once
 * (`http-error`, the message only). A response already started cannot take a status any more: it is cut
 * off (so a partial body never looks complete) rather than written twice.
 *
 * @example
 * const server = http.createServer(withErrorBoundary((req, res) => route(req, res), log));
 */
export function withErrorBoundary(handler: HttpHandler, log: Logger): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const fail = (err: unknown) => answerError(req, res, err, log);
    try {
      const pending = handler(req, res);
      if (pending !== undefined && typeof (pending as Promise<void>).then === 'function') (pending as Promise<void>).catch(fail);
    } catch (err) {
      fail(err);
    }
  };
}

function answerError(req: IncomingMessage, res: ServerResponse, err: unknown, log: Logger): void {
  const bad = isBadRequest(err);
  const message = err instanceof Error ? err.message : String(err);
  // The target is the peer's text: only its start is kept (the logger escapes what it holds).
  if (!bad) log.error('http-error', { method: req.method, target: (req.url ?? '').slice(0, 200), detail: message });
  if (res.headersSent || res.writableEnded) {
    if (!res.writableEnded) res.destroy();
    return;
  }
  const text = bad
    ? `bad request: ${isFtlError(err) ? err.message : `malformed request target ${quote(req.url ?? '')}; send a valid URL path`}\n`
    : 'internal error: the coordinator could not answer this request; its log has the details (http-error)\n';
  try {
    res.writeHead(bad ? 400 : 500, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-store',
    });
    res.end(req.method === 'HEAD' ? undefined : text);
  } catch {
    res.destroy(); // a handler left the response in a state that takes no answer: close it rather than throw here
  }
}

/** What {@link createHttpHandler} routes to. */
export interface HttpRoutes {
  /** The backbone's files under `/backbone`. */
  backbone: ServedBackbone;
  /** The operator API under `/api` (it answers 404 itself when the mode has none). */
  api: HttpHandler;
  /** `/healthz`, `/readyz` and `/metrics` (probe-routes.ts): answers its own paths, undefined for any other. */
  probes?: (req: IncomingMessage, res: ServerResponse) => Promise<void> | undefined;
  /** The operator console (console-server.ts): answers its own paths, undefined for any other. */
  console?: (req: IncomingMessage, res: ServerResponse) => Promise<void> | undefined;
  log: Logger;
}

/**
 * The coordinator's whole HTTP edge inside one error boundary: the backbone files, the operator API under
 * `/api`, 404 for anything else, and 400 for a target that is no URL before any route sees it.
 *
 * @example
 * const handle = createHttpHandler({ backbone, api: (req, res) => handleOperatorApi(server, req, res, log), log });
 * http.createServer(handle);
 */
export function createHttpHandler(routes: HttpRoutes): (req: IncomingMessage, res: ServerResponse) => void {
  return withErrorBoundary((req, res) => {
    const { pathname } = requestUrl(req);
    if (serveBackbone(routes.backbone, req, res)) return;
    if (pathname === '/api' || pathname.startsWith('/api/')) return routes.api(req, res);
    const probe = routes.probes?.(req, res);
    if (probe) return probe;
    const page = routes.console?.(req, res);
    if (page) return page;
    const text = 'not found\n';
    res.writeHead(404, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text) });
    res.end(req.method === 'HEAD' ? undefined : text);
  }, routes.log);
}
