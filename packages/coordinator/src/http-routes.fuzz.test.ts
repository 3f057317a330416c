import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { createLogger, initBackend } from '@ftl/shared';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { defaultCoordinatorConfig } from './config.js';
import { CoordinatorServer } from './coordinator-server.js';
import { createHttpHandler } from './http-boundary.js';
import { handleOperatorApi } from './operator-api.js';
import { rawRequest } from './raw-http.js';
import { Store } from './store/store.js';

const TOKEN = 'operator-token-for-the-route-fuzz-0123456789';
const AUTH = [`Authorization: Bearer ${TOKEN}`];

let coordinator: CoordinatorServer;
let http: Server;
let port: number;
const lines: string[] = [];

// The coordinator's HTTP edge as served: the committed default backbone and the operator API of a real
// server with a database, behind the one boundary, on a real port.
beforeAll(async () => {
  await initBackend();
  const log = createLogger('test', { level: 'warn', write: (line) => lines.push(line) });
  coordinator = await CoordinatorServer.create({ ...defaultCoordinatorConfig(), port: 0 }, log, Store.open(':memory:'), { operatorToken: TOKEN });
  http = createServer(createHttpHandler({ backbone: coordinator.backbone, api: (req, res) => handleOperatorApi(coordinator, req, res, log), log }));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  port = (http.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise((resolve) => http.close(resolve));
  await coordinator.close();
  coordinator.store?.close();
});

/** The server still serves the backbone: what every site needs first. */
async function expectStillServing(): Promise<void> {
  const answer = await rawRequest(port, 'GET /backbone/model.json HTTP/1.1');
  expect(answer.status).toBe(200);
  expect(answer.headers['x-ftl-sha256']).toBe(coordinator.backbone.sha256);
}

describe('malformed request targets', () => {
  // Each of the first four stopped the whole coordinator: decodeURIComponent or new URL threw inside the request handler.
  test.each<[string, string[], number, RegExp]>([
    [
      'GET /backbone/% HTTP/1.1',
      [],
      400,
      /^bad request: malformed percent-encoding in "%"; encode each reserved or non-ASCII byte as %XX of its UTF-8\n$/,
    ],
    ['GET /backbone/%E0%A4%A HTTP/1.1', [], 400, /^bad request: malformed percent-encoding in "%E0%A4%A"/],
    ['GET //[ HTTP/1.1', [], 400, /^bad request: malformed request target "\/\/\["; send a path such as \/backbone\/model.json\n$/],
    ['GET http://[/ HTTP/1.1', [], 400, /^bad request: malformed request target "http:\/\/\[\/"/],
    ['GET http://[::1/backbone/model.json HTTP/1.1', [], 400, /^bad request: malformed request target/],
    ['GET /backbone/model.json% HTTP/1.1', [], 400, /^bad request: malformed percent-encoding in "model.json%"/],
    ['POST //[ HTTP/1.1', AUTH, 400, /^bad request: malformed request target/],
    [
      'GET /api/runs/% HTTP/1.1',
      AUTH,
      400,
      /^\{"error":\{"code":"INVALID_MESSAGE","message":"malformed percent-encoding in \\"%\\"; encode each reserved/,
    ],
    ['POST /api/runs/%E0%A4%A/start HTTP/1.1', AUTH, 400, /"code":"INVALID_MESSAGE"/],
    ['GET /api/runs/% HTTP/1.1', [], 401, /"code":"UNAUTHORIZED"/], // nothing is decoded for a peer without the token
    ['GET /backbone/%2e%2e%2fmodel.json HTTP/1.1', [], 404, /^no backbone file "..\/model.json"; model.json lists the files\n$/],
    ['GET /backbone/..%2F..%2Fpackage.json HTTP/1.1', [], 404, /^no backbone file "..\/..\/package.json"/],
  ])('%s (%j) answers %i with one line, and the server goes on', async (line, headers, status, body) => {
    const answer = await rawRequest(port, line, headers);
    expect(answer.status).toBe(status);
    expect(answer.statusLines).toHaveLength(1);
    expect(answer.body).toMatch(body);
    expect(answer.body.trimEnd()).not.toContain('\n');
    await expectStillServing();
  });

  test('HEAD on a backbone file gives the headers of GET without the body; other methods are refused with Allow', async () => {
    const get = await rawRequest(port, 'GET /backbone/model.json HTTP/1.1');
    const head = await rawRequest(port, 'HEAD /backbone/model.json HTTP/1.1');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    for (const h of ['content-length', 'content-type', 'x-ftl-sha256']) expect(head.headers[h]).toBe(get.headers[h]);
    expect(Number(get.headers['content-length'])).toBe(get.body.length);
    const post = await rawRequest(port, 'POST /backbone/model.json HTTP/1.1');
    expect([post.status, post.headers['allow'], post.body]).toEqual([405, 'GET, HEAD', '"POST" is not allowed on backbone files; use GET or HEAD\n']);
  });
});

describe("the coordinator's own port", () => {
  test('answers each target that used to stop it with 400 and goes on serving the backbone', async () => {
    const { port: own } = await coordinator.listen();
    for (const line of ['GET /backbone/% HTTP/1.1', 'GET /backbone/%E0%A4%A HTTP/1.1', 'GET //[ HTTP/1.1', 'GET http://[/ HTTP/1.1']) {
      expect((await rawRequest(own, line)).status).toBe(400);
      expect((await rawRequest(own, 'GET /backbone/model.json HTTP/1.1')).status).toBe(200);
    }
    expect((await rawRequest(own, 'GET /api/runs/% HTTP/1.1', AUTH)).status).toBe(400);
  });
});

// Pieces a hostile or careless peer puts in a target: percent-encodings valid and not, brackets, schemes, dots.
const piece = fc.oneof(
  fc.constantFrom(
    '/',
    '//',
    '%',
    '%%',
    '%A',
    '%E0',
    '%E0%A4%A',
    '%C0%AF',
    '%FF',
    '%00',
    '%2F',
    '%2e%2e',
    '%zz',
    '[',
    ']',
    '[::1',
    ':',
    '@',
    '?',
    '#',
    '.',
    '..',
  ),
  fc.constantFrom('backbone', 'api', 'runs', 'clients', 'model.json', 'weights.bin', 'start', 'revoke', 'model', 'http:', '__proto__'),
  fc.integer({ min: 0, max: 255 }).map((b) => `%${b.toString(16).padStart(2, '0').toUpperCase()}`),
  fc.stringMatching(/^[A-Za-z0-9._~!$&'()*+,;=-]{0,6}$/),
);
const target = fc
  .tuple(
    fc.constantFrom('/', '/backbone/', '/api/', '/api/runs/', '/api/clients/', '//', 'http://localhost/backbone/', 'http://[', 'http://'),
    fc.array(piece, { maxLength: 8 }),
  )
  .map(([prefix, parts]) => prefix + parts.join(''));

describe('random targets on every route', () => {
  test('never crash the server, never answer 500, never answer twice, never touch Object.prototype; the backbone is served after each', async () => {
    const prototypeKeys = Object.getOwnPropertyNames(Object.prototype);
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE'), target, fc.boolean(), async (method, path, withToken) => {
        const answer = await rawRequest(port, `${method} ${path} HTTP/1.1`, withToken ? AUTH : []);
        expect(answer.statusLines).toHaveLength(1);
        expect(answer.status).toBeGreaterThanOrEqual(200);
        expect(answer.status).toBeLessThan(500);
        await expectStillServing();
      }),
      { numRuns: 300 },
    );
    expect(lines.filter((l) => / error /.test(l))).toEqual([]);
    expect(Object.getOwnPropertyNames(Object.prototype)).toEqual(prototypeKeys);
  });
});
