import { ErrorCode, FtlError } from '@ftl/shared';
import { type AuditVerdict, readAuditLog } from './audit-log.js';

const HEADER = ['#', 'time', 'run', 'round', 'kind', 'bytes', 'sha256', 'ε'] as const;
// Numbers read best aligned to the right.
const RIGHT = new Set<string>(['#', 'round', 'bytes', 'ε']);

/** An audit log as a table: one row per readable line, columns padded to their widest cell. */
export function formatAuditTable(verdict: AuditVerdict): string {
  const rows = verdict.entries.map(({ line, entry: e }) => [
    String(line),
    e.time,
    e.run,
    e.round === null ? '-' : String(e.round),
    e.kind,
    String(e.bytes),
    e.sha256.slice(0, 12),
    e.epsilon === undefined ? '-' : e.epsilon.toFixed(3),
  ]);
  const table = [[...HEADER], ...rows];
  const widths = HEADER.map((_, c) => Math.max(...table.map((r) => r[c]!.length)));
  return table
    .map((r) =>
      r
        .map((cell, c) => (RIGHT.has(HEADER[c]!) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/**
 * `ftl-client audit`: prints the log at `file` as a table, then `chain intact: N lines` with the last
 * line's hash.
 *
 * @throws FtlError(INVALID_CONFIG) after the table when the chain is broken, naming the first bad line
 * and why, so the program exits 1.
 */
export function printAuditLog(file: string, write: (text: string) => void): void {
  const verdict = readAuditLog(file);
  write(`${formatAuditTable(verdict)}\n`);
  if (verdict.broken) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `line ${verdict.broken.line}: ${verdict.broken.reason} (audit log ${file}; keep it as it is, as evidence)`,
    );
  }
  write(`chain intact: ${verdict.lines} lines; last line's SHA-256 ${verdict.head}\n`);
}
