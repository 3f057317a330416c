import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ErrorCode, FtlError } from '@ftl/shared';

/**
 * Writes a token to `file` readable by its owner only (mode 0600), creating its folder. The mode is set
 * again after writing because `writeFile`'s mode applies only to a file it creates: an existing file
 * would keep wider permissions.
 */
export function writeSecretFile(file: string, secret: string, flag: string): void {
  try {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${secret}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
  } catch (err) {
    throw new FtlError(ErrorCode.InvalidConfig, `${flag}: cannot write ${file} (${(err as Error).message}); choose a file in a writable folder`, {
      cause: err,
    });
  }
}
