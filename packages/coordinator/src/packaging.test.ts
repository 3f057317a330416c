import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, test } from 'vitest';
import { BACKBONES_DIR } from './backbone-catalog.js';
import { DEFAULT_BACKBONE_DIR } from './config.js';

// What `npm pack` puts in the coordinator's tarball (a dry run: nothing is written), as an operator would
// install it: the built program and the committed backbones it loads at run time, nothing for development.
const PKG = fileURLToPath(new URL('..', import.meta.url));
const run = promisify(execFile);

describe('the packed coordinator', () => {
  test('holds its program and every committed backbone, and no tests, sources or source maps', async () => {
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: PKG, timeout: 60_000 });
    const [packed] = JSON.parse(stdout) as { name: string; files: { path: string }[] }[];
    const files = packed!.files.map((f) => f.path);
    const json = JSON.parse(await readFile(join(PKG, 'package.json'), 'utf8')) as { private?: boolean; bin: Record<string, string> };
    expect(json.private).toBeUndefined();
    expect(files).toContain(json.bin['ftl-coordinator']!.replace(/^\.\//, ''));
    // The backbones the code resolves from its own folder (config.ts, backbone-catalog.ts) must travel with it.
    const sourceBackbones = async (dir: string) =>
      (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => relative(PKG, join(e.parentPath, e.name)));
    for (const dir of [DEFAULT_BACKBONE_DIR, BACKBONES_DIR]) {
      const expected = await sourceBackbones(dir);
      expect(expected.length).toBeGreaterThan(0);
      expect(files).toEqual(expect.arrayContaining(expected));
    }
    const unwanted = files.filter((f) => /\.test\.|\.map$|^src\/|node_modules\//.test(f));
    expect(unwanted).toEqual([]);
  });
});
