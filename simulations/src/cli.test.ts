import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { scratch, startCoordinator } from './test-federation.js';

// These run the built programs (`npm test` builds first), as an operator would.
const root = fileURLToPath(new URL('../../', import.meta.url));

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: root, env: { ...process.env, FTL_LOG: 'warn' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('command-line programs', () => {
  test('a client pinned to another backbone digest exits non-zero naming both digests', async () => {
    const { coordinator, url } = await startCoordinator({ minClients: 1 });
    const wrong = '0'.repeat(64);
    const r = await run([
      'packages/client/dist/cli.js',
      '--server',
      url,
      '--limit',
      '100',
      '--backbone-sha256',
      wrong,
      '--cache-dir',
      join(await scratch('cli'), 'c'),
    ]);
    await coordinator.close();
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(
        `error \\[BACKBONE_DIGEST_MISMATCH\\]: backbone digest mismatch: this client expects sha256 ${wrong} but the coordinator offers [0-9a-f]{64}`,
      ),
    );
  });

  test('operators add, list and revoke client tokens; only the hash is stored', async () => {
    const db = join(await scratch('clients'), 'c.db');
    const added = await run(['packages/coordinator/dist/cli.js', 'clients', 'add', 'site-a', '--db', db]);
    expect(added.code).toBe(0);
    const token = /\n([0-9a-f]{64})\n/.exec(added.stdout)?.[1];
    expect(token).toBeDefined();
    expect((await run(['packages/coordinator/dist/cli.js', 'clients', 'list', '--db', db])).stdout).toMatch(/^site-a\tactive\t/);
    expect((await run(['packages/coordinator/dist/cli.js', 'clients', 'add', 'site-a', '--db', db])).code).toBe(1);
    expect((await run(['packages/coordinator/dist/cli.js', 'clients', 'revoke', 'site-a', '--db', db])).code).toBe(0);
    expect((await run(['packages/coordinator/dist/cli.js', 'clients', 'list', '--db', db])).stdout).toMatch(/^site-a\trevoked\t/);
    const { readFileSync } = await import('node:fs');
    expect(readFileSync(db).includes(Buffer.from(token!))).toBe(false);
  });

  test.each([
    [
      ['packages/coordinator/dist/cli.js', '--rounds=-1'],
      'error [INVALID_CONFIG]: command line: --rounds (rounds) must be a positive integer (got -1)',
    ],
    [['packages/coordinator/dist/cli.js', '--round', '3'], "error [INVALID_CONFIG]: Unknown option '--round'. Run with --help for the options."],
    [
      ['packages/coordinator/dist/cli.js', '--fraction-fit', '1.5'],
      'error [INVALID_CONFIG]: command line: --fraction-fit (fractionFit) must be a number in (0, 1] (got 1.5)',
    ],
    [
      ['packages/client/dist/cli.js', '--partition', 'dirichlet:0'],
      'error [INVALID_CONFIG]: partition must be "iid", "dirichlet:<alpha>" with alpha > 0',
    ],
    [['packages/client/dist/cli.js', '--clients', '3', '--index', '3'], 'error [INVALID_CONFIG]: --index must be an integer ≥ 0 and ≤ 2 (got "3")'],
  ])('%j is refused at start-up', async (args, message) => {
    const r = await run(args);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(message);
  });
});
