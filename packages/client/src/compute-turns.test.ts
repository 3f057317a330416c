import { expect, test } from 'vitest';
import { ComputeTurns } from './compute-turns.js';

test('tasks run one at a time in the order given, and a failed one does not stop the next', async () => {
  const turns = new ComputeTurns();
  const events: string[] = [];
  const task =
    (name: string, fail = false) =>
    async () => {
      events.push(`${name} start`);
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
      events.push(`${name} end`);
      if (fail) throw new Error(`${name} failed`);
      return name;
    };
  const results = await Promise.allSettled([turns.run(task('a')), turns.run(task('b', true)), turns.run(task('c'))]);
  expect(events).toEqual(['a start', 'a end', 'b start', 'b end', 'c start', 'c end']);
  expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual(['a', 'b failed', 'c']);
});
