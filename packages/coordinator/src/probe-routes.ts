import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '@ftl/shared';
import type { CoordinatorMetrics } from './metrics.js';
import { checkReadiness, type ReadinessSource } from './readiness.js';
import { requestUrl } from './request-target.js';

/** The paths {@link handleProbe} answers. */
export const PROBE_PATHS = ['/healthz', '/readyz', '/metrics'] as const;

/** What the probes read, and who may read the metrics. */
export interface ProbeTarget extends ReadinessSource {
  metrics: CoordinatorMetrics;
  /**
   * Who may read `/metrics` here: `open` on the metrics port of its own (`--metrics-port`), otherwise the
   * operator API's check of a bearer token (`disabled` when the server has no operator token).
   */
  metricsAccess: 'open' | ((token: string | undefined) => boolean | 'disabled');
  log: Logger;
}

function reply(req: IncomingMessage, res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...headers });
  res.end(req.method === 'HEAD' ? undefined : body);
}

const JSON_TYPE = 'application/json; charset=utf-8';
const TEXT_TYPE = 'text/plain; charset=utf-8';

/**
 * The coordinator's probes, in both modes: `/healthz` (the process answers: 200 `{"status":"ok"}`),
 * `/readyz` (200 when the database takes a write and the backbone is loaded, else 503 naming the failing
 * check; readiness.ts), neither needing a token, and `/metrics` (Prometheus text format, metrics.ts) behind
 * the operator token or on a port of its own. Returns undefined for any other path, so the caller routes it.
 *
 * @example
 * const probe = handleProbe(req, res, target);
 * if (probe) return probe;
 */
export function handleProbe(req: IncomingMessage, res: ServerResponse, target: ProbeTarget): Promise<void> | undefined {
  const path = requestUrl(req).pathname;
  if (!(PROBE_PATHS as readonly string[]).includes(path)) return undefined;
  return answer(req, res, path, target);
}

/** Whether the last readiness answer was ready: failures are logged when it changes, not at every probe. */
const lastReady = new WeakMap<ProbeTarget, boolean>();

async function answer(req: IncomingMessage, res: ServerResponse, path: string, target: ProbeTarget): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    return reply(req, res, 405, TEXT_TYPE, `${req.method} is not allowed on ${path}; use GET or HEAD\n`, { allow: 'GET, HEAD' });
  }
  if (path === '/healthz') return reply(req, res, 200, JSON_TYPE, `${JSON.stringify({ status: 'ok' })}\n`);
  if (path === '/readyz') {
    const { readiness, detail } = checkReadiness(target);
    const ready = readiness.status === 'ready';
    if (lastReady.get(target) !== ready) {
      if (ready) target.log.info('readiness', { status: readiness.status });
      else target.log.warn('readiness-failed', { failing: readiness.failing.join(','), ...(detail ? { detail } : {}) });
      lastReady.set(target, ready);
    }
    return reply(req, res, ready ? 200 : 503, JSON_TYPE, `${JSON.stringify(readiness)}\n`);
  }
  if (target.metricsAccess !== 'open') {
    const allowed = target.metricsAccess(/^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1]?.trim());
    if (allowed === 'disabled') {
      return reply(
        req,
        res,
        404,
        TEXT_TYPE,
        'metrics on this port need the operator token, and this mode has none; start the coordinator with --metrics-port N to serve them on a port of their own\n',
      );
    }
    if (!allowed) {
      target.log.warn('metrics-unauthorized', { method: req.method, path });
      return reply(
        req,
        res,
        401,
        TEXT_TYPE,
        'missing or wrong operator token: scrape /metrics with "Authorization: Bearer <operator token>" (Prometheus: authorization.credentials_file), or serve it on --metrics-port\n',
        { 'www-authenticate': 'Bearer' },
      );
    }
  }
  const text = await target.metrics.text();
  target.log.debug('metrics-scraped', { bytes: Buffer.byteLength(text) });
  return reply(req, res, 200, target.metrics.contentType, text);
}
