#!/usr/bin/env node
import { spawn, type ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { flagOptions, createLogger, ErrorCode, FtlError, initBackend, numberFlag, parsePartition, runProgram, stringFlag } from '@ftl/shared';
import { holdoutAccuracy } from './holdout.js';

const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const COORDINATOR = root('packages/coordinator/dist/cli.js');
const CLIENT = root('packages/client/dist/cli.js');

const HELP = `npm run demo -- [options]
Starts a coordinator and N clients as separate processes on loopback and runs two federated runs on
the same few MNIST images spread over the clients: transfer (a backbone pretrained on Fashion-MNIST,
frozen, with a linear head that starts as the sites' pooled discriminant) and, as the baseline, the same
network trained from scratch (random weights, every layer trained and sent). Prints both per-round
tables and, last, each exported model's accuracy on held-out MNIST images no client saw, with the bytes
and seconds a round took.
  --clients N                   (default 5)
  --images N                    labelled MNIST images shared by all the clients (default 250; 0: the
                                whole 8,500-image federation pool)
  --rounds N                    (default 5)
  --partition P                 iid | dirichlet:<alpha> (default dirichlet:0.5)
  --epochs N                    local epochs per round (default 5)
  --round-deadline S            (default 60)
  --seed N                      (default 1)
  --backbone NAME|DIR           the pretrained backbone (default encoder-spatial-fmnist)
  --no-baseline                 skip the from-scratch run
  --kill-client-after-round K   SIGKILL the last client of the transfer run once round K is printed,
                                to show a run survives it
  --work DIR                    scratch folder (default .ftl/demo)`;

function lines(child: ChildProcess, onLine: (line: string) => void): void {
  createInterface({ input: child.stdout! }).on('line', onLine);
}

function exited(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    // A child killed by a signal has signalCode set and exitCode null.
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode ?? 128);
    else child.once('exit', (code) => resolve(code ?? 128));
  });
}

/** What one federated run of the demo measured. */
interface DemoRun {
  label: string;
  heldOut: number;
  n: number;
  /** Mean over rounds of MB in + out (every client). */
  mbPerRound: number;
  /** Mean seconds of a round (train + evaluate, clients in parallel). */
  secondsPerRound: number;
  /** Mean kB of one site's update (what it sends back after training). */
  kbPerUpdate: number;
  seconds: number;
}

interface DemoSettings {
  clients: number;
  images: number;
  rounds: number;
  partition: string;
  epochs: string;
  deadline: string;
  seed: string;
  backbone: string;
  work: string;
  killAfter?: number;
  say: (line: string) => void;
}

/** One coordinator and `clients` client processes to the end of a run; the exported model is scored on held-out MNIST. */
async function federate(s: DemoSettings, label: string, runArgs: string[]): Promise<DemoRun> {
  const t0 = performance.now();
  const work = `${s.work}/${label}`;
  const out = `${work}/global-model`;
  await rm(work, { recursive: true, force: true });
  const env = { ...process.env, FTL_LOG: process.env['FTL_LOG'] ?? 'warn' };
  const coordinator = spawn(
    process.execPath,
    [
      COORDINATOR,
      '--port',
      '0',
      '--rounds',
      String(s.rounds),
      '--min-clients',
      String(s.clients),
      '--wait-timeout',
      '120',
      '--epochs',
      s.epochs,
      '--round-deadline',
      s.deadline,
      '--backbone',
      s.backbone,
      ...runArgs,
      '--seed',
      s.seed,
      '--run-id',
      `demo-${label}-${Date.now().toString(36)}`,
      '--out',
      out,
      '--db',
      `${work}/coordinator.db`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], env },
  );
  const children: ChildProcess[] = [coordinator];
  const killAll = () => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL'));
  process.once('exit', killAll);
  const rows: { mb: number; kbPerUpdate: number; seconds: number }[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    lines(coordinator, (line) => {
      const m = /listening on (\S+)/.exec(line);
      if (m) resolve(m[1]!);
      else s.say(line);
      const row = /^\s*(\d+)\/\d+ \|/.exec(line);
      if (!row) return;
      const cells = line.split('|').map((c) => c.trim());
      const accepted = Number(/^(\d+)\//.exec(cells[1]!)?.[1] ?? 0);
      rows.push({
        mb: Number(cells[5]) + Number(cells[6]),
        kbPerUpdate: accepted > 0 ? (Number(cells[5]) * 1000) / accepted : NaN,
        seconds: Number(cells[7]),
      });
      if (s.killAfter !== undefined && Number(row[1]) === s.killAfter) {
        const victim = children.at(-1)!;
        s.say(`demo: killing client ${s.clients - 1} (pid ${victim.pid}) with SIGKILL; the run must carry on without it`);
        victim.kill('SIGKILL');
      }
    });
    coordinator.once('exit', (code) => reject(new FtlError(ErrorCode.Timeout, `coordinator exited (${code}) before listening`)));
  });
  for (let i = 0; i < s.clients; i++) {
    children.push(
      spawn(
        process.execPath,
        [
          CLIENT,
          '--server',
          url,
          '--name',
          `client-${i}`,
          '--dataset',
          'mnist',
          '--partition',
          s.partition,
          '--clients',
          String(s.clients),
          '--index',
          String(i),
          '--seed',
          s.seed,
          '--cache-dir',
          `${work}/cache-${i}`,
          ...(s.images > 0 ? ['--limit', String(s.images)] : []),
        ],
        { stdio: ['ignore', 'inherit', 'inherit'], env },
      ),
    );
  }
  const code = await exited(coordinator);
  const clientCodes = await Promise.all(children.slice(1).map(exited));
  process.removeListener('exit', killAll);
  if (code !== 0) throw new FtlError(ErrorCode.Quorum, `the ${label} run's coordinator exited with code ${code}`);
  s.say(`clients exited with codes ${clientCodes.join(', ')}`);
  const { accuracy, n } = await holdoutAccuracy(out);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);
  return {
    label,
    heldOut: accuracy,
    n,
    mbPerRound: mean(rows.map((r) => r.mb)),
    secondsPerRound: mean(rows.map((r) => r.seconds)),
    kbPerUpdate: mean(rows.map((r) => r.kbPerUpdate).filter(Number.isFinite)),
    seconds: (performance.now() - t0) / 1000,
  };
}

const FLAGS = flagOptions(
  ['clients', 'images', 'rounds', 'partition', 'epochs', 'round-deadline', 'seed', 'kill-client-after-round', 'work', 'backbone'],
  ['no-baseline'],
);

runProgram({ help: HELP, flags: FLAGS }, async (values) => {
  const clients = numberFlag(values, 'clients', { default: 5, min: 1, max: 50, integer: true });
  const images = numberFlag(values, 'images', { default: 250, min: 0, integer: true });
  if (images > 0 && images < 10 * clients) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `--images ${images} leaves fewer than 10 images per client; give at least ${10 * clients}, or 0 for the whole pool`,
    );
  }
  const rounds = numberFlag(values, 'rounds', { default: 5, min: 1, integer: true });
  const partition = stringFlag(values, 'partition', 'dirichlet:0.5');
  parsePartition(partition);
  const killAfter =
    values['kill-client-after-round'] === undefined
      ? undefined
      : numberFlag(values, 'kill-client-after-round', { default: 1, min: 1, max: rounds - 1, integer: true });
  const t0 = performance.now();
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const settings: DemoSettings = {
    clients,
    images,
    rounds,
    partition,
    say,
    epochs: String(numberFlag(values, 'epochs', { default: 5, min: 1, integer: true })),
    deadline: String(numberFlag(values, 'round-deadline', { default: 60, min: 1 })),
    seed: String(numberFlag(values, 'seed', { default: 1, min: 0, integer: true })),
    backbone: stringFlag(values, 'backbone', 'encoder-spatial-fmnist'),
    work: stringFlag(values, 'work', root('.ftl/demo')),
    ...(killAfter !== undefined ? { killAfter } : {}),
  };
  await initBackend({ log: createLogger('demo', { level: 'warn' }) });
  const pool = images > 0 ? `${images} labelled MNIST images` : 'the MNIST federation pool';
  say(`ftl demo: 1 coordinator + ${clients} clients over loopback socket.io, ${pool} split ${partition}, ${rounds} rounds each`);
  say(`\ntransfer: backbone ${settings.backbone} frozen, linear head started as the sites' pooled discriminant`);
  const runs = [await federate(settings, 'transfer', ['--hidden', '', '--head-init', 'discriminant'])];
  if (values['no-baseline'] !== true) {
    say(`\nfrom scratch: the same network with random weights, every layer trained and sent`);
    runs.push(await federate({ ...settings, killAfter: undefined } as DemoSettings, 'scratch', ['--hidden', '', '--fine-tuning', 'scratch']));
  }
  say('');
  say('run          | held-out accuracy | kB per update | MB per round | seconds per round');
  for (const r of runs) {
    say(
      `${r.label.padEnd(12)} | ${`${(r.heldOut * 100).toFixed(2)}%`.padStart(17)} | ${r.kbPerUpdate.toFixed(1).padStart(13)} | ` +
        `${r.mbPerRound.toFixed(2).padStart(12)} | ${r.secondsPerRound.toFixed(1).padStart(17)}`,
    );
  }
  const [transfer, scratch] = runs;
  say(
    `final held-out MNIST test accuracy: ${(transfer!.heldOut * 100).toFixed(2)}% on ${transfer!.n} images no client saw` +
      (scratch
        ? ` (from scratch: ${(scratch.heldOut * 100).toFixed(2)}%, ${((transfer!.heldOut - scratch.heldOut) * 100).toFixed(2)} points ` +
          `${transfer!.heldOut >= scratch.heldOut ? 'in favour of' : 'against'} transfer)`
        : '') +
      `; ${((performance.now() - t0) / 1000).toFixed(1)} s in all`,
  );
});
