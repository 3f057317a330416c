import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, isFtlError } from '@ftl/shared';
import { describe, expect, test } from 'vitest';
import { parseClientArgs, type ClientConfig } from './config.js';

const parse = (...argv: string[]) => parseClientArgs(argv) as ClientConfig;

function refused(argv: string[]): string {
  try {
    parseClientArgs(argv);
  } catch (err) {
    expect(isFtlError(err, ErrorCode.InvalidConfig), String(err)).toBe(true);
    return (err as Error).message;
  }
  throw new Error(`${argv.join(' ')} was accepted`);
}

describe('a site with a table', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ftl-table-flags-'));
  const records = join(dir, 'records.csv');
  writeFileSync(records, 'age,smoker,outcome\n54,yes,ill\n');
  const pixels = join(dir, 'pixels.csv');
  writeFileSync(pixels, `label,${Array.from({ length: 16 }, (_, i) => `pixel${i}`).join(',')}\n3,${'0,'.repeat(15)}0\n`);

  test('--table reads a table, split with --seed and --val-fraction', () => {
    expect(parse('--table', records, '--seed', '3', '--val-fraction', '0.2').data).toEqual({
      kind: 'table',
      file: records,
      seed: 3,
      valFraction: 0.2,
    });
  });

  test('--csv without --kind is a table unless every column but the label is a numbered pixel', () => {
    expect(parse('--csv', records).data.kind).toBe('table');
    expect(parse('--csv', pixels).data.kind).toBe('csv');
  });

  test('--kind says what a --csv file holds whatever its header', () => {
    expect(parse('--csv', pixels, '--kind', 'table').data.kind).toBe('table');
    expect(parse('--csv', records, '--kind', 'image').data.kind).toBe('csv');
  });

  test.each([
    [['--csv', records, '--kind', 'text'], '--kind must be table or image (got "text")'],
    [['--table', records, '--kind', 'table'], '--kind only applies with --csv (this client reads --table)'],
    [['--table', records, '--label-column', 'outcome'], "--label-column is for image CSV files; a table's label column is the run's"],
    [['--table', records, '--csv', pixels], '--dataset, --data-dir, --csv and --table are alternatives; give one (got --csv and --table)'],
  ])('%# refused: %s', (argv, message) => {
    expect(refused(argv)).toContain(message);
  });
});
