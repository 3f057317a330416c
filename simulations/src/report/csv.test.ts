import { describe, expect, test } from 'vitest';
import { clientsCsv, csvField, roundsCsv, summaryCsv, toCsv } from './csv.js';
import { summarizeStudy } from './stats.js';
import { fixtureRun, fixtureStudy } from './study-fixture.js';

/** An RFC 4180 reader, written here from the RFC so the writer is checked against something other than itself. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c === '"') {
      if (field !== '') throw new Error(`a quote inside an unquoted field at ${i}`);
      quoted = true;
    } else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i++;
    } else if (c === '\n' || c === '\r') {
      throw new Error(`a bare line break outside quotes at ${i}`);
    } else {
      field += c;
    }
  }
  if (quoted) throw new Error('an unterminated quoted field');
  if (field !== '' || row.length > 0) throw new Error('no line end after the last row');
  return rows;
}

const awkward = ['plain', 'with, comma', 'with "quotes"', 'two\nlines', 'cr\r\nlf', ' leading space', 'trailing ', '', '<script>', 'naïve ✓'];

describe('CSV', () => {
  test.each([
    ['plain', 'plain'],
    ['a,b', '"a,b"'],
    ['say "hi"', '"say ""hi"""'],
    ['a\nb', '"a\nb"'],
    [' x', '" x"'],
    [0.25, '0.25'],
    [Number.NaN, ''],
    [Number.POSITIVE_INFINITY, ''],
    [undefined, ''],
  ])('the field %j is written %j', (value, expected) => {
    expect(csvField(value)).toBe(expected);
  });

  test('awkward text survives a write and a read unchanged', () => {
    const rows = awkward.map((text, i) => [text, i]);
    expect(parseCsv(toCsv(['text', 'i'], rows))).toEqual([['text', 'i'], ...awkward.map((text, i) => [text, String(i)])]);
  });

  test('rounds.csv has one row per run and round, failed runs included, and awkward method names round-trip', () => {
    const runs = [
      fixtureRun({ method: 'transfer, "v2"\nhead', seed: 1, accuracies: [0.5, 0.6], setting: { name: 'samples, per site', value: 10 } }),
      fixtureRun({ method: 'scratch', seed: 2, accuracies: [0.4], failed: 'diverged: loss, NaN' }),
    ];
    const text = roundsCsv(fixtureStudy(runs));
    // The header line, as a spreadsheet or a script reading the file sees it.
    expect(text.split('\r\n')[0]).toBe(
      'method,setting,setting_value,seed,round,val_loss,val_accuracy,held_out,train_loss,accepted,selected,bytes_in,bytes_out,seconds,epsilon,failed',
    );
    const [, ...rows] = parseCsv(text);
    expect(rows).toHaveLength(3);
    expect(rows[1]).toEqual([
      'transfer, "v2"\nhead',
      'samples, per site',
      '10',
      '1',
      '2',
      '0.4',
      '0.59',
      '0.6',
      String(1.1 - 0.6),
      '3',
      '3',
      '1000',
      '2000',
      '2',
      '',
      '',
    ]);
    expect(rows[2]![0]).toBe('scratch');
    expect(rows[2]![1]).toBe('');
    expect(rows[2]![15]).toBe('diverged: loss, NaN');
  });

  test('summary.csv has one row per setting and method with mean, half-width, n and failed count', () => {
    const runs = [
      fixtureRun({ method: 'transfer', seed: 1, accuracies: [0.8] }),
      fixtureRun({ method: 'transfer', seed: 2, accuracies: [0.84] }),
      fixtureRun({ method: 'transfer', seed: 3, accuracies: [0.88] }),
      fixtureRun({ method: 'transfer', seed: 4, accuracies: [0.1], failed: 'crashed' }),
      fixtureRun({ method: 'scratch', seed: 1, accuracies: [0.7] }),
    ];
    const [header, ...rows] = parseCsv(summaryCsv(summarizeStudy(fixtureStudy(runs))));
    const column = (name: string) => header!.indexOf(name);
    expect(rows.map((r) => r[column('method')])).toEqual(['transfer', 'scratch']);
    expect(Number(rows[0]![column('held_out_mean')])).toBeCloseTo(0.84, 12);
    expect(Number(rows[0]![column('held_out_half_width')])).toBeCloseTo(0.0993735, 6);
    expect(rows[0]![column('n')]).toBe('3');
    expect(rows[0]![column('failed')]).toBe('1');
    // One seed has no interval: the cell is empty, not NaN.
    expect(rows[1]![column('held_out_half_width')]).toBe('');
  });

  test('per-site rows come only from runs that report them', () => {
    const plain = fixtureRun({ method: 'transfer', seed: 1, accuracies: [0.5] });
    expect(clientsCsv(fixtureStudy([plain]))).toBeUndefined();
    const withSites = fixtureRun({ method: 'transfer', seed: 1, accuracies: [0.5, 0.6] });
    withSites.rounds[1]!.perClient = [
      { client: 'site "a"', samples: 12, valAccuracy: 0.5, valLoss: 1.2 },
      { client: 'b', samples: 30, valAccuracy: 0.7, valLoss: 0.8 },
    ];
    expect(parseCsv(clientsCsv(fixtureStudy([plain, withSites]))!)).toEqual([
      ['method', 'setting', 'setting_value', 'seed', 'round', 'client', 'samples', 'val_accuracy', 'val_loss'],
      ['transfer', '', '', '1', '2', 'site "a"', '12', '0.5', '1.2'],
      ['transfer', '', '', '1', '2', 'b', '30', '0.7', '0.8'],
    ]);
  });
});
