import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger, ErrorCode, FtlError } from '@ftl/shared';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { withErrorBoundary, type HttpHandler } from './http-boundary.js';
import { rawRequest } from './raw-http.js';

let server: Server | undefined;
let lines: string[] = [];

/** A real server on port 0 whose every request goes to `handler` inside the boundary; `/ok` always answers. */
async function serve(handler: HttpHandler): Promise<number> {
  lines = [];
  const log = createLogger('test', { level: 'info', write: (line) => lines.push(line) });
  const route: HttpHandler = (req, res) => (req.url === '/ok' ? void res.end('ok') : handler(req, res));
  server = createServer(withErrorBoundary(route, log));
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

afterEach(async () => {
  if (server) await new Promise((resolve) => server!.close(resolve));
  server = undefined;
});

const later = () => new Promise((resolve) => setImmediate(resolve));

describe('the HTTP error boundary', () => {
  test.each<[string, HttpHandler]>([
    [
      'throws',
      () => {
        throw new Error('disk on fire');
      },
    ],
    [
      'rejects',
      async () => {
        await later();
        throw new Error('disk on fire');
      },
    ],
    [
      'throws a non-error',
      () => {
        throw 'disk on fire'; // a dependency may throw a string
      },
    ],
  ])('a handler that %s answers 500 with one line, logs the message once, and the server goes on', async (_, handler) => {
    const port = await serve(handler);
    const answer = await rawRequest(port, 'GET /x HTTP/1.1', ['Authorization: Bearer secret-token-123']);
    expect(answer.status).toBe(500);
    expect(answer.body).toBe('internal error: the coordinator could not answer this request; its log has the details (http-error)\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toBe('ftl test error http-error method=GET target=/x detail="disk on fire"');
    expect(lines[0]).not.toContain('secret-token');
    expect((await rawRequest(port, 'GET /ok HTTP/1.1')).status).toBe(200);
  });

  test.each<[string, HttpHandler]>([
    ['a URIError', () => void decodeURIComponent('%')],
    ['an Invalid URL TypeError', () => void new URL('http://[/')],
    [
      'an INVALID_MESSAGE FtlError',
      async () => {
        throw new FtlError(ErrorCode.InvalidMessage, 'malformed percent-encoding in "%"; encode it');
      },
    ],
  ])('%s from the request answers 400 with one line and logs nothing', async (_, handler) => {
    const port = await serve(handler);
    const answer = await rawRequest(port, 'GET /x HTTP/1.1');
    expect(answer.status).toBe(400);
    expect(answer.body).toMatch(/^bad request: [^\n]+\n$/);
    expect(lines).toEqual([]);
  });

  test('a response already started is cut off, not given a second status line', async () => {
    const port = await serve(async (_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(200, { 'content-type': 'application/gzip' });
      res.write('partial');
      await later();
      throw new Error('archive stream failed');
    });
    const answer = await rawRequest(port, 'GET /x HTTP/1.1');
    expect(answer.statusLines).toEqual(['HTTP/1.1 200 OK']);
    expect(answer.body).not.toMatch(/0\r\n\r\n$/); // no clean end of a chunked body: the client sees it is incomplete
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('detail="archive stream failed"');
  });

  test('a handler that fails after it has answered leaves the answer alone and is logged once', async () => {
    const port = await serve(async (_req, res) => {
      res.end('done');
      await later();
      throw new Error('late bookkeeping failed');
    });
    const answer = await rawRequest(port, 'GET /x HTTP/1.1');
    expect([answer.statusLines, answer.body]).toEqual([['HTTP/1.1 200 OK'], 'done']);
    await vi.waitFor(() => expect(lines).toHaveLength(1));
  });

  test('HEAD gets the error status without a body', async () => {
    const port = await serve(() => {
      throw new Error('boom');
    });
    const answer = await rawRequest(port, 'HEAD /x HTTP/1.1');
    expect([answer.status, answer.body]).toEqual([500, '']);
  });
});
