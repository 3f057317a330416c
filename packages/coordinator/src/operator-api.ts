import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { ErrorCode, FtlError, isFtlError, type Logger } from '@ftl/shared';
import type { ModelArchive } from './model-archive.js';
import { decodePathSegment, requestUrl } from './request-target.js';

/** Request bodies above this are refused (a run configuration is a few hundred bytes). */
const MAX_BODY_BYTES = 1024 * 1024;

/**
 * HTTP status of every error code: 4xx when the request is at fault, 500 when the server is. Codes that
 * belong to the sites' channel or to start-up never come from a request's input, so if one reaches the
 * API it is the server's fault. A new code must be placed here (the type requires every code).
 */
export const HTTP_STATUS: Readonly<Record<ErrorCode, number>> = {
  [ErrorCode.InvalidConfig]: 400,
  [ErrorCode.InvalidMessage]: 400,
  [ErrorCode.Unauthorized]: 401,
  [ErrorCode.NotFound]: 404,
  [ErrorCode.Conflict]: 409,
  [ErrorCode.StorageError]: 500,
  [ErrorCode.InternalError]: 500,
  [ErrorCode.BackendUnavailable]: 500,
  [ErrorCode.ProtocolMismatch]: 500,
  [ErrorCode.WeightsMismatch]: 500,
  [ErrorCode.NonFiniteWeights]: 500,
  [ErrorCode.SampleCount]: 500,
  [ErrorCode.BackboneDigestMismatch]: 500,
  [ErrorCode.BackboneLoad]: 500,
  [ErrorCode.Dataset]: 500,
  [ErrorCode.Timeout]: 500,
  [ErrorCode.Quorum]: 500,
};

/**
 * The body of a 500: one short line that names no file and no internal detail (those go to the server's
 * log, once, as `api-error`).
 */
function serverFaultMessage(code: ErrorCode): string {
  return code === ErrorCode.StorageError
    ? 'storage error: the coordinator could not read or write its database; its log has the details (api-error)'
    : 'internal error: the coordinator could not answer this request; its log has the details (api-error)';
}

/** The API's error body: `{ "error": { "code": "NOT_FOUND", "message": "no run \"x\"; …" } }`. */
export interface ApiError {
  error: { code: string; message: string };
}

/**
 * What the API operates on: the server's clients and runs (the coordinator server implements it). Bodies
 * are answered as JSON as they come.
 */
export interface OperatorBackend {
  /** Whether `token` is the operator token; 'disabled' when the server has no operator API. */
  operatorAllowed(token: string | undefined): boolean | 'disabled';
  /** Whether the request carries an operator console session allowed to make it (console-server.ts). */
  sessionAllowed?(req: IncomingMessage): boolean;
  clientViews(): unknown;
  addClient(name: string): unknown;
  revokeClient(name: string): void;
  listRuns(): unknown;
  createRun(body: unknown): { id: string };
  runView(id: string): unknown;
  /** Each site's last state in run `id`. */
  runSites(id: string): unknown;
  startRun(id: string, mode: 'start' | 'resume'): unknown;
  pauseRun(id: string): void;
  stopRun(id: string): void;
  modelArchive(id: string): Promise<ModelArchive>;
}

type Handler = (server: OperatorBackend, params: string[], req: IncomingMessage) => Promise<Reply> | Reply;
type Reply = { status: number; body: unknown } | { status: number; stream: ModelArchive };

const json = (status: number, body: unknown): Reply => ({ status, body });

/** Routes: method, path pattern (segments captured in order), handler. docs/api.md describes each. */
const ROUTES: Array<[string, RegExp, Handler]> = [
  ['GET', /^\/api\/clients$/, (s) => json(200, { clients: s.clientViews() })],
  [
    'POST',
    /^\/api\/clients$/,
    async (s, _, req) => {
      const body = await readJson(req);
      const name = (body as { name?: unknown } | undefined)?.name;
      return json(201, s.addClient(name as string));
    },
  ],
  [
    'POST',
    /^\/api\/clients\/([^/]+)\/revoke$/,
    (s, [name]) => {
      s.revokeClient(name!);
      return json(200, { name, revoked: true });
    },
  ],
  ['GET', /^\/api\/runs$/, (s) => json(200, { runs: s.listRuns() })],
  [
    'POST',
    /^\/api\/runs$/,
    async (s, _, req) => {
      const run = s.createRun(await readJson(req));
      return json(201, s.runView(run.id));
    },
  ],
  ['GET', /^\/api\/runs\/([^/]+)$/, (s, [id]) => json(200, s.runView(id!))],
  ['GET', /^\/api\/runs\/([^/]+)\/sites$/, (s, [id]) => json(200, { sites: s.runSites(id!) })],
  [
    'POST',
    /^\/api\/runs\/([^/]+)\/(start|resume|pause|stop)$/,
    (s, [id, action]) => {
      if (action === 'start' || action === 'resume') s.startRun(id!, action);
      else if (action === 'pause') s.pauseRun(id!);
      else s.stopRun(id!);
      return json(202, s.runView(id!));
    },
  ],
  ['GET', /^\/api\/runs\/([^/]+)\/model$/, async (s, [id]) => ({ status: 200, stream: await s.modelArchive(id!) })],
];

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new FtlError(ErrorCode.InvalidMessage, `request body exceeds ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new FtlError(ErrorCode.InvalidMessage, `request body is not valid JSON (${(err as Error).message})`);
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  const body: ApiError = { error: { code, message } };
  send(res, status, body);
}

/**
 * The operator REST API under `/api`: clients (register, revoke, list) and runs (create, start, pause,
 * resume, stop, list, get, model download). Every route needs `Authorization: Bearer <operator token>`;
 * errors come back as {@link ApiError} with a status that matches their code.
 */
export async function handleOperatorApi(server: OperatorBackend, req: IncomingMessage, res: ServerResponse, log: Logger): Promise<void> {
  let path = '/api';
  try {
    path = requestUrl(req).pathname.replace(/\/+$/, '');
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1]?.trim();
    // The console's calls carry its session cookie (and CSRF token) instead of the token itself.
    const allowed = bearer === undefined && server.sessionAllowed?.(req) === true ? true : server.operatorAllowed(bearer);
    if (allowed === 'disabled') {
      return sendError(res, 404, ErrorCode.NotFound, 'the operator API is off in this mode; start the coordinator with: ftl-coordinator serve');
    }
    if (!allowed) {
      log.warn('api-unauthorized', { method: req.method, path });
      return sendError(
        res,
        401,
        ErrorCode.Unauthorized,
        'missing or wrong operator token: send "Authorization: Bearer <token>" with the token serve printed at start (the file operator-token beside its --db, or FTL_OPERATOR_TOKEN)',
      );
    }
    const matches = ROUTES.map(([method, pattern, handler]) => ({ method, handler, m: pattern.exec(path) })).filter((r) => r.m);
    const route = matches.find((r) => r.method === req.method);
    if (!route) {
      if (matches.length > 0)
        return sendError(res, 405, 'METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}; use ${matches.map((r) => r.method).join(' or ')}`);
      return sendError(res, 404, ErrorCode.NotFound, `no API route ${req.method} ${path} (see docs/api.md)`);
    }
    const reply = await route.handler(server, route.m!.slice(1).map(decodePathSegment), req);
    // Debug, not info: a watching CLI polls every second, and its requests would bury the run's own lines.
    log.debug('api', { method: req.method, path, status: reply.status });
    if ('stream' in reply) {
      res.writeHead(200, { 'content-type': 'application/gzip', 'content-disposition': `attachment; filename="${reply.stream.fileName}"` });
      await pipeline(reply.stream.stream, res);
      return;
    }
    send(res, reply.status, reply.body);
  } catch (err) {
    if (res.headersSent) {
      log.error('api-stream-failed', { path, detail: (err as Error).message });
      res.destroy();
      return;
    }
    const code = isFtlError(err) ? err.code : ErrorCode.InternalError;
    const status = HTTP_STATUS[code] ?? 500;
    if (status < 500) return sendError(res, status, code, (err as Error).message);
    // The server's fault: the detail (a file path, a SQLite message) is logged once, the caller gets a line.
    log.error('api-error', { method: req.method, path, code, detail: err instanceof Error ? err.message : String(err) });
    sendError(res, status, code, serverFaultMessage(code));
  }
}
