import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { ErrorCode } from './errors.js';
import { expandShortHelp, readPackageInfo } from './program-version.js';
import { expectFtlError } from '../test-support/index.js';

const root = mkdtempSync(join(tmpdir(), 'ftl-version-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('readPackageInfo', () => {
  test('reads the nearest package.json above the module, skipping one without a version', () => {
    const pkg = join(root, 'pkg');
    mkdirSync(join(pkg, 'dist', 'sub'), { recursive: true });
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: '@x/tool', version: '3.4.5' }));
    writeFileSync(join(pkg, 'dist', 'package.json'), JSON.stringify({ type: 'module' }));
    expect(readPackageInfo(pathToFileURL(join(pkg, 'dist', 'sub', 'cli.js')).href)).toEqual({ name: '@x/tool', version: '3.4.5' });
  });

  test('this package: the version its package.json holds now', async () => {
    const { readFile } = await import('node:fs/promises');
    const json = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { name: string; version: string };
    expect(readPackageInfo(import.meta.url)).toEqual({ name: json.name, version: json.version });
  });
});

describe('expandShortHelp', () => {
  test.each<[string[], string[]]>([
    [['-h'], ['--help']],
    [
      ['serve', '-h'],
      ['serve', '--help'],
    ],
    [
      ['--name', 'site', '--help'],
      ['--name', 'site', '--help'],
    ],
    [
      ['--limit', '-1'],
      ['--limit', '-1'],
    ],
  ])('%j → %j', (argv, expected) => {
    expect(expandShortHelp(argv)).toEqual(expected);
  });
});

test('a module outside any package is an internal error, not a crash', () => {
  // The file system root holds no package.json on any machine the tests run on.
  expectFtlError(() => readPackageInfo(pathToFileURL('/ftl-no-package/cli.js').href), ErrorCode.InternalError, /no package\.json/);
});
