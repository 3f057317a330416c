import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, test } from 'vitest';

// The built programs (`npm test` builds first), as an operator or a site runs them.
const root = fileURLToPath(new URL('../../', import.meta.url));
const run = promisify(execFile);

const programs = [
  { bin: 'ftl-client', pkg: 'packages/client' },
  { bin: 'ftl-coordinator', pkg: 'packages/coordinator' },
];

describe.each(programs)('$bin', ({ bin, pkg }) => {
  const json = JSON.parse(readFileSync(`${root}${pkg}/package.json`, 'utf8')) as { version: string; bin: Record<string, string> };
  const program = [`${root}${pkg}/${json.bin[bin]!}`];

  test('--version prints the version its package.json holds', async () => {
    const { stdout } = await run(process.execPath, [...program, '--version'], { timeout: 30_000 });
    expect(stdout).toBe(`${bin} ${json.version}\n`);
  });

  test('-h prints the same help as --help', async () => {
    const long = await run(process.execPath, [...program, '--help'], { timeout: 30_000 });
    const short = await run(process.execPath, [...program, '-h'], { timeout: 30_000 });
    expect(short.stdout).toBe(long.stdout);
    expect(short.stdout).toMatch(new RegExp(`^${bin} \\[options\\]`));
  });
});
