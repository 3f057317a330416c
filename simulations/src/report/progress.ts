import cliProgress from 'cli-progress';
import { formatDuration } from './format.js';
import { type Setting, settingLabel } from './stats.js';

// cli-progress is CommonJS: Node's ES module loader offers it as a default export only.
const { Format, SingleBar } = cliProgress;

/** A run about to start, as the progress line names it. */
export interface RunStart {
  /** 1-based position of the run in the study, and the study's number of runs. */
  run: number;
  runs: number;
  method: string;
  seed: number;
  setting?: Setting;
  /** Rounds this run plans, and sites per round. */
  rounds: number;
  clients: number;
}

/** What a study runner tells the progress display; every call is cheap and none throws. */
export interface StudyProgress {
  startRun(run: RunStart): void;
  /** `done` of the current round's sites have sent their update. */
  clientsDone(done: number): void;
  /** Round `round` of the current run has ended; `accuracy`, when known, is shown with it. */
  roundDone(round: number, detail?: { clientsDone?: number; accuracy?: number }): void;
  /** The current run has ended, possibly before its planned rounds (early stop, failure): the ETA stops counting them. */
  endRun(): void;
  /** Stops drawing and restores the terminal. Safe to call more than once, and after nothing started. */
  stop(): void;
}

/** Where and how the progress goes. */
export interface ProgressOptions {
  /** Rounds the whole study plans (the sum of every run's rounds): the ETA is the time per round so far times what remains. */
  totalRounds: number;
  /** Defaults to `process.stdout`. */
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** A live bar (`true`) or one plain line per finished round (`false`); defaults to whether the stream is a terminal. */
  tty?: boolean;
  /** Milliseconds clock; tests pass their own. */
  now?: () => number;
}

/** Seconds left: the mean time per finished round times the rounds still planned, unknown before the first round. */
export function estimateSecondsLeft(elapsedSeconds: number, roundsDone: number, totalRounds: number): number {
  if (roundsDone <= 0) return NaN;
  return (elapsedSeconds / roundsDone) * Math.max(0, totalRounds - roundsDone);
}

/**
 * The study's progress as `run i/N · method · seed · round r/R · clients done k/n · ETA`: a bar redrawn in
 * place on a terminal, and on anything else (CI logs, files) one plain line per finished round and nothing
 * in between, so a log holds no carriage-return redraws. Call `stop()` when the study ends or fails; it is
 * also called on process exit so a terminal never keeps a hidden cursor.
 *
 * @example
 * const progress = createStudyProgress({ totalRounds: runs.length * rounds });
 * try {
 *   progress.startRun({ run: 1, runs: runs.length, method: 'transfer', seed: 1, rounds, clients: 10 });
 *   progress.roundDone(1, { accuracy: 0.91 });
 *   progress.endRun();
 * } finally {
 *   progress.stop();
 * }
 */
export function createStudyProgress(options: ProgressOptions): StudyProgress {
  const stream = options.stream ?? process.stdout;
  const tty = options.tty ?? stream.isTTY === true;
  const now = options.now ?? Date.now;
  const started = now();
  let total = options.totalRounds;
  let roundsDone = 0;
  let current: RunStart | undefined;
  let runRoundsDone = 0;
  let round = 0;
  let clients = 0;
  let stopped = false;
  let bar: InstanceType<typeof SingleBar> | undefined;

  const eta = () => formatDuration(estimateSecondsLeft((now() - started) / 1000, roundsDone, total));
  const line = (accuracy?: number) => {
    if (current === undefined) return `ETA ${eta()}`;
    const where = settingLabel(current.setting);
    return [
      `run ${current.run}/${current.runs}`,
      current.method,
      ...(where !== undefined ? [where] : []),
      `seed ${current.seed}`,
      `round ${round}/${current.rounds}`,
      `clients done ${clients}/${current.clients}`,
      ...(accuracy !== undefined && Number.isFinite(accuracy) ? [`accuracy ${(accuracy * 100).toFixed(2)}%`] : []),
      `ETA ${eta()}`,
    ].join(' · ');
  };
  const onExit = () => stop();
  const stop = () => {
    if (stopped) return;
    stopped = true;
    process.removeListener('exit', onExit);
    if (bar !== undefined) {
      bar.update(roundsDone);
      bar.stop();
    }
  };
  const redraw = () => bar?.update(roundsDone);

  if (tty) {
    bar = new SingleBar({
      stream: stream as NodeJS.WriteStream,
      // Built at each redraw, so the ETA moves with the clock between rounds too.
      format: (opts, params) => `${Format.BarFormat(params.progress, opts)} ${line()}`,
      barsize: 20,
      hideCursor: true,
      clearOnComplete: false,
      // The study runner owns SIGINT and SIGTERM; `stop()` runs from its cleanup and on exit.
      gracefulExit: false,
    });
    bar.start(Math.max(1, total), 0);
    process.on('exit', onExit);
  }

  return {
    startRun(run) {
      if (stopped) return;
      current = run;
      runRoundsDone = 0;
      round = 1;
      clients = 0;
      redraw();
    },
    clientsDone(done) {
      if (stopped) return;
      clients = done;
      redraw();
    },
    roundDone(done, detail = {}) {
      if (stopped) return;
      round = done;
      if (detail.clientsDone !== undefined) clients = detail.clientsDone;
      roundsDone++;
      runRoundsDone++;
      if (bar === undefined) {
        stream.write(`${line(detail.accuracy)}\n`);
      } else {
        redraw();
        // The live line moves on to the next round, whose sites have not reported yet.
        if (current !== undefined && done < current.rounds) {
          round = done + 1;
          clients = 0;
        }
      }
    },
    endRun() {
      if (stopped || current === undefined) return;
      total -= Math.max(0, current.rounds - runRoundsDone);
      bar?.setTotal(Math.max(1, total));
      current = undefined;
      redraw();
    },
    stop,
  };
}
