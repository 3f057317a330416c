import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { createLogger, ErrorCode, initBackend } from '@ftl/shared';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { BACKBONE_PATH } from './backbone-server.js';
import { defaultCoordinatorConfig } from './config.js';
import { CoordinatorServer } from './coordinator-server.js';
import { HTTP_STATUS } from './operator-api.js';
import { Store } from './store/store.js';

const TOKEN = 'operator-token-for-the-error-codes-0123456789';
const API_DOC = fileURLToPath(new URL('../../../docs/api.md', import.meta.url));

interface Started {
  server: CoordinatorServer;
  store: Store;
  db: string;
  url: string;
  /** Every log line the server wrote. */
  lines: string[];
}

let started: Started | undefined;

/** A real coordinator with the operator API on a loopback port, its store in a file of its own. */
async function start(): Promise<Started> {
  const db = join(await mkdtemp(join(tmpdir(), 'ftl-api-errors-')), 'coordinator.db');
  const lines: string[] = [];
  const log = createLogger('test', { level: 'info', write: (line) => lines.push(line) });
  const store = Store.open(db);
  const server = await CoordinatorServer.create({ ...defaultCoordinatorConfig(), port: 0 }, log, store, { operatorToken: TOKEN });
  started = { server, store, db, url: (await server.listen()).url, lines };
  return started;
}

async function call(url: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}` },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: await res.json() };
}

beforeAll(async () => {
  await initBackend();
});

afterEach(async () => {
  if (started) {
    await started.server.close();
    started.store.close();
  }
  started = undefined;
});

describe('operator API errors say who is at fault', () => {
  test.each<[string, string, RegExp]>([
    ['GET', '/api/runs/nope', /^no run "nope"; list runs with: ftl-coordinator runs list$/],
    ['POST', '/api/runs/nope/start', /^no run "nope"/],
    ['POST', '/api/runs/nope/resume', /^no run "nope"/],
    ['POST', '/api/runs/nope/pause', /^no run "nope"/],
    ['POST', '/api/runs/nope/stop', /^no run "nope"/],
    ['GET', '/api/runs/nope/model', /^no run "nope"/],
    ['POST', '/api/clients/nobody/revoke', /^no client "nobody"; list them with: ftl-coordinator clients list$/],
  ])('%s %s of an unknown id answers 404 NOT_FOUND', async (method, path, message) => {
    const { url } = await start();
    const answer = await call(url, method, path);
    expect(answer).toEqual({ status: 404, json: { error: { code: 'NOT_FOUND', message: expect.stringMatching(message) } } });
  });

  test('a database locked by another writer: the write answers 500 STORAGE_ERROR, logged once; reads and later writes go on', async () => {
    const { url, db, lines } = await start();
    // Another connection holds SQLite's write lock, as a stuck process or a backup tool would.
    const holder = new Database(db);
    try {
      holder.exec('BEGIN IMMEDIATE');
      const refused = await call(url, 'POST', '/api/runs', { runId: 'r1' });
      expect(refused).toEqual({
        status: 500,
        json: {
          error: {
            code: 'STORAGE_ERROR',
            message: 'storage error: the coordinator could not read or write its database; its log has the details (api-error)',
          },
        },
      });
      expect(JSON.stringify(refused.json)).not.toContain(db); // the file and SQLite's text stay in the server's log
      const errors = lines.filter((l) => l.includes(' error '));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(
        /^ftl test error api-error method=POST path=\/api\/runs code=STORAGE_ERROR detail=".*creating run r1 failed: database is locked"$/,
      );
      // Readers are not blocked by the writer (WAL): the server answers as before.
      expect(await call(url, 'GET', '/api/runs')).toEqual({ status: 200, json: { runs: [] } });
    } finally {
      holder.exec('ROLLBACK');
      holder.close();
    }
    expect((await call(url, 'POST', '/api/runs', { runId: 'r1' })).status).toBe(201);
  });

  test('a closed store: every route that needs it answers 500 STORAGE_ERROR, and the server keeps serving the rest', async () => {
    const { url, store, lines } = await start();
    store.close();
    for (const [method, path] of [
      ['GET', '/api/runs'],
      ['GET', '/api/runs/r1'],
      ['POST', '/api/clients'],
      ['GET', '/api/clients'],
    ] as const) {
      const answer = await call(url, method, path, method === 'POST' ? { name: 'site-a' } : undefined);
      expect([method, path, answer.status, answer.json.error.code]).toEqual([method, path, 500, 'STORAGE_ERROR']);
    }
    expect(lines.filter((l) => l.includes(' api-error '))).toHaveLength(4);
    // Bad input is still the caller's: 400, not 500.
    expect(await call(url, 'POST', '/api/runs', { rounds: -1 })).toMatchObject({ status: 400, json: { error: { code: 'INVALID_CONFIG' } } });
    // The backbone files and the token check need no database.
    expect((await fetch(`${url}${BACKBONE_PATH}/model.json`)).status).toBe(200);
    expect((await fetch(`${url}/api/runs`)).status).toBe(401);
  });

  test('docs/api.md lists every error code with the status the API answers it with', async () => {
    const doc = await readFile(API_DOC, 'utf8');
    const rows = new Map([...doc.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1]!, Number(m[2])]));
    for (const code of Object.values(ErrorCode)) expect([code, rows.get(code)]).toEqual([code, HTTP_STATUS[code]]);
  });
});
