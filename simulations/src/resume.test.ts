import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Store } from '@ftl/coordinator';
import { describe, expect, test } from 'vitest';
import { holdoutAccuracy } from './holdout.js';
import { makeClient, scratch } from './test-federation.js';
import { freePort } from './free-port.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** Starts the built coordinator CLI; `onRow` sees each round row it prints. */
function coordinator(
  args: string[],
  onRow: (round: number, child: ChildProcess) => void,
): { child: ChildProcess; exited: Promise<number | null>; rows: number[] } {
  const child = spawn(process.execPath, ['packages/coordinator/dist/cli.js', ...args], {
    cwd: root,
    env: { ...process.env, FTL_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const rows: number[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const m = /^\s*(\d+)\/\d+ \|/.exec(line);
    if (m) {
      rows.push(Number(m[1]));
      onRow(Number(m[1]), child);
    }
  });
  return { child, rows, exited: new Promise((r) => child.once('exit', (code) => r(code))) };
}

/** Hex SHA-256 of an exported model's weight bytes (backbone and head, as `weights.bin` holds them). */
async function weightsDigest(modelDir: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(join(modelDir, 'weights.bin')))
    .digest('hex');
}

async function federation(
  dir: string,
  runId: string,
  killAfterRound?: number,
): Promise<{ rowsPrinted: number[][]; heldOut: number; weights: string; db: string }> {
  const port = await freePort();
  const db = join(dir, 'coordinator.db');
  const args = [
    '--port',
    String(port),
    '--db',
    db,
    '--run-id',
    runId,
    '--rounds',
    '4',
    '--min-clients',
    '3',
    '--epochs',
    '2',
    '--seed',
    '7',
    '--out',
    join(dir, 'model'),
    '--strategy',
    'fedadam',
    '--strategy-options',
    'eta=0.01',
  ];
  const first = coordinator(args, (round, child) => round === killAfterRound && child.kill('SIGKILL'));
  const url = `http://127.0.0.1:${port}`;
  const clients = await Promise.all([0, 1, 2].map((index) => makeClient({ url, index, clients: 3, limit: 900, cacheDir: join(dir, `c${index}`) })));
  const ends = clients.map((c) => c.run());
  const rowsPrinted = [first.rows];
  if (killAfterRound === undefined) {
    expect(await first.exited).toBe(0);
  } else {
    expect(await first.exited).toBe(null); // killed by the signal
    const second = coordinator(args, () => {});
    rowsPrinted.push(second.rows);
    expect(await second.exited).toBe(0);
  }
  await Promise.all(ends);
  const model = join(dir, 'model');
  return { rowsPrinted, heldOut: (await holdoutAccuracy(model)).accuracy, weights: await weightsDigest(model), db };
}

describe('coordinator restart', () => {
  // Seeded runs are deterministic, so a restart that lost anything (FedAdam's moments, the model version,
  // a round's seeds) would end on other weights: the exported weights must be bit for bit the same.
  test('SIGKILL after round 2, restart on the same database: rounds 3–4 run once, FedAdam state carries over, the same weights', async () => {
    const killed = await federation(await scratch('resume'), 'resume-run', 2);
    expect(killed.rowsPrinted).toEqual([
      [1, 2],
      [3, 4],
    ]);
    const store = Store.open(killed.db);
    expect(store.listRounds('resume-run').map((r) => r.round)).toEqual([1, 2, 3, 4]);
    expect(store.getRun('resume-run')?.status).toBe('completed');
    expect(store.listEvents('resume-run').map((e) => e.type)).toContain('run-resumed');
    store.close();
    const straight = await federation(await scratch('straight'), 'straight-run');
    expect(straight.rowsPrinted).toEqual([[1, 2, 3, 4]]);
    expect(killed.weights).toBe(straight.weights);
    expect(killed.heldOut).toBe(straight.heldOut);
    expect(straight.heldOut).toBeGreaterThan(0.7);
  });
});
