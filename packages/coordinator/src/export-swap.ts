import { randomBytes } from 'node:crypto';
import { readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { EXPORT_META_FILE } from './export-model.js';

/** What decides whether one export may replace another: the run it comes from and how trained it is. */
export interface ExportIdentity {
  runId: string;
  modelVersion: number;
}

/** A fresh sibling of `dir` to write an export into before it takes `dir`'s place (same file system, so rename is atomic). */
export function stagingDir(dir: string): string {
  return join(dirname(dir), `.${basename(dir)}.staging-${process.pid}-${randomBytes(4).toString('hex')}`);
}

async function identityOf(dir: string): Promise<ExportIdentity | undefined> {
  try {
    const meta = JSON.parse(await readFile(join(dir, EXPORT_META_FILE), 'utf8')) as Partial<ExportIdentity>;
    return typeof meta.runId === 'string' && typeof meta.modelVersion === 'number'
      ? { runId: meta.runId, modelVersion: meta.modelVersion }
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Moves a finished export from `staging` into `dir`, unless `dir` already holds a more trained model of
 * the same run (a higher model version), which is kept. The old folder is moved aside before the new one
 * is renamed in, so a crash leaves either the old or the new export in `dir`, never a half-written one.
 *
 * @returns `replaced` when `dir` now holds the new export, `kept` when the existing one was better.
 */
export async function swapInExport(staging: string, dir: string, next: ExportIdentity): Promise<'replaced' | 'kept'> {
  const existing = await identityOf(dir);
  if (existing && existing.runId === next.runId && existing.modelVersion > next.modelVersion) {
    await rm(staging, { recursive: true, force: true });
    return 'kept';
  }
  const aside = `${staging}.previous`;
  const moved = await rename(dir, aside).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return false;
      throw err;
    },
  );
  await rename(staging, dir);
  if (moved) await rm(aside, { recursive: true, force: true });
  return 'replaced';
}
