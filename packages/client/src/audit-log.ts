import { createHash } from 'node:crypto';
import { closeSync, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DP_SAMPLINGS, encodeMessagePack, ErrorCode, FtlError, type RecordPrivacy } from '@ftl/shared';
import { cacheWriteError } from './cache-dir.js';
import { oneLine } from './one-line.js';

/** What a site sends the coordinator, as its audit log names it: the event, or `failure`. */
export const AUDIT_KINDS = [
  'ready',
  'fit-result',
  'evaluate-result',
  'personalize-result',
  'class-sums-result',
  'secagg-advertise',
  'secagg-shares',
  'secagg-masked-input',
  'secagg-unmask-shares',
  'failure',
] as const;
export type AuditKind = (typeof AUDIT_KINDS)[number];

/** `prev` of a log's first line: no line came before it. */
export const AUDIT_GENESIS = '0'.repeat(64);

/**
 * One line of a site's audit log: one message the site sent. `bytes` and `sha256` are of the message's
 * payload as the socket's MessagePack encoder writes it ({@link encodeMessagePack}); `prev` is the
 * SHA-256 of the previous line's text (without its line end), {@link AUDIT_GENESIS} on the first.
 */
export interface AuditEntry {
  /** When the line was written, just before the message was handed to the connection (ISO 8601, UTC). */
  time: string;
  kind: AuditKind;
  run: string;
  /** The round the message answers; null for `ready`, which answers a run's welcome. */
  round: number | null;
  bytes: number;
  sha256: string;
  /** The record-level DP mechanism of the run's latest training instruction, in runs with `privacy.mode: record`. */
  privacy?: RecordPrivacy;
  /** The site's ε after the round, when the message reports one. */
  epsilon?: number;
  prev: string;
}

/** Where a site keeps its audit log by default: `<cacheDir>/audit/<site name>.jsonl`. */
export function auditLogPath(cacheDir: string, name: string): string {
  return join(cacheDir, 'audit', `${name}.jsonl`);
}

const sha256 = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');

// Lines are short (a few hundred bytes); the tail read for the last one grows until it finds its start.
const TAIL_CHUNK = 4096;

/** The text of the file's last line (without its line end), or undefined when the file is empty. Throws on a missing line end. */
function lastLine(fd: number, path: string): string | undefined {
  const size = fstatSync(fd).size;
  if (size === 0) return undefined;
  let chunk = Math.min(size, TAIL_CHUNK);
  for (;;) {
    const buf = Buffer.alloc(chunk);
    readSync(fd, buf, 0, chunk, size - chunk);
    if (buf[chunk - 1] !== 0x0a) {
      throw new FtlError(
        ErrorCode.InvalidConfig,
        `the audit log ${path} ends in a half-written line (the client stopped while writing it); ` +
          `run "ftl-client audit --file ${path}" to see it, keep the file as evidence and move it aside: the client then starts a new log`,
      );
    }
    const start = buf.lastIndexOf(0x0a, chunk - 2);
    if (start >= 0 || chunk === size) return buf.subarray(start + 1, chunk - 1).toString('utf8');
    chunk = Math.min(size, chunk * 4);
  }
}

/**
 * A site's append-only log of every message it sent the coordinator, one JSON line per message, each
 * chained to the one before by its hash, so a line deleted or edited breaks the chain where it was
 * ({@link verifyAuditLog}). Each line is written with one append and flushed to disk before the message
 * leaves; the previous line's hash is read from the file each time, so clients of one process writing
 * the same file keep one chain. One client process at a time should write a given file.
 *
 * @example
 * const audit = new AuditLog(auditLogPath('.ftl/cache', 'hospital-a'));
 * audit.append({ kind: 'fit-result', run: 'r1', round: 3, payload: message, privacy, epsilon: 1.9 });
 */
export class AuditLog {
  constructor(readonly path: string) {}

  /**
   * Checks that the log can be appended to: its folder can be written and it does not end in a
   * half-written line.
   *
   * @throws FtlError(INVALID_CONFIG) naming the file and what to do.
   */
  check(): void {
    const fd = this.openForAppend();
    try {
      lastLine(fd, this.path);
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Appends the line for one message, `payload` being what is handed to the connection, and flushes it
   * to disk. Returns the line's entry.
   *
   * @throws FtlError(INVALID_CONFIG) when the log cannot be written or ends in a half-written line: the
   * message must then not be sent, as it would leave no trace.
   */
  append(o: { kind: AuditKind; run: string; round: number | null; payload: unknown; privacy?: RecordPrivacy; epsilon?: number }): AuditEntry {
    const bytes = encodeMessagePack(o.payload);
    const fd = this.openForAppend();
    try {
      const last = lastLine(fd, this.path);
      const entry: AuditEntry = {
        time: new Date().toISOString(),
        kind: o.kind,
        run: o.run,
        round: o.round,
        bytes: bytes.byteLength,
        sha256: sha256(bytes),
        ...(o.privacy
          ? {
              privacy: {
                noiseMultiplier: o.privacy.noiseMultiplier,
                clipNorm: o.privacy.clipNorm,
                sampling: o.privacy.sampling,
                delta: o.privacy.delta,
              },
            }
          : {}),
        ...(o.epsilon !== undefined ? { epsilon: o.epsilon } : {}),
        prev: last === undefined ? AUDIT_GENESIS : sha256(last),
      };
      // One write of the whole line: an O_APPEND write lands at the end in one piece or, after a crash, leaves a
      // line without its end, which the verifier reports.
      writeSync(fd, `${JSON.stringify(entry)}\n`);
      fsyncSync(fd);
      return entry;
    } catch (err) {
      if (err instanceof FtlError) throw err;
      throw cacheWriteError(dirname(this.path), err);
    } finally {
      closeSync(fd);
    }
  }

  private openForAppend(): number {
    try {
      mkdirSync(dirname(this.path), { recursive: true });
      return openSync(this.path, 'a+');
    } catch (err) {
      throw cacheWriteError(dirname(this.path), err);
    }
  }
}

/** What {@link verifyAuditLog} found: every line it could read, and the first break in the chain if any. */
export interface AuditVerdict {
  /** The lines that parse as entries, with their 1-based line numbers (those after a break included). */
  entries: Array<{ line: number; entry: AuditEntry }>;
  /** How many lines the file has (a last line without its end counted). */
  lines: number;
  /** The first bad line and why; absent when the chain is intact. */
  broken?: { line: number; reason: string };
  /** SHA-256 of the last line's text: noted elsewhere (a register, an email), it also shows later that no line was cut off the end. */
  head: string;
}

const HEX64 = /^[0-9a-f]{64}$/;

/** The entry a line's text holds, or why it is not one. */
function parseEntry(text: string): AuditEntry | string {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return 'not a JSON line';
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'not a JSON object';
  const o = v as Record<string, unknown>;
  const bad = (field: string, what: string) => `${field} must be ${what} (got ${oneLine(JSON.stringify(o[field]) ?? 'nothing', 40)})`;
  if (typeof o['time'] !== 'string' || Number.isNaN(Date.parse(o['time']))) return bad('time', 'an ISO 8601 time');
  if (!(AUDIT_KINDS as readonly unknown[]).includes(o['kind'])) return bad('kind', AUDIT_KINDS.join(', '));
  if (typeof o['run'] !== 'string') return bad('run', 'a run id');
  if (o['round'] !== null && !Number.isSafeInteger(o['round'])) return bad('round', 'an integer or null');
  if (!Number.isSafeInteger(o['bytes']) || (o['bytes'] as number) < 0) return bad('bytes', 'a byte count');
  if (typeof o['sha256'] !== 'string' || !HEX64.test(o['sha256'])) return bad('sha256', '64 hex digits');
  if (typeof o['prev'] !== 'string' || !HEX64.test(o['prev'])) return bad('prev', '64 hex digits');
  if (o['epsilon'] !== undefined && (typeof o['epsilon'] !== 'number' || !(o['epsilon'] >= 0))) return bad('epsilon', 'a number ≥ 0');
  const p = o['privacy'] as Record<string, unknown> | undefined;
  if (
    p !== undefined &&
    (typeof p !== 'object' ||
      p === null ||
      !(typeof p['noiseMultiplier'] === 'number' && p['noiseMultiplier'] > 0) ||
      !(typeof p['clipNorm'] === 'number' && p['clipNorm'] > 0) ||
      !(DP_SAMPLINGS as readonly unknown[]).includes(p['sampling']) ||
      !(typeof p['delta'] === 'number' && p['delta'] > 0 && p['delta'] < 1))
  ) {
    return bad('privacy', '{noiseMultiplier, clipNorm, sampling, delta}');
  }
  return o as unknown as AuditEntry;
}

/**
 * Checks a site's audit log line by line: each is a complete JSON line of an entry and its `prev` is the
 * hash of the line before ({@link AUDIT_GENESIS} for the first). The first failure is reported with its
 * line number and why: a line edited, deleted or moved shows where the next line no longer matches it.
 * Lines cut off the end leave an intact but shorter chain; only a {@link AuditVerdict.head} noted earlier
 * shows those.
 *
 * @example
 * const verdict = verifyAuditLog(readFileSync(path, 'utf8'));
 * if (verdict.broken) console.error(`line ${verdict.broken.line}: ${verdict.broken.reason}`);
 */
export function verifyAuditLog(text: string): AuditVerdict {
  const complete = text.endsWith('\n') || text === '';
  const rows = text === '' ? [] : (complete ? text.slice(0, -1) : text).split('\n');
  const entries: AuditVerdict['entries'] = [];
  let broken: AuditVerdict['broken'];
  const fail = (line: number, reason: string) => {
    broken ??= { line, reason };
  };
  let prevHash = AUDIT_GENESIS;
  rows.forEach((row, i) => {
    const line = i + 1;
    const isLast = line === rows.length;
    if (isLast && !complete) fail(line, 'the last line has no line end — its write was cut short');
    const parsed = parseEntry(row);
    if (typeof parsed === 'string') fail(line, `${parsed} — the line was edited or its write was cut short`);
    else {
      entries.push({ line, entry: parsed });
      if (parsed.prev !== prevHash) {
        fail(
          line,
          line === 1
            ? 'prev is not the genesis value — lines were deleted before it'
            : `prev does not match line ${line - 1}'s hash — a line was edited or deleted before it`,
        );
      }
    }
    prevHash = sha256(row);
  });
  return { entries, lines: rows.length, head: prevHash, ...(broken ? { broken } : {}) };
}

/** Reads and checks the audit log at `path` ({@link verifyAuditLog}). @throws FtlError(INVALID_CONFIG) when it cannot be read. */
export function readAuditLog(path: string): AuditVerdict {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `cannot read the audit log ${path} (${oneLine((err as Error).message)}); give --file or --cache-dir and --name`,
      {
        cause: err,
      },
    );
  }
  return verifyAuditLog(text);
}
