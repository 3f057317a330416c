import { Writable } from 'node:stream';
import { describe, expect, test } from 'vitest';
import { createStudyProgress, estimateSecondsLeft } from './progress.js';

/** A stream that keeps what it is given; `tty` makes it claim to be a terminal 100 columns wide. */
function capture(tty = false) {
  const chunks: string[] = [];
  const stream = Object.assign(
    new Writable({
      write(chunk, _encoding, done) {
        chunks.push(String(chunk));
        done();
      },
    }),
    tty ? { isTTY: true, columns: 100 } : {},
  );
  return { stream, text: () => chunks.join('') };
}

/** A clock the test moves by hand: the ETA is checked against arithmetic, never against real time. */
function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (seconds: number) => (t += seconds * 1000) };
}

describe('study progress', () => {
  test('the ETA is the time per finished round times the rounds left', () => {
    expect(estimateSecondsLeft(20, 2, 10)).toBe(80);
    expect(estimateSecondsLeft(20, 10, 10)).toBe(0);
    expect(estimateSecondsLeft(0, 0, 10)).toBeNaN();
  });

  test('off a terminal: one plain line per finished round, nothing else, no carriage returns', () => {
    const out = capture();
    const time = clock();
    const progress = createStudyProgress({ totalRounds: 6, stream: out.stream, now: time.now });
    progress.startRun({ run: 1, runs: 2, method: 'transfer', seed: 1, rounds: 3, clients: 5, setting: { name: 'samples per site', value: 10 } });
    for (let round = 1; round <= 3; round++) {
      progress.clientsDone(2);
      time.advance(10);
      progress.roundDone(round, { clientsDone: 5, accuracy: 0.9 + round / 100 });
    }
    progress.endRun();
    progress.stop();
    expect(out.text()).not.toContain('\r');
    expect(out.text().split('\n')).toEqual([
      'run 1/2 · transfer · samples per site = 10 · seed 1 · round 1/3 · clients done 5/5 · accuracy 91.00% · ETA 50s',
      'run 1/2 · transfer · samples per site = 10 · seed 1 · round 2/3 · clients done 5/5 · accuracy 92.00% · ETA 40s',
      'run 1/2 · transfer · samples per site = 10 · seed 1 · round 3/3 · clients done 5/5 · accuracy 93.00% · ETA 30s',
      '',
    ]);
  });

  test('a run that stops early takes its unplayed rounds out of the ETA', () => {
    const out = capture();
    const time = clock();
    const progress = createStudyProgress({ totalRounds: 20, stream: out.stream, now: time.now });
    progress.startRun({ run: 1, runs: 2, method: 'scratch', seed: 1, rounds: 10, clients: 3 });
    time.advance(30);
    progress.roundDone(1);
    progress.endRun();
    progress.startRun({ run: 2, runs: 2, method: 'scratch', seed: 2, rounds: 10, clients: 3 });
    time.advance(30);
    progress.roundDone(1);
    // 2 rounds in 60 s, 11 rounds planned now that run 1 stopped after one: 9 left at 30 s each.
    expect(out.text().trim().split('\n').at(-1)).toBe('run 2/2 · scratch · seed 2 · round 1/10 · clients done 0/3 · ETA 4m 30s');
    progress.stop();
  });

  test('after stop nothing more is written, and stopping twice is harmless', () => {
    const out = capture();
    const progress = createStudyProgress({ totalRounds: 2, stream: out.stream });
    progress.startRun({ run: 1, runs: 1, method: 'transfer', seed: 1, rounds: 2, clients: 1 });
    progress.stop();
    progress.stop();
    progress.roundDone(1);
    expect(out.text()).toBe('');
  });

  test('on a terminal: a bar redrawn in place, the cursor restored and the exit hook removed on stop', () => {
    const out = capture(true);
    const exitHooks = process.listenerCount('exit');
    const progress = createStudyProgress({ totalRounds: 4, stream: out.stream });
    expect(process.listenerCount('exit')).toBe(exitHooks + 1);
    progress.startRun({ run: 1, runs: 2, method: 'transfer', seed: 7, rounds: 2, clients: 4 });
    progress.clientsDone(3);
    progress.roundDone(1);
    progress.stop();
    progress.stop();
    expect(process.listenerCount('exit')).toBe(exitHooks);
    const text = out.text();
    // Redraws are throttled, so only the last one (at stop) is certain to be there.
    expect(text).toContain('run 1/2 · transfer · seed 7 · round 2/2 · clients done 0/4 · ETA');
    // The cursor hidden while drawing is shown again, and the shell's prompt starts on a line of its own.
    expect(text.indexOf('\x1B[?25l')).toBeGreaterThanOrEqual(0);
    expect(text.lastIndexOf('\x1B[?25h')).toBeGreaterThan(text.lastIndexOf('\x1B[?25l'));
    expect(text.endsWith('\n')).toBe(true);
  });
});
