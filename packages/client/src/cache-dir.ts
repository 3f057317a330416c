import { constants } from 'node:fs';
import { access, mkdir, stat } from 'node:fs/promises';
import { ErrorCode, FtlError } from '@ftl/shared';

const FIX = 'give --cache-dir a folder this user can write (it is created if missing)';

/**
 * Checks the cache folder at start-up, creating it if missing, so a path that is a file or cannot be
 * written stops the client before it connects rather than after the first download.
 *
 * @throws FtlError(INVALID_CONFIG) naming the path and saying to give a folder.
 */
export async function prepareCacheDir(dir: string): Promise<void> {
  const found = await stat(dir).catch(() => undefined);
  if (found && !found.isDirectory()) throw new FtlError(ErrorCode.InvalidConfig, `--cache-dir ${dir} is a file, not a folder; ${FIX}`);
  try {
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK | constants.X_OK);
  } catch (err) {
    throw cacheWriteError(dir, err);
  }
}

/**
 * The one-line error for a cache the client could not write (a path through a file, no permission, a
 * full disk), naming the folder and what to do.
 */
export function cacheWriteError(dir: string, err: unknown): FtlError {
  const code = (err as NodeJS.ErrnoException).code;
  const why =
    code === 'ENOTDIR'
      ? 'part of the path is a file, not a folder'
      : code === 'EACCES' || code === 'EPERM'
        ? 'permission denied'
        : code === 'ENOSPC'
          ? 'no space left on the disk'
          : code === 'EROFS'
            ? 'the file system is read-only'
            : (err as Error).message;
  return new FtlError(ErrorCode.InvalidConfig, `cannot write the cache in ${dir} (${why}); ${FIX}`, { cause: err });
}
