import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, test } from 'vitest';
import { scratch } from './test-federation.js';

// The built demo, as `npm run demo` runs it.
const DEMO = fileURLToPath(new URL('../dist/demo.js', import.meta.url));
const dirs: string[] = [];
afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

/** Runs the demo's real processes with `args`; resolves with its exit code and output. */
function demo(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [DEMO, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FTL_LOG: 'warn' } });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

test('the demo runs transfer and from-scratch on the same images and prints both held-out accuracies and costs', async () => {
  const work = await scratch('demo');
  dirs.push(work);
  const { code, out } = await demo(['--clients', '2', '--images', '80', '--rounds', '2', '--epochs', '1', '--work', work]);
  expect(code, out).toBe(0);
  const row = (label: string) => {
    const m = new RegExp(`^${label}\\s+\\|\\s+([\\d.]+)%\\s+\\|\\s+([\\d.]+)\\s+\\|\\s+([\\d.]+)\\s+\\|`, 'm').exec(out);
    expect(m, out).not.toBeNull();
    return { accuracy: Number(m![1]), kbPerUpdate: Number(m![2]), mbPerRound: Number(m![3]) };
  };
  const transfer = row('transfer');
  const fromScratch = row('scratch');
  // A frozen backbone sends a linear head: far less than the whole network.
  expect(transfer.kbPerUpdate * 10).toBeLessThan(fromScratch.kbPerUpdate);
  // Chance is 10%; the discriminant head on 80 images is well above it.
  expect(transfer.accuracy).toBeGreaterThan(40);
  expect(out).toMatch(
    new RegExp(
      `final held-out MNIST test accuracy: ${transfer.accuracy.toFixed(2)}% on 1500 images .*from scratch: ${fromScratch.accuracy.toFixed(2)}%`,
    ),
  );
});

test('the demo refuses fewer than 10 images per client with a one-line error', async () => {
  const { code, out } = await demo(['--clients', '5', '--images', '20']);
  expect(code).not.toBe(0);
  expect(out.trim()).toMatch(
    /^error \[INVALID_CONFIG\]: --images 20 leaves fewer than 10 images per client; give at least 50, or 0 for the whole pool$/,
  );
});
