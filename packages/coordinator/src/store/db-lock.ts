import { linkSync, mkdirSync, readFileSync, realpathSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { ErrorCode, FtlError, type Logger } from '@ftl/shared';

/** Who holds a database: written into its lock file, shown to the next server that tries it. */
export interface LockHolder {
  pid: number;
  host: string;
  /** ISO 8601. */
  startedAt: string;
}

/** What {@link DbLock.acquire} found and did, for the caller to log. */
export interface TakenOver {
  /** The server that held the lock and is gone (killed, crashed) without releasing it. */
  previous: LockHolder;
}

/** The lock file of a database: beside it, so every program that opens the same file finds the same lock. */
export function lockFileOf(dbPath: string): string {
  const path = resolve(dbPath);
  // The folder's real path: the same database reached through a symlinked folder has the same lock.
  try {
    return join(realpathSync(dirname(path)), `${basename(path)}.lock`);
  } catch {
    return `${path}.lock`;
  }
}

/**
 * Puts the lock file in place atomically: a hard link of a file already written, so nobody reads it
 * half written; where the file system has no hard links, an exclusive create (O_EXCL) instead.
 */
function place(aside: string, file: string, text: string): void {
  try {
    linkSync(aside, file);
  } catch (err) {
    if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
    writeFileSync(file, text, { flag: 'wx' });
  }
}

function readHolder(file: string): { text: string; holder?: LockHolder } | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const h = JSON.parse(text) as Partial<LockHolder>;
    if (Number.isSafeInteger(h.pid) && typeof h.host === 'string' && typeof h.startedAt === 'string') {
      return { text, holder: { pid: h.pid!, host: h.host, startedAt: h.startedAt } };
    }
  } catch {
    // Not ours or damaged: reported as an unknown holder below.
  }
  return { text };
}

/** Lock files this process holds: a lock naming our own pid is ours only if it is in here. */
const held = new Set<string>();

/** Linux's view of a process: its state letter and when it started (ms since the epoch); undefined elsewhere. */
function procInfo(pid: number): { state: string; startedMs: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The fields after the parenthesised command name (which may itself hold spaces or parentheses):
    // state is field 3, starttime (clock ticks after boot) field 22.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const bootSeconds = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]);
    // USER_HZ is 100 on every Linux that node supports.
    return { state: fields[0] ?? '', startedMs: (bootSeconds + Number(fields[19]) / 100) * 1000 };
  } catch {
    return undefined;
  }
}

/**
 * Whether the server that wrote lock `h` still runs. Its pid alone can mislead: the pid may have been
 * given to another process since (a restarted container often gives the server the very same pid), or
 * the process may be a zombie (killed, not yet reaped by its parent). EPERM means it lives under
 * another user: alive.
 */
function holderRuns(h: LockHolder, file: string): boolean {
  if (h.pid === process.pid) return held.has(file);
  try {
    process.kill(h.pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
  const info = procInfo(h.pid);
  if (!info) return true; // no /proc (macOS): kill(0) is the answer
  if (/^[ZX]/.test(info.state)) return false;
  // A process that started after the lock was written is not the one that wrote it (2 s for clock steps).
  const lockedAt = Date.parse(h.startedAt);
  return !(Number.isFinite(lockedAt) && Number.isFinite(info.startedMs) && info.startedMs > lockedAt + 2000);
}

/**
 * One server per database. A coordinator that serves a database (runs rounds, commits checkpoints,
 * resumes runs) holds this lock for as long as it runs, so a second server on the same file refuses to
 * start instead of running the same run twice. The lock is a file beside the database holding the
 * holder's pid, host and start time, created atomically (written aside, then hard-linked into place, so
 * no reader ever sees it half written). A lock whose process is gone from this host (SIGKILL, a crash;
 * its pid now a zombie or another process's) is stale and taken over. Programs that only edit the database briefly (`clients add --db`) do not
 * take it: SQLite already serialises their writes with the server's.
 *
 * @example
 * const lock = DbLock.acquire('.ftl/coordinator.db'); // throws FtlError(CONFLICT) while another server runs
 * try { … } finally { lock.release(); }
 */
export class DbLock {
  private released = false;
  private readonly onExit = () => this.release();

  private constructor(
    /** The lock file. */
    readonly file: string,
    private readonly text: string,
    /** Set when a dead server's lock was taken over. */
    readonly takenOver: TakenOver | undefined,
  ) {
    // A process.exit() (a second Ctrl-C) skips every finally block; the lock must go all the same.
    process.once('exit', this.onExit);
  }

  /**
   * Takes the lock of the database at `dbPath`. Throws FtlError(CONFLICT) naming the holder when a
   * live process holds it, or any process on another host (whose liveness cannot be checked here).
   * Taking over a dead server's lock is logged on `log`: that server stopped without cleaning up.
   */
  static acquire(dbPath: string, log?: Logger): DbLock {
    const me: LockHolder = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString() };
    const text = `${JSON.stringify(me)}\n`;
    let file = lockFileOf(dbPath);
    let aside = '';
    try {
      mkdirSync(dirname(file), { recursive: true });
      file = lockFileOf(dbPath); // now that the folder exists, by its real path
      aside = `${file}.${process.pid}.tmp`;
      writeFileSync(aside, text);
    } catch (err) {
      throw new FtlError(
        ErrorCode.InvalidConfig,
        `cannot create the lock file ${file} of database ${dbPath} (${(err as Error).message}); choose a --db in a writable folder`,
        { cause: err },
      );
    }
    let takenOver: TakenOver | undefined;
    try {
      // Three tries: each lost race means another server took the lock in between, checked again below.
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          place(aside, file, text);
          if (takenOver) {
            const p = takenOver.previous;
            log?.warn('db-lock-taken-over', {
              db: dbPath,
              previousPid: p.pid,
              previousStart: p.startedAt,
              detail: 'that coordinator ended without releasing it',
            });
          }
          held.add(file);
          return new DbLock(file, text, takenOver);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        const found = readHolder(file);
        if (!found) continue; // released between our link and our read
        const h = found.holder;
        if (!h || h.host !== me.host || holderRuns(h, file)) throw inUse(dbPath, file, h);
        if (moveAsideIfUnchanged(file, found.text)) takenOver = { previous: h };
      }
      throw inUse(dbPath, file, readHolder(file)?.holder);
    } finally {
      unlinkSync(aside);
    }
  }

  /** Releases the lock (if this process still holds it); releasing twice is harmless. */
  release(): void {
    if (this.released) return;
    this.released = true;
    held.delete(this.file);
    process.off('exit', this.onExit);
    try {
      // Only our own lock: a file another server wrote after ours was taken over stays.
      if (readFileSync(this.file, 'utf8') === this.text) unlinkSync(this.file);
    } catch {
      // Already gone: nothing to release.
    }
  }
}

/**
 * Removes a stale lock only if it is still the one that was judged stale: renamed first (atomic), then
 * compared, so two servers taking over at once cannot remove each other's fresh lock.
 */
function moveAsideIfUnchanged(file: string, staleText: string): boolean {
  const moved = `${file}.stale.${process.pid}`;
  try {
    renameSync(file, moved);
  } catch {
    return false; // someone else moved or released it: try again from the start
  }
  const text = readFileSync(moved, 'utf8');
  if (text !== staleText) {
    // A fresh lock of another server: put it back (link refuses to overwrite a newer one).
    try {
      linkSync(moved, file);
    } catch {
      // A third server holds the lock now; the fresh one we moved is that server's concern no longer.
    }
  }
  unlinkSync(moved);
  return text === staleText;
}

function inUse(dbPath: string, file: string, h: LockHolder | undefined): FtlError {
  if (!h) {
    return new FtlError(
      ErrorCode.Conflict,
      `database ${dbPath} is locked by ${file}, which does not say who holds it; if no coordinator uses ${dbPath}, delete ${file}`,
    );
  }
  const elsewhere = h.host !== hostname();
  return new FtlError(
    ErrorCode.Conflict,
    `database ${dbPath} is in use by another coordinator (pid ${h.pid}${elsewhere ? ` on host ${h.host}` : ''}, started ${h.startedAt}); ` +
      `stop it first or use another --db` +
      (elsewhere ? ` (if it no longer runs there, delete ${file})` : ''),
  );
}
