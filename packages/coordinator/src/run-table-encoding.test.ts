import { expectFtlError } from '@ftl/shared/testing';
import { ErrorCode } from '@ftl/shared';
import { describe, expect, test } from 'vitest';
import { defaultCoordinatorConfig } from './config.js';
import { parseRunConfig } from './run-config.js';
import { tableRunProblem } from './run-table-encoding.js';

const COLUMNS = [
  { name: 'age', type: 'numeric' },
  { name: 'smoker', type: 'categorical', categories: 3, missing: 'indicator' },
  { name: 'outcome', type: 'categorical', role: 'label' },
];

describe('the run config table block', () => {
  test('fills each column with its defaults: a feature, missing values refused, 16 category slots; k = 5, standard scaling', () => {
    const { table } = parseRunConfig({ table: { columns: [{ name: 'x', type: 'numeric' }, COLUMNS[2]] } });
    expect(table).toEqual({
      columns: [
        { name: 'x', type: 'numeric', role: 'feature', missing: 'error', categories: 16 },
        { name: 'outcome', type: 'categorical', role: 'label', missing: 'error', categories: 16 },
      ],
      minCategoryRows: 5,
      scaling: 'standard',
    });
  });

  test.each([
    [{ columns: [{ name: 'x', type: 'text' }, COLUMNS[2]] }, 'table.columns.type must be numeric, categorical, boolean or date (got "text")'],
    [{ columns: [COLUMNS[0]] }, 'table.columns must be a list of 1–4096 columns'],
    [{ columns: [COLUMNS[2], COLUMNS[2]] }, 'names unique, exactly one with role label'],
    [{ columns: COLUMNS, minCategoryRows: 0 }, 'table.minCategoryRows must be an integer in [1, 1000000]'],
    [{ columns: COLUMNS, colour: 1 }, 'unknown field table.colour'],
  ])('%# is refused in one line naming the field', (table, message) => {
    expectFtlError(() => parseRunConfig({ table }), ErrorCode.InvalidConfig, new RegExp(message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  });
});

describe('a tabular run and its backbone', () => {
  const config = (over: object = {}) => ({ ...defaultCoordinatorConfig(), ...parseRunConfig({ table: { columns: COLUMNS }, ...over }) });

  test('the backbone must take the encoded row: age 1 + smoker 3 slots + other + missing = 6 values', () => {
    expect(tableRunProblem(config(), [1, 6, 1])).toBeUndefined();
    expect(tableRunProblem(config(), [1, 30, 1])).toMatch(
      /^the backbone takes 1×30×1 = 30 values per input, but the run's table encodes a row as 6 values/,
    );
  });

  test('image normalisation and augmentation do not apply to tables', () => {
    expect(tableRunProblem(config({ normalization: 'standard' }), [1, 6, 1])).toMatch(/set normalization to none/);
    expect(tableRunProblem(config({ augment: { copies: 1 } }), [1, 6, 1])).toMatch(/set augment.copies to 0/);
  });

  test('an image run has no table problem', () => {
    expect(tableRunProblem({ ...defaultCoordinatorConfig() }, [28, 28, 1])).toBeUndefined();
  });
});
