import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { describe, expect, test } from 'vitest';
import { DbLock, lockFileOf } from './db-lock.js';

/** `fn` throws an FtlError with this code whose message matches. */
function expectFtlError(fn: () => unknown, code: string, message: RegExp): void {
  expect(fn).toThrow(expect.objectContaining({ name: 'FtlError', code, message: expect.stringMatching(message) }));
}

const dir = () => mkdtempSync(join(tmpdir(), 'ftl-lock-'));

/** A real other process holding `file` open; `pid` is its pid. Its end is ours to choose. */
async function otherProcess(): Promise<{ pid: number; kill: (signal: NodeJS.Signals) => Promise<void> }> {
  const child = spawn(process.execPath, ['-e', 'console.log("up"); setInterval(() => {}, 1000)'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => createInterface({ input: child.stdout! }).once('line', () => resolve()));
  return {
    pid: child.pid!,
    kill: (signal) =>
      new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.kill(signal);
      }),
  };
}

describe('DbLock', () => {
  test('a second acquire of a held database is refused naming the holder; after release it succeeds', () => {
    const db = join(dir(), 'c.db');
    const first = DbLock.acquire(db);
    const holder = JSON.parse(readFileSync(lockFileOf(db), 'utf8')) as { pid: number; startedAt: string };
    expect(holder.pid).toBe(process.pid);
    expectFtlError(
      () => DbLock.acquire(db),
      'CONFLICT',
      new RegExp(
        `^database ${db} is in use by another coordinator \\(pid ${process.pid}, started ${holder.startedAt}\\); stop it first or use another --db$`,
      ),
    );
    first.release();
    expect(existsSync(lockFileOf(db))).toBe(false);
    DbLock.acquire(db).release();
  });

  test('a lock held by a live process is refused; once that process is SIGKILLed it is taken over and reported', async () => {
    const db = join(dir(), 'c.db');
    const other = await otherProcess();
    const stale = { pid: other.pid, host: hostname(), startedAt: new Date().toISOString() };
    writeFileSync(lockFileOf(db), `${JSON.stringify(stale)}\n`);
    expectFtlError(() => DbLock.acquire(db), 'CONFLICT', new RegExp(`\\(pid ${other.pid}, started ${stale.startedAt}\\)`));
    await other.kill('SIGKILL');
    const lock = DbLock.acquire(db);
    expect(lock.takenOver).toEqual({ previous: stale });
    expect(JSON.parse(readFileSync(lockFileOf(db), 'utf8')).pid).toBe(process.pid);
    lock.release();
  });

  // Linux only: the zombie state is read from /proc.
  test.skipIf(!existsSync('/proc/self/stat'))('a holder killed but not yet reaped by its parent (a zombie) counts as gone', async () => {
    const db = join(dir(), 'c.db');
    // The shell starts a child, SIGKILLs it, and becomes \`sleep\`, which never reaps it: a zombie for as long as it lives.
    const parent = spawn('sh', ['-c', 'sleep 60 & echo $!; kill -9 $!; exec sleep 60'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const pid = Number(await new Promise<string>((resolve) => createInterface({ input: parent.stdout! }).once('line', resolve)));
    try {
      // Until the kernel shows the child as a zombie (counted in turns of the event loop, not in time).
      for (;;) {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) break;
        await new Promise((r) => setImmediate(r));
      }
      writeFileSync(lockFileOf(db), JSON.stringify({ pid, host: hostname(), startedAt: 'T' }));
      const lock = DbLock.acquire(db);
      expect(lock.takenOver?.previous.pid).toBe(pid);
      lock.release();
    } finally {
      parent.kill('SIGKILL');
    }
  });

  test('a lock naming our own pid that this process does not hold (a restarted container reuses pids) is stale', () => {
    const db = join(dir(), 'c.db');
    writeFileSync(lockFileOf(db), JSON.stringify({ pid: process.pid, host: hostname(), startedAt: new Date().toISOString() }));
    const lock = DbLock.acquire(db);
    expect(lock.takenOver?.previous.pid).toBe(process.pid);
    lock.release();
  });

  test.skipIf(!existsSync('/proc/self/stat'))(
    'a live process that started after the lock was written did not write it (its pid was reused): stale',
    async () => {
      const db = join(dir(), 'c.db');
      const other = await otherProcess();
      try {
        writeFileSync(lockFileOf(db), JSON.stringify({ pid: other.pid, host: hostname(), startedAt: '2000-01-01T00:00:00.000Z' }));
        const lock = DbLock.acquire(db);
        expect(lock.takenOver?.previous.pid).toBe(other.pid);
        lock.release();
      } finally {
        await other.kill('SIGKILL');
      }
    },
  );

  test('a lock from another host is never judged stale here: refused, saying which file to delete if that server is gone', () => {
    const db = join(dir(), 'c.db');
    writeFileSync(lockFileOf(db), JSON.stringify({ pid: 1, host: 'elsewhere.example', startedAt: 'T' }));
    expectFtlError(
      () => DbLock.acquire(db),
      'CONFLICT',
      new RegExp(
        `\\(pid 1 on host elsewhere.example, started T\\); stop it first or use another --db \\(if it no longer runs there, delete ${lockFileOf(db)}\\)$`,
      ),
    );
  });

  test('an unreadable lock file is not overwritten: refused, naming it', () => {
    const db = join(dir(), 'c.db');
    writeFileSync(lockFileOf(db), 'not json');
    expectFtlError(() => DbLock.acquire(db), 'CONFLICT', /does not say who holds it; if no coordinator uses .*, delete .*c\.db\.lock$/);
    expect(readFileSync(lockFileOf(db), 'utf8')).toBe('not json');
  });

  test('a process that exits without its finally blocks (process.exit, as on a second Ctrl-C) still releases the lock', async () => {
    const db = join(dir(), 'c.db');
    // The built module, as the programs run it: this needs `npx tsc -b` first, like the CLI tests.
    const built = fileURLToPath(new URL('../../dist/store/db-lock.js', import.meta.url));
    const script = `import { DbLock } from ${JSON.stringify(built)}; DbLock.acquire(${JSON.stringify(db)}); console.log('held'); process.exit(130);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    const code = await new Promise((resolve) => child.once('close', resolve));
    expect({ code, out }).toEqual({ code: 130, out: 'held\n' });
    expect(existsSync(lockFileOf(db))).toBe(false);
  });

  test('release leaves a lock that is no longer ours (taken over meanwhile) in place', () => {
    const db = join(dir(), 'c.db');
    const lock = DbLock.acquire(db);
    writeFileSync(lockFileOf(db), JSON.stringify({ pid: 2, host: hostname(), startedAt: 'T' }));
    lock.release();
    expect(existsSync(lockFileOf(db))).toBe(true);
  });
});
