import { createHash } from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMsgpackParser, encodeMessagePack, ErrorCode, isFtlError } from '@ftl/shared';
import { describe, expect, test } from 'vitest';
import { AUDIT_GENESIS, AuditLog, auditLogPath, verifyAuditLog } from './audit-log.js';
import { formatAuditTable } from './audit-table.js';
import { parseAuditArgs, parseClientArgs } from './config.js';

const privacy = { noiseMultiplier: 1.1, clipNorm: 1, sampling: 'poisson' as const, delta: 1e-5 };

/** A log of five messages in a fresh folder; returns its path and its lines. */
function fiveLineLog(): { path: string; lines: string[] } {
  const path = auditLogPath(mkdtempSync(join(tmpdir(), 'ftl-audit-')), 'site-a');
  const log = new AuditLog(path);
  log.append({ kind: 'ready', run: 'r', round: null, payload: { runId: 'r', numTrain: 10 } });
  for (const round of [1, 2]) {
    const weights = { data: new Uint8Array(40).fill(round) };
    log.append({ kind: 'fit-result', run: 'r', round, payload: { runId: 'r', round, weights }, privacy, epsilon: round * 0.5 });
    log.append({ kind: 'evaluate-result', run: 'r', round, payload: { runId: 'r', round, accuracy: 0.9 }, privacy });
  }
  return { path, lines: readFileSync(path, 'utf8').split('\n').slice(0, -1) };
}

const verify = (lines: string[], end = '\n') => verifyAuditLog(lines.join('\n') + end);

describe('audit log', () => {
  test('each line records the payload as the socket encodes it, and chains to the line before', () => {
    const path = auditLogPath(mkdtempSync(join(tmpdir(), 'ftl-audit-')), 'site-a');
    const payload = { runId: 'r', round: 3, weights: { data: new Uint8Array([1, 2, 3]) }, skipped: undefined };
    const log = new AuditLog(path);
    const first = log.append({ kind: 'fit-result', run: 'r', round: 3, payload, privacy, epsilon: 1.5 });
    const second = log.append({ kind: 'failure', run: 'r', round: 4, payload: { runId: 'r', round: 4 } });
    const bytes = encodeMessagePack(payload);
    expect(first).toMatchObject({ kind: 'fit-result', run: 'r', round: 3, bytes: bytes.byteLength, privacy, epsilon: 1.5, prev: AUDIT_GENESIS });
    expect(first.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    // These bytes are in the frame the socket sends, unchanged.
    const { Encoder } = createMsgpackParser();
    const [frame] = (new Encoder() as { encode(p: unknown): Uint8Array[] }).encode({ type: 2, nsp: '/', data: ['fit-result', payload], id: 7 });
    expect(Buffer.from(frame!).indexOf(bytes)).toBeGreaterThan(0);
    const [line1] = readFileSync(path, 'utf8').split('\n');
    expect(second.prev).toBe(createHash('sha256').update(line1!).digest('hex'));
    expect(second).not.toHaveProperty('privacy');
    expect(verifyAuditLog(readFileSync(path, 'utf8'))).toMatchObject({ lines: 2 });
    expect(verifyAuditLog(readFileSync(path, 'utf8')).broken).toBeUndefined();
  });

  test.each([
    ['a deleted line', (l: string[]) => [...l.slice(0, 2), ...l.slice(3)], '', 3, /^prev does not match line 2's hash/],
    ['the first line deleted', (l: string[]) => l.slice(1), '', 1, /^prev is not the genesis value/],
    [
      'an edited byte size',
      (l: string[]) => l.map((s, i) => (i === 1 ? s.replace(/("bytes":\d*)(\d)/, (_, head, d) => `${head}${(+d + 1) % 10}`) : s)),
      '',
      3,
      /line 2's hash/,
    ],
    ['a swapped pair', (l: string[]) => [l[0]!, l[2]!, l[1]!, ...l.slice(3)], '', 2, /^prev does not match line 1's hash/],
    ['a line that is not JSON', (l: string[]) => l.map((s, i) => (i === 3 ? s.slice(0, 20) : s)), '', 4, /^not a JSON line/],
    ['a truncated last line', (l: string[]) => [...l.slice(0, 4), l[4]!.slice(0, 30)], 'none', 5, /^the last line has no line end/],
    ['a last line without its end', (l: string[]) => l, 'none', 5, /^the last line has no line end/],
  ])('the verifier names the first bad line for %s', (_, edit, end, line, reason) => {
    const { lines } = fiveLineLog();
    const verdict = verify(edit(lines), end === 'none' ? '' : '\n');
    expect(verdict.broken?.line).toBe(line);
    expect(verdict.broken?.reason).toMatch(reason);
  });

  test('an untouched log is intact; its head is the last line’s hash; the table shows every line', () => {
    const { path, lines } = fiveLineLog();
    const verdict = verifyAuditLog(readFileSync(path, 'utf8'));
    expect(verdict.broken).toBeUndefined();
    expect(verdict.head).toBe(createHash('sha256').update(lines[4]!).digest('hex'));
    const table = formatAuditTable(verdict).split('\n');
    expect(table[0]).toMatch(/^#\s+time\s+run\s+round\s+kind\s+bytes\s+sha256\s+ε$/);
    expect(table).toHaveLength(6);
    expect(table[2]).toMatch(/ r\s+1\s+fit-result\s+\d+\s+[0-9a-f]{12}\s+0\.500$/);
    expect(table[1]).toMatch(/ r\s+-\s+ready\s+\d+\s+[0-9a-f]{12}\s+-$/);
  });

  test('the client refuses to append to a log that ends in a half-written line', () => {
    const { path } = fiveLineLog();
    appendFileSync(path, '{"time":"2026');
    const log = new AuditLog(path);
    for (const act of [() => log.check(), () => log.append({ kind: 'ready', run: 'r', round: null, payload: {} })]) {
      expect(act).toThrow(/ends in a half-written line .* keep the file as evidence and move it aside/);
    }
  });

  test('a log in a folder that cannot be made is refused with the cache error', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'ftl-audit-')), 'file');
    writeFileSync(file, 'x');
    try {
      new AuditLog(join(file, 'audit', 'a.jsonl')).check();
      expect.unreachable();
    } catch (err) {
      expect(isFtlError(err, ErrorCode.InvalidConfig)).toBe(true);
      expect((err as Error).message).toMatch(/part of the path is a file/);
    }
  });
});

describe('audit flags', () => {
  test('ftl-client audit reads --file, or the default path from --cache-dir and --name', () => {
    expect(parseAuditArgs(['--file', 'x.jsonl'])).toEqual({ file: 'x.jsonl' });
    expect(parseAuditArgs(['--name', 'site-a'])).toEqual({ file: join('.ftl/cache', 'audit', 'site-a.jsonl') });
    expect(parseAuditArgs(['--cache-dir', 'c', '--name', 'site-a'])).toEqual({ file: join('c', 'audit', 'site-a.jsonl') });
    expect(() => parseAuditArgs([])).toThrow(/give --file PATH, or --name SITE/);
    expect(() => parseAuditArgs(['--file', 'x', '--name', 'a'])).toThrow(/not both/);
    expect(() => parseAuditArgs(['--name', '../etc'])).toThrow(/--name/);
  });

  test('the client keeps its log by default, at --audit-log, or none with --no-audit-log', () => {
    expect(parseClientArgs([])).not.toHaveProperty('auditLog');
    expect(parseClientArgs(['--audit-log', 'a.jsonl'])).toMatchObject({ auditLog: 'a.jsonl' });
    expect(parseClientArgs(['--no-audit-log'])).toMatchObject({ auditLog: false });
    expect(() => parseClientArgs(['--audit-log', 'a', '--no-audit-log'])).toThrow(/not both/);
  });
});
