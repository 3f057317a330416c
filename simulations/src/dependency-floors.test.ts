import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';

// The CI floor check, run against edited copies of the real lock file (never the lock itself).
const root = fileURLToPath(new URL('../..', import.meta.url));
const script = join(root, '.ci', 'dependency-floors.mjs');
const realLock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { version?: string }>;
};
const dir = mkdtempSync(join(tmpdir(), 'ftl-floors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
function writeJson(value: unknown): string {
  const path = join(dir, `file-${files++}.json`);
  writeFileSync(path, JSON.stringify(value));
  return path;
}

function lockWith(edits: Record<string, string>): string {
  const lock = structuredClone(realLock);
  for (const [location, version] of Object.entries(edits)) {
    lock.packages[location] = { ...lock.packages[location], version };
  }
  return writeJson(lock);
}

function floors(...args: string[]): { status: number | null; out: string } {
  const result = spawnSync(process.execPath, [script, ...args], { encoding: 'utf8' });
  return { status: result.status, out: result.stdout + result.stderr };
}

describe('dependency floors', () => {
  test('the committed lock file passes', () => {
    const { status, out } = floors('--lock', join(root, 'package-lock.json'), '--no-audit');
    expect(out).toContain('node_modules/socket.io-parser');
    expect(status).toBe(0);
  });

  test.each([
    ['node_modules/socket.io-parser', '4.2.5'],
    ['node_modules/engine.io', '6.4.1'],
    ['node_modules/ws', '8.20.9'],
    ['node_modules/ws', '8.21.0-beta.1'],
    // A nested copy counts as much as the top-level one.
    ['node_modules/engine.io-client/node_modules/ws', '8.17.1'],
    ['node_modules/some-package/node_modules/socket.io-parser', '3.4.3'],
  ])('a lock resolving %s %s fails', (location, version) => {
    const { status, out } = floors('--lock', lockWith({ [location]: version }), '--no-audit');
    expect(status).toBe(1);
    expect(out).toContain(`FAIL ${location} resolves ${version}, below the floor`);
  });

  test('exactly the floor passes', () => {
    const lock = lockWith({
      'node_modules/socket.io-parser': '4.2.6',
      'node_modules/engine.io': '6.4.2',
      'node_modules/ws': '8.21.0',
    });
    expect(floors('--lock', lock, '--no-audit').status).toBe(0);
  });

  test('a high or critical advisory fails, a moderate one does not', () => {
    const report = (severity: string) =>
      writeJson({
        auditReportVersion: 2,
        vulnerabilities: { 'some-lib': { name: 'some-lib', severity, range: '<1.2.3' } },
        metadata: { vulnerabilities: { info: 0, low: 0, moderate: 0, high: 0, critical: 0, total: 1, [severity]: 1 } },
      });
    const lock = join(root, 'package-lock.json');
    for (const severity of ['high', 'critical']) {
      const { status, out } = floors('--lock', lock, '--audit-report', report(severity));
      expect(status).toBe(1);
      expect(out).toContain(`npm audit rates some-lib ${severity}`);
    }
    expect(floors('--lock', lock, '--audit-report', report('moderate')).status).toBe(0);
  });

  test('an unreachable advisory service is reported and does not fail', () => {
    const unreachable = writeJson({ message: 'request to https://registry.npmjs.org failed, reason: ENOTFOUND' });
    const { status, out } = floors('--lock', join(root, 'package-lock.json'), '--audit-report', unreachable);
    expect(out).toContain('npm audit unavailable (request to https://registry.npmjs.org failed');
    expect(status).toBe(0);
  });
});
