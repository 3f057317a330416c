import { mkdir, readdir } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { pipeline } from 'node:stream/promises';
import { extract as extractTar } from 'tar';
import { ErrorCode, FtlError } from '@ftl/shared';

/** Where the operator API is and how to authenticate to it. */
export interface ApiTarget {
  /** Base URL of the coordinator, e.g. `http://127.0.0.1:8080`. */
  url: string;
  /** The operator token, or where to read it: undefined while it does not exist yet (a server still starting). */
  token: string | (() => string | undefined);
  /**
   * How long to keep trying while the coordinator is not up yet (connection refused, token file not
   * written yet), so a script can start `serve` and use it right away. Default 15 s; 0 fails at once.
   */
  waitMs?: number;
  /** CA certificate(s) (PEM) to trust for an https coordinator. */
  ca?: Buffer;
}

/** Error codes the API sends that map onto ftl's own; others become INVALID_MESSAGE. */
const KNOWN_CODES = new Set<string>(Object.values(ErrorCode));

/**
 * A small client of the operator REST API (docs/api.md). node:http(s) rather than fetch, so a private
 * CA can be trusted per request.
 */
export class ApiClient {
  constructor(private readonly target: ApiTarget) {}

  /** Calls the API and returns the parsed JSON body; an error body becomes an FtlError with its code and message. */
  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.send(method, path, body);
    const text = (await readAll(res)).toString('utf8');
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      throw new FtlError(ErrorCode.InvalidMessage, `${method} ${path}: the coordinator answered ${res.statusCode} with a non-JSON body; is --url an ftl coordinator?`);
    }
    if ((res.statusCode ?? 500) >= 400) throw apiError(res.statusCode ?? 500, parsed);
    return parsed as T;
  }

  /** Calls the API for a binary body (the model archive). */
  async download(path: string): Promise<IncomingMessage> {
    const res = await this.send('GET', path);
    if ((res.statusCode ?? 500) >= 400) {
      const text = (await readAll(res)).toString('utf8');
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      throw apiError(res.statusCode ?? 500, parsed);
    }
    return res;
  }

  /**
   * Downloads a run's global model archive and unpacks it into `dir` (a TensorFlow.js folder that
   * `tf.loadLayersModel` loads, plus `ftl-model.json`); returns the file names.
   */
  async downloadModel(runId: string, dir: string): Promise<string[]> {
    const res = await this.download(`/api/runs/${encodeURIComponent(runId)}/model`);
    if (res.headers['content-type'] !== 'application/gzip') {
      throw new FtlError(ErrorCode.InvalidMessage, `the model download of run ${runId} came as ${res.headers['content-type']}, not a gzipped tar`);
    }
    await mkdir(dir, { recursive: true });
    await pipeline(res, extractTar({ cwd: dir, strict: true }));
    return (await readdir(dir)).sort();
  }

  private async send(method: string, path: string, body?: unknown): Promise<IncomingMessage> {
    const deadline = performance.now() + (this.target.waitMs ?? 15_000);
    for (;;) {
      const token = typeof this.target.token === 'function' ? this.target.token() : this.target.token;
      try {
        if (token === undefined) {
          throw new FtlError(ErrorCode.Unauthorized, 'no operator token: give --token-file, set FTL_OPERATOR_TOKEN, or run where serve wrote .ftl/operator-token');
        }
        return await this.sendOnce(method, path, token, body);
      } catch (err) {
        const starting = token === undefined || (err as { cause?: { code?: string } }).cause?.code === 'ECONNREFUSED';
        if (!starting || performance.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  private sendOnce(method: string, path: string, token: string, body?: unknown): Promise<IncomingMessage> {
    const url = new URL(path, this.target.url);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(url, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          accept: 'application/json',
          ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
        },
        ...(this.target.ca ? { ca: this.target.ca } : {}),
        timeout: 30_000,
      }, resolve);
      req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
      req.on('error', (err) => reject(new FtlError(
        ErrorCode.Timeout, `cannot reach the coordinator at ${this.target.url} (${err.message}); is "ftl-coordinator serve" running there?`, { cause: err },
      )));
      req.end(payload);
    });
  }
}

function apiError(status: number, body: unknown): FtlError {
  const e = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const code = typeof e?.code === 'string' && KNOWN_CODES.has(e.code) ? (e.code as ErrorCode) : ErrorCode.InvalidMessage;
  const message = typeof e?.message === 'string' ? e.message : `the coordinator answered HTTP ${status}`;
  return new FtlError(code, message);
}

async function readAll(res: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of res as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}
