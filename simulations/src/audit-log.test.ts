import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type AuditEntry, auditLogPath, readAuditLog, socketIoConnect } from '@ftl/client';
import { type ChannelConnector, type ClientChannel, encodeMessagePack } from '@ftl/shared';
import { beforeAll, describe, expect, test } from 'vitest';
import { createCoordinator, makeClient, runToEnd, scratch } from './test-federation.js';

// A real federation (2 sites, 2 rounds of record-level DP, a few hundred MNIST images): each site's
// audit log must hold one line per message it handed to its connection, in order, with the size and
// SHA-256 of that message's MessagePack bytes, the DP mechanism in force and the ε it reported.

const SITES = 2;
const privacy = { mode: 'record' as const, noiseMultiplier: 1.1, clipNorm: 1, sampling: 'poisson' as const, delta: 1e-5 };
const root = fileURLToPath(new URL('../../', import.meta.url));

/** A message as the client handed it to its channel. */
interface Sent {
  event: string;
  message: { runId: string; round?: number; privacy?: { epsilon: number } };
}

/** socket.io's channel, with every message the client sends recorded in `sent` on its way out. */
function recordingConnect(sent: Sent[]): ChannelConnector {
  return (url, o) => {
    const channel = socketIoConnect(url, o);
    return new Proxy(channel, {
      get(target, prop) {
        if (prop === 'emit') {
          return (event: 'failure', message: Sent['message']) => {
            sent.push({ event, message });
            return target.emit(event, message as never);
          };
        }
        if (prop === 'timeout') {
          return (ms: number) => {
            const timed = target.timeout(ms);
            return {
              emitWithAck: (event: string, message: Sent['message']) => {
                sent.push({ event, message });
                return timed.emitWithAck(event as never, message as never);
              },
            };
          };
        }
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    }) as ClientChannel;
  };
}

const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');

/** Runs the built client program with `args`; resolves with its exit code and output. */
function clientProgram(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['packages/client/dist/cli.js', ...args], { cwd: root, env: { ...process.env, FTL_LOG: 'warn' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

let home: string;
const sent: Sent[][] = Array.from({ length: SITES }, () => []);
const logs: string[] = [];

beforeAll(async () => {
  home = await scratch('audit');
  const coordinator = await createCoordinator({
    runId: 'audit-run',
    rounds: 2,
    minClients: SITES,
    waitTimeoutMs: 60_000,
    roundDeadlineMs: 60_000,
    hidden: [],
    fit: { epochs: 1, batchSize: 32, learningRate: 0.01 },
    personalizeEpochs: 1,
    privacy,
  });
  const { url } = await coordinator.listen();
  const clients = await Promise.all(
    Array.from({ length: SITES }, (_, index) =>
      makeClient({ url, index, clients: SITES, limit: 300, cacheDir: join(home, `site-${index}`), connect: recordingConnect(sent[index]!) }),
    ),
  );
  const { summary } = await runToEnd(coordinator, clients);
  expect(summary.reason).toBe('completed');
  for (let i = 0; i < SITES; i++) logs.push(auditLogPath(join(home, `site-${i}`), `client-${i}`));
});

describe('site audit log in a federation', () => {
  test('one line per message each site sent, with the size and SHA-256 of its encoded payload, the DP mechanism and ε', () => {
    for (let i = 0; i < SITES; i++) {
      const verdict = readAuditLog(logs[i]!);
      expect(verdict.broken).toBeUndefined();
      const entries: AuditEntry[] = verdict.entries.map((e) => e.entry);
      const messages = sent[i]!;
      expect(entries.map((e) => e.kind)).toEqual(messages.map((m) => m.event));
      expect(entries.map((e) => e.kind)).toEqual(expect.arrayContaining(['ready', 'fit-result', 'evaluate-result', 'personalize-result']));
      expect(entries.filter((e) => e.kind === 'fit-result').map((e) => e.round)).toEqual([1, 2]);
      entries.forEach((entry, k) => {
        const { message } = messages[k]!;
        const bytes = encodeMessagePack(message);
        expect(entry).toMatchObject({ run: 'audit-run', round: message.round ?? null, bytes: bytes.byteLength, sha256: sha256(bytes) });
        expect(entry.epsilon).toBe(message.privacy?.epsilon);
        if (entry.kind !== 'ready') expect(entry.privacy).toEqual({ noiseMultiplier: 1.1, clipNorm: 1, sampling: 'poisson', delta: 1e-5 });
      });
      // The updates' ε grows round on round, as the site reported it.
      const eps = entries.filter((e) => e.kind === 'fit-result').map((e) => e.epsilon!);
      expect(eps[1]!).toBeGreaterThan(eps[0]!);
      expect(entries[0]!.prev).toBe('0'.repeat(64));
    }
  });

  test.each([
    ['a deleted line', (l: string[]) => [...l.slice(0, 2), ...l.slice(3)], '\n', 3, "prev does not match line 2's hash"],
    [
      'an edited byte size',
      (l: string[]) => l.map((s, k) => (k === 1 ? s.replace(/("bytes":\d*)(\d)/, (_, a, d) => `${a}${(+d + 1) % 10}`) : s)),
      '\n',
      3,
      "line 2's hash",
    ],
    ['a swapped pair', (l: string[]) => [l[0]!, l[2]!, l[1]!, ...l.slice(3)], '\n', 2, "prev does not match line 1's hash"],
    ['a truncated last line', (l: string[]) => [...l.slice(0, -1), l.at(-1)!.slice(0, 40)], '', 0, 'no line end'],
  ])("the verifier names the first bad line of a site's real log with %s", (_, edit, end, line, reason) => {
    const lines = readFileSync(logs[0]!, 'utf8').split('\n').slice(0, -1);
    const file = join(home, `tampered-${line}.jsonl`);
    writeFileSync(file, edit(lines).join('\n') + end);
    const { broken } = readAuditLog(file);
    expect(broken?.line).toBe(line === 0 ? lines.length : line);
    expect(broken?.reason).toContain(reason);
  });

  test('ftl-client audit prints the table and says the chain is intact', async () => {
    const lines = readFileSync(logs[0]!, 'utf8').split('\n').slice(0, -1);
    const r = await clientProgram(['audit', '--cache-dir', join(home, 'site-0'), '--name', 'client-0']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = r.stdout.split('\n');
    expect(out[0]).toMatch(/^#\s+time\s+run\s+round\s+kind\s+bytes\s+sha256\s+ε$/);
    const first = JSON.parse(lines[0]!) as AuditEntry;
    expect(out[1]).toMatch(new RegExp(`^1  ${first.time}  audit-run\\s+-  ready\\s+${first.bytes}  ${first.sha256.slice(0, 12)}\\s+-$`));
    expect(out).toContainEqual(expect.stringMatching(/ 2 {2}fit-result\s+\d+ {2}[0-9a-f]{12}\s+\d+\.\d{3}$/));
    expect(out.at(-2)).toBe(`chain intact: ${lines.length} lines; last line's SHA-256 ${sha256(lines.at(-1)!)}`);
  });

  test('ftl-client audit on a log with a line deleted names the line after it and exits 1', async () => {
    const lines = readFileSync(logs[1]!, 'utf8').split('\n').slice(0, -1);
    const broken = join(home, 'broken.jsonl');
    writeFileSync(broken, `${[...lines.slice(0, 2), ...lines.slice(3)].join('\n')}\n`);
    const r = await clientProgram(['audit', '--file', broken]);
    expect(r.code).toBe(1);
    expect(r.stdout.split('\n')[0]).toMatch(/^#\s+time/);
    expect(r.stderr).toMatch(
      /^error \[INVALID_CONFIG\]: line 3: prev does not match line 2's hash — a line was edited or deleted before it \(audit log .*\)\n$/,
    );
  });
});
