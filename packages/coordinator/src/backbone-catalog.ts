import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, FtlError, MODEL_JSON } from '@ftl/shared';

/** The folder of the backbones committed with ftl, one folder (model.json, weights, ftl-backbone.json) per name. */
export const BACKBONES_DIR = fileURLToPath(new URL('../backbones', import.meta.url));

/**
 * Names of committed backbones that keep a folder of their own outside {@link BACKBONES_DIR}: the default
 * backbone stays where the coordinator has always read it.
 */
const ELSEWHERE: Readonly<Record<string, string>> = {
  'small-fmnist': fileURLToPath(new URL('../backbone', import.meta.url)),
};

/** What a backbone name looks like: one path segment of letters, digits, dots, dashes and underscores. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The committed backbones by name, sorted, each with its folder: every folder of `dir` that holds a
 * model.json, and the names kept elsewhere (such as `small-fmnist`, the default backbone).
 *
 * @example
 * (await backboneCatalog()).map((b) => b.name); // ['encoder-fmnist', 'encoder-fmnist-0to4', 'small-fmnist']
 */
export async function backboneCatalog(dir: string = BACKBONES_DIR): Promise<Array<{ name: string; dir: string }>> {
  let entries: string[] = [];
  try {
    entries = await readdir(dir);
  } catch {
    // No catalog folder: only the names kept elsewhere.
  }
  const found = new Map(Object.entries(ELSEWHERE));
  for (const name of entries) {
    if (NAME.test(name) && (await isFile(join(dir, name, MODEL_JSON)))) found.set(name, join(dir, name));
  }
  return [...found].map(([name, folder]) => ({ name, dir: folder })).sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Where a `--backbone` source is: an http(s) or file: address, or a path that exists, is used as it is; a
 * bare name (one path segment, such as `encoder-fmnist`) is the folder of that committed backbone. A path
 * that exists wins over a name, so folders given by name before names existed keep working.
 *
 * @throws FtlError(BACKBONE_LOAD) in one line listing the known names, for a bare name that is neither a
 *   path nor a committed backbone.
 * @example
 * await resolveBackboneSource('encoder-fmnist'); // '…/packages/coordinator/backbones/encoder-fmnist'
 * await resolveBackboneSource('https://example.org/model/'); // unchanged
 */
export async function resolveBackboneSource(source: string, dir: string = BACKBONES_DIR): Promise<string> {
  if (/^(https?|file):/i.test(source) || !NAME.test(source) || (await exists(source))) return source;
  const catalog = await backboneCatalog(dir);
  const named = catalog.find((b) => b.name === source);
  if (named !== undefined) return named.dir;
  throw new FtlError(
    ErrorCode.BackboneLoad,
    `unknown backbone "${source}": the committed backbones are ${catalog.map((b) => b.name).join(', ')}; or give a folder path or an http(s) address`,
  );
}
