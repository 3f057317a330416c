import { mkdir, readdir } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { pipeline } from 'node:stream/promises';
import { extract as extractTar } from 'tar';
import { ErrorCode, FtlError, tlsFailure } from '@ftl/shared';

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
  /** Where the token came from, e.g. `--token-file ops/token`: messages about the token name it. */
  tokenFrom?: string;
  /** The file `ca` was read from, for messages. */
  caFile?: string;
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
      throw new FtlError(
        ErrorCode.InvalidMessage,
        `${method} ${path}: the coordinator answered ${res.statusCode} with a non-JSON body; is --url an ftl coordinator?`,
      );
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
      const token = (typeof this.target.token === 'function' ? this.target.token() : this.target.token) || undefined;
      try {
        if (token === undefined) throw this.noToken();
        const res = await this.sendOnce(method, path, token, body);
        if (res.statusCode === 401) {
          res.resume();
          throw new FtlError(
            ErrorCode.Unauthorized,
            `the coordinator at ${this.target.url} refused the operator token from ${this.target.tokenFrom ?? 'the caller'}; ` +
              'use the token file that serve printed when it started (--token-file FILE, or --db with its database)',
          );
        }
        return res;
      } catch (err) {
        const starting = token === undefined || (err as { cause?: { code?: string } }).cause?.code === 'ECONNREFUSED';
        if (!starting || performance.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  private noToken(): FtlError {
    return new FtlError(
      ErrorCode.Unauthorized,
      `no operator token in ${this.target.tokenFrom ?? 'the target'}; serve writes it beside its --db (it prints the file when it starts): ` +
        'pass --token-file FILE, or --db with the database serve uses, or set FTL_OPERATOR_TOKEN',
    );
  }

  private sendOnce(method: string, path: string, token: string, body?: unknown): Promise<IncomingMessage> {
    const url = new URL(path, this.target.url);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        {
          method,
          headers: {
            authorization: `Bearer ${token}`,
            accept: 'application/json',
            ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
          },
          ...(this.target.ca ? { ca: this.target.ca } : {}),
          timeout: 30_000,
        },
        resolve,
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error('no answer within 30 s'), { code: 'ETIMEDOUT' })));
      req.on('error', (err) => reject(connectionError(err as NodeJS.ErrnoException, this.target)));
      req.end(payload);
    });
  }
}

/** Why a request never got an answer, said so the operator knows which flag to change. */
function connectionError(err: NodeJS.ErrnoException, target: ApiTarget): FtlError {
  const url = target.url;
  const code = err.code ?? '';
  const detail = `${err.message}${code && !err.message.includes(code) ? `, ${code}` : ''}`;
  const https = url.startsWith('https:');
  let message: string;
  let kind: ErrorCode = ErrorCode.Timeout;
  const refused = tlsFailure(code);
  if (refused === 'untrusted') {
    kind = ErrorCode.InvalidConfig;
    message =
      `the certificate of ${url} is not trusted${target.caFile ? ` by --ca-file ${target.caFile}` : ''} (${detail}); ` +
      "pass --ca-file with the CA certificate (PEM) that signed it, or for a self-signed certificate the certificate itself (serve's --tls-cert)";
  } else if (refused === 'wrong-name') {
    kind = ErrorCode.InvalidConfig;
    message = `the certificate of ${url} is not made out to ${new URL(url).hostname} (${detail}); use a --url with a host name the certificate lists`;
  } else if (refused === 'not-valid-now') {
    kind = ErrorCode.InvalidConfig;
    message = `the certificate of ${url} is outside its validity dates (${detail}); renew the certificate of the coordinator`;
  } else if (https && (code === 'EPROTO' || /wrong version number|packet length too long/i.test(err.message))) {
    kind = ErrorCode.InvalidConfig;
    // OpenSSL's text here is a source-file trace ("ssl3_get_record:wrong version number:…"): not for a user.
    message = `${url} does not answer in TLS (the TLS handshake got a plain reply); if the coordinator serves plain HTTP, use http:// in --url`;
  } else if (code === 'ECONNREFUSED') {
    message = `nothing listens at ${url} (connection refused); start "ftl-coordinator serve" there, or pass the --url it printed`;
  } else if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    message = `the host of ${url} does not resolve (${detail}); check --url`;
  } else if (!https && (code === 'ECONNRESET' || code === 'HPE_INVALID_CONSTANT' || /socket hang up/.test(err.message))) {
    message = `${url} closed the connection without an answer (${detail}); if the coordinator serves HTTPS, use https:// in --url`;
  } else if (code === 'ETIMEDOUT') {
    message = `the coordinator at ${url} did not answer within 30 s; check that "ftl-coordinator serve" runs there and is not overloaded`;
  } else {
    message = `cannot reach the coordinator at ${url} (${detail}); is "ftl-coordinator serve" running there?`;
  }
  return new FtlError(kind, message, { cause: err });
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
