import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, isFtlError } from '@ftl/shared';
import { describe, expect, test } from 'vitest';
import { checkRunTransition, isRunTransition, OPERATOR_ACTIONS, RUN_STATUSES, RUN_TRANSITIONS, type RunStatus } from './run-states.js';
import { Store } from './store/store.js';

const LEGAL: ReadonlyArray<[RunStatus, RunStatus]> = [
  ['created', 'running'],
  ['created', 'stopped'],
  ['running', 'running'],
  ['running', 'paused'],
  ['running', 'stopped'],
  ['running', 'completed'],
  ['running', 'failed'],
  ['paused', 'running'],
  ['paused', 'stopped'],
  ['stopped', 'running'],
  ['completed', 'running'],
  ['failed', 'running'],
];
const isLegal = (from: RunStatus, to: RunStatus) => LEGAL.some(([f, t]) => f === from && t === to);
const PAIRS = RUN_STATUSES.flatMap((from) => RUN_STATUSES.map((to) => [from, to, isLegal(from, to)] as const));

/** A store holding run `r` in status `from`, set up without the lifecycle check. */
function storeAt(from: RunStatus): Store {
  const store = Store.open(':memory:');
  store.createRun('r', {});
  store.setRunStatus('r', from);
  return store;
}

describe('the run lifecycle table', () => {
  test('lists exactly the moves the coordinator makes', () => {
    expect(RUN_STATUSES.flatMap((from) => RUN_STATUSES.filter((to) => isRunTransition(from, to)).map((to) => [from, to]))).toEqual(LEGAL);
    expect(Object.keys(RUN_TRANSITIONS).sort()).toEqual([...RUN_STATUSES].sort());
  });

  test.each(PAIRS)('%s → %s: legal %s, in the table and in the store', (from, to, legal) => {
    const store = storeAt(from);
    if (legal) {
      expect(() => checkRunTransition('r', from, to)).not.toThrow();
      expect(store.moveRun('r', to)).toBe(from);
      expect(store.getRun('r')?.status).toBe(to);
    } else {
      for (const code of [ErrorCode.InternalError, ErrorCode.Conflict] as const) {
        let thrown: unknown;
        try {
          checkRunTransition('r', from, to, code);
        } catch (err) {
          thrown = err;
        }
        expect(isFtlError(thrown, code)).toBe(true);
        expect((thrown as Error).message).toContain(`run r cannot go from ${from} to ${to}`);
      }
      expect(() => store.moveRun('r', to)).toThrow(
        expect.objectContaining({ code: ErrorCode.InternalError, message: expect.stringContaining(`from ${from} to ${to}`) }),
      );
      expect(store.getRun('r')?.status).toBe(from);
    }
    store.close();
  });

  test('moving an unknown run is NOT_FOUND', () => {
    const store = Store.open(':memory:');
    expect(() => store.moveRun('nope', 'running')).toThrow(expect.objectContaining({ code: ErrorCode.NotFound }));
    store.close();
  });

  test("every status an operator action starts from can make that action's move", () => {
    for (const from of OPERATOR_ACTIONS.start) expect(isRunTransition(from, 'running')).toBe(true);
    for (const from of OPERATOR_ACTIONS.resume) expect(isRunTransition(from, 'running')).toBe(true);
    for (const from of OPERATOR_ACTIONS.stop) expect(isRunTransition(from, 'stopped')).toBe(true);
  });
});

describe('status changes', () => {
  test("go through the store's moveRun: no module of the coordinator sets a status unchecked", () => {
    const src = dirname(fileURLToPath(import.meta.url));
    const files = readdirSync(src, { recursive: true, encoding: 'utf8' }).filter(
      (f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && f !== join('store', 'store.ts'),
    );
    const unchecked = files.filter((f) => /\.setRunStatus\(/.test(readFileSync(join(src, f), 'utf8')));
    expect(unchecked).toEqual([]);
    expect(files.filter((f) => /\.moveRun\(/.test(readFileSync(join(src, f), 'utf8'))).length).toBeGreaterThan(0);
  });
});
