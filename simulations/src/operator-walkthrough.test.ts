import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { scratch } from './test-federation.js';
import { freePort } from './free-port.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The shell block of the README that follows the operator-walkthrough marker. */
async function walkthrough(): Promise<string> {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
  const m = /<!-- operator-walkthrough:[^>]*-->\s*```sh\n([\s\S]*?)```/.exec(readme);
  if (!m) throw new Error('README.md has no operator-walkthrough block');
  return m[1]!;
}

describe('README operator walkthrough', () => {
  test('runs as written (from a scratch folder, on a free port) through a whole run lifecycle', async () => {
    const block = await walkthrough();
    const work = await scratch('walkthrough');
    const dir = join(work, '.ftl');
    const port = await freePort();
    // The block is run from a scratch folder (its .ftl/ lands there), so $PWD/bin points at the repository's.
    const script = block.replaceAll('8080', String(port)).replaceAll('$PWD/bin', `${ROOT}bin`);
    // Only the harness adds this: background programs never outlive a failed step.
    const harness = `set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n${script}`;
    const child = spawn('bash', ['-c', harness], {
      cwd: work,
      env: { ...process.env, FTL_LOG: 'warn', FTL_COORDINATOR_URL: `http://127.0.0.1:${port}` },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code, `stdout:\n${stdout}\nstderr:\n${stderr}`).toBe(0);

    expect(stdout).toContain('operator token written to .ftl/operator-token');
    expect(stdout).toContain('client hospital-a added; its token is in .ftl/hospital-a.token');
    expect(stdout).toContain('run mnist-1 created (4 rounds, fedavg)');
    expect(stdout).toMatch(/round \| clients ok\/sel/);
    expect(stdout).toMatch(/^\s+4\/4 \|\s+2\/2 \|/m);
    expect(stdout).toMatch(/run mnist-1 is completed after 4\/4 rounds; last federated val acc (9\d\.\d\d)%/);
    expect(stdout).toMatch(/^mnist-1\tcompleted\t4\/4\t/m);
    expect(stdout).toMatch(/^hospital-a\tactive\tyes\tmnist-1\t/m);
    expect(stdout).toContain('client hospital-b revoked');
    expect((await readdir(join(dir, 'mnist-1-model'))).sort()).toEqual(['ftl-model.json', 'model.json', 'weights.bin']);
  });
});
