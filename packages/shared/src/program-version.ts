import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, FtlError } from './errors.js';

/** A program's npm package, as its package.json names it. */
export interface PackageInfo {
  name: string;
  version: string;
}

/**
 * The name and version of the npm package holding the module at `moduleUrl`, read at run time from the
 * nearest package.json above it, so `--version` says what is installed, not what was built into the code.
 *
 * @throws FtlError(INTERNAL_ERROR) when no package.json with a name and version is found above it.
 * @example
 * const { version } = readPackageInfo(import.meta.url); // '0.1.0'
 */
export function readPackageInfo(moduleUrl: string): PackageInfo {
  let dir = dirname(fileURLToPath(moduleUrl));
  for (;;) {
    let text: string | undefined;
    try {
      text = readFileSync(join(dir, 'package.json'), 'utf8');
    } catch {
      // None here: look one folder up.
    }
    if (text !== undefined) {
      const json = JSON.parse(text) as Partial<PackageInfo>;
      if (typeof json.name === 'string' && typeof json.version === 'string') return { name: json.name, version: json.version };
    }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  throw new FtlError(ErrorCode.InternalError, `no package.json with a name and version above ${fileURLToPath(moduleUrl)}; reinstall the package`);
}

/**
 * A program's command line with `-h` read as `--help`, wherever it stands (ftl has no other short
 * flags), so `ftl-client -h` and `ftl-coordinator serve -h` print their help like the long form.
 */
export function expandShortHelp(argv: readonly string[]): string[] {
  return argv.map((arg) => (arg === '-h' ? '--help' : arg));
}
