#!/usr/bin/env node
import { spawn, type ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createLogger, ErrorCode, FtlError, initBackend, numberFlag, parseFlags, parsePartition, runMain, stringFlag } from '@ftl/shared';
import { holdoutAccuracy } from './holdout.js';

const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const COORDINATOR = root('packages/coordinator/dist/cli.js');
const CLIENT = root('packages/client/dist/cli.js');

const HELP = `npm run demo -- [options]
Starts a coordinator and N clients as separate processes on loopback, runs a federated run on MNIST
and prints the per-round table and, last, the global model's accuracy on the held-out MNIST test set.
  --clients N                   (default 5)
  --rounds N                    (default 5)
  --partition P                 iid | dirichlet:<alpha> (default dirichlet:0.5)
  --epochs N                    local epochs per round (default 5)
  --round-deadline S            (default 60)
  --seed N                      (default 1)
  --kill-client-after-round K   SIGKILL the last client once round K is printed, to show a run survives it
  --backbone DIR                backbone folder (default: the committed one)
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

runMain(async () => {
  const str = { type: 'string' } as const;
  const values = parseFlags(process.argv.slice(2), {
      clients: str, rounds: str, partition: str, epochs: str, 'round-deadline': str, seed: str,
      'kill-client-after-round': str, work: str, backbone: str, help: { type: 'boolean' },
    });
  if (values['help']) {
    process.stdout.write(HELP + '\n');
    return;
  }
  const clients = numberFlag(values, 'clients', { default: 5, min: 1, max: 50, integer: true });
  const rounds = numberFlag(values, 'rounds', { default: 5, min: 1, integer: true });
  const partition = stringFlag(values, 'partition', 'dirichlet:0.5');
  parsePartition(partition);
  const killAfter = values['kill-client-after-round'] === undefined ? undefined
    : numberFlag(values, 'kill-client-after-round', { default: 1, min: 1, max: rounds - 1, integer: true });
  const seed = String(numberFlag(values, 'seed', { default: 1, min: 0, integer: true }));
  const work = stringFlag(values, 'work', root('.ftl/demo'));
  const out = `${work}/global-model`;
  await rm(out, { recursive: true, force: true });

  const t0 = performance.now();
  const say = (line: string) => process.stdout.write(line + '\n');
  say(`ftl demo: 1 coordinator + ${clients} clients over loopback socket.io, MNIST split ${partition}, ${rounds} rounds`);
  const env = { ...process.env, FTL_LOG: process.env['FTL_LOG'] ?? 'warn' };
  const coordinator = spawn(process.execPath, [
    COORDINATOR, '--port', '0', '--rounds', String(rounds), '--min-clients', String(clients), '--wait-timeout', '120',
    '--epochs', stringFlag(values, 'epochs', '5'), '--round-deadline', stringFlag(values, 'round-deadline', '60'),
    ...(values['backbone'] !== undefined ? ['--backbone', stringFlag(values, 'backbone', '')] : []),
    '--seed', seed, '--run-id', `demo-${Date.now().toString(36)}`, '--out', out, '--db', `${work}/coordinator.db`,
  ], { stdio: ['ignore', 'pipe', 'inherit'], env });
  const children: ChildProcess[] = [coordinator];
  const killAll = () => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL'));
  process.once('exit', killAll);

  const url = await new Promise<string>((resolve, reject) => {
    lines(coordinator, (line) => {
      const m = /listening on (\S+)/.exec(line);
      if (m) resolve(m[1]!);
      else say(line);
      const row = /^\s*(\d+)\/\d+ \|/.exec(line);
      if (row && killAfter !== undefined && Number(row[1]) === killAfter) {
        const victim = children.at(-1)!;
        say(`demo: killing client ${clients - 1} (pid ${victim.pid}) with SIGKILL; the run must carry on without it`);
        victim.kill('SIGKILL');
      }
    });
    coordinator.once('exit', (code) => reject(new FtlError(ErrorCode.Timeout, `coordinator exited (${code}) before listening`)));
  });
  for (let i = 0; i < clients; i++) {
    children.push(spawn(process.execPath, [
      CLIENT, '--server', url, '--name', `client-${i}`, '--dataset', 'mnist', '--partition', partition,
      '--clients', String(clients), '--index', String(i), '--seed', seed, '--cache-dir', `${work}/cache-${i}`,
    ], { stdio: ['ignore', 'inherit', 'inherit'], env }));
  }
  const code = await exited(coordinator);
  const clientCodes = await Promise.all(children.slice(1).map(exited));
  if (code !== 0) throw new FtlError(ErrorCode.Quorum, `the coordinator exited with code ${code}`);
  say(`clients exited with codes ${clientCodes.join(', ')}; run took ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  await initBackend({ log: createLogger('demo', { level: 'warn' }) });
  const { accuracy, n } = await holdoutAccuracy(out);
  say(`final held-out MNIST test accuracy: ${(accuracy * 100).toFixed(2)}% on ${n} images no client saw ` +
    `(exported model ${out}, ${((performance.now() - t0) / 1000).toFixed(1)} s in all)`);
});
