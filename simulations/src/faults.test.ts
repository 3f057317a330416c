import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Manager } from 'socket.io-client';
import { ApiClient, hashClientToken, newClientToken, Store, type RunView } from '@ftl/coordinator';
import { createLogger, createMsgpackParser, initBackend, PROTOCOL_VERSION } from '@ftl/shared';
import { beforeAll, describe, expect, test } from 'vitest';
import { answerEvaluations, connectRawPeer } from './raw-peer.js';
import { startTcpProxy } from './tcp-proxy.js';
import { createCoordinator, makeClient, scratch, startCoordinator } from './test-federation.js';
import { freePort } from './free-port.js';

// Every fault here is detected by events (a round closing, a connection ending), never by timing: the
// only clock is a round deadline that honest sites beat by far (one epoch on ~130 samples).
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIT = { epochs: 1, batchSize: 32, learningRate: 0.002 };
const DEADLINE_MS = 4000;

let cache = '';
beforeAll(async () => {
  cache = await scratch('faults-cache');
});

const portOf = (url: string) => Number(new URL(url).port);

/** Polls `ok` (every 20 ms) until it holds; the test's own timeout bounds the wait. */
async function until(ok: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await ok())) await new Promise((r) => setTimeout(r, 20));
}

type SiteOptions = Parameters<typeof makeClient>[0];

/** Two honest sites on halves of a small MNIST pool, features cached across the tests of this file. */
function honestSites(url: string, over: Array<Pick<SiteOptions, 'index'> & Partial<SiteOptions>> = [{ index: 0 }, { index: 1 }]) {
  return Promise.all(over.map((o) => makeClient({ url, clients: 2, limit: 300, cacheDir: cache, ...o })));
}

const shape = (rounds: Array<{ round: number; status: string; selected: number; accepted: number; rejected: number; failed: number }>) =>
  rounds.map((r) => ({ round: r.round, status: r.status, selected: r.selected, accepted: r.accepted, rejected: r.rejected, failed: r.failed }));

describe('faults on real sockets', () => {
  test('a site killed half-way through uploading its update costs only its answer: the round closes with the others, the run goes on', async () => {
    const { coordinator, url } = await startCoordinator({ rounds: 2, minClients: 3, roundDeadlineMs: 120_000, fit: FIT });
    const proxy = await startTcpProxy(portOf(url));
    const sites = await honestSites(url);
    const ends = sites.map((c) => c.run());
    const uploader = await connectRawPeer(proxy.url, 'uploader');
    const running = coordinator.run();
    const fit = await uploader.next('fit');
    const frame = uploader.updateFrame(fit);
    // The frame header announces the whole update; half of it arrives, then the connection dies.
    expect(frame.length).toBeGreaterThan(100_000);
    expect(await proxy.partialFrame(frame, frame.length >> 1)).toBe(true);
    const summary = await running;
    await Promise.all(ends);
    await coordinator.close();
    await proxy.close();
    expect(await uploader.closed).toBe('transport close');
    // Nothing of the half frame was taken for an update: round 1 closed on the two sites' answers at once
    // (the 120 s deadline never came into it), and round 2 went on without the dead peer.
    expect(shape(summary.rounds)).toEqual([
      { round: 1, status: 'aggregated', selected: 3, accepted: 2, rejected: 0, failed: 1 },
      { round: 2, status: 'aggregated', selected: 2, accepted: 2, rejected: 0, failed: 0 },
    ]);
  });

  test('a site that accepts fit and never answers: each round closes at its deadline with the others and the run goes on', async () => {
    const { coordinator, url } = await startCoordinator({ rounds: 2, minClients: 3, roundDeadlineMs: DEADLINE_MS, fit: FIT });
    const sites = await honestSites(url);
    const ends = sites.map((c) => c.run());
    const silent = await connectRawPeer(url, 'silent');
    answerEvaluations(silent); // silent in training only, so only the fit phase waits for the deadline
    const summary = await coordinator.run();
    await Promise.all(ends);
    await coordinator.close();
    // It was asked in both rounds and answered neither.
    expect((await silent.next('fit')).round).toBe(1);
    expect((await silent.next('fit')).round).toBe(2);
    silent.disconnect();
    expect(shape(summary.rounds)).toEqual([
      { round: 1, status: 'aggregated', selected: 3, accepted: 2, rejected: 0, failed: 1 },
      { round: 2, status: 'aggregated', selected: 3, accepted: 2, rejected: 0, failed: 1 },
    ]);
    expect(summary.reason).toBe('completed');
  });

  test('a site slower than the deadline: its late update is refused as stale and it takes part in the next round', async () => {
    const { coordinator, url } = await startCoordinator({ rounds: 2, minClients: 3, roundDeadlineMs: DEADLINE_MS, fit: FIT });
    const sites = await honestSites(url);
    const ends = sites.map((c) => c.run());
    const slow = await connectRawPeer(url, 'slow');
    const running = coordinator.run();
    const fit1 = await slow.next('fit');
    // The evaluation of round 1 is the sign that its training round has closed without this site.
    const ev1 = await slow.next('evaluate');
    const late = await slow.sendUpdate(fit1);
    expect(late.accepted).toBe(false);
    expect(['round-closed', 'stale-round']).toContain(!late.accepted && late.reason);
    await slow.sendEvaluation(ev1);
    const fit2 = await slow.next('fit');
    expect(fit2.round).toBe(2);
    // Round 1's update arriving in round 2 is refused as stale; the round's own is accepted.
    expect(await slow.sendUpdate(fit1)).toMatchObject({ accepted: false, reason: 'stale-round' });
    expect(await slow.sendUpdate(fit2)).toEqual({ accepted: true });
    answerEvaluations(slow);
    const summary = await running;
    await Promise.all(ends);
    await coordinator.close();
    slow.disconnect();
    expect(shape(summary.rounds)).toEqual([
      { round: 1, status: 'aggregated', selected: 3, accepted: 2, rejected: expect.any(Number), failed: 1 },
      { round: 2, status: 'aggregated', selected: 3, accepted: 3, rejected: 1, failed: 0 },
    ]);
  });

  test('a connection lost before the coordinator acknowledged ready: the site reconnects, says ready again and trains', async () => {
    const { coordinator, url } = await startCoordinator({ rounds: 2, minClients: 3, roundDeadlineMs: 120_000, fit: FIT });
    const proxy = await startTcpProxy(portOf(url));
    // The cut runs inside the coordinator's ready handling, before its answer is written: the answer is lost.
    let cuts = 0;
    coordinator.server.onClientReady(() => {
      if (cuts === 0 && coordinator.readyClients().includes('client-0')) cuts += proxy.cut();
    });
    const lines: string[] = [];
    const log = createLogger('client', { level: 'info', write: (line) => lines.push(line) });
    const sites = await honestSites(url, [{ index: 0, url: proxy.url, log }, { index: 1 }]);
    const ends = sites.map((c) => c.run());
    const running = coordinator.run();
    await until(() => lines.some((l) => / warn ready-unacknowledged /.test(l)) && coordinator.readyClients().includes('client-0'));
    // A raw site makes the third: the run starts only now, with client-0 ready again on its new connection.
    const pacer = await connectRawPeer(url, 'pacer');
    answerEvaluations(pacer);
    for (const round of [1, 2]) {
      const fit = await pacer.next('fit');
      expect(fit.round).toBe(round);
      expect(await pacer.sendUpdate(fit)).toEqual({ accepted: true });
    }
    const summary = await running;
    await Promise.all(ends); // before the fix, client-0's run() rejected: "disconnected before the coordinator acknowledged ready"
    await coordinator.close();
    await proxy.close();
    pacer.disconnect();
    expect(cuts).toBeGreaterThanOrEqual(1);
    expect(lines.filter((l) => / info connected /.test(l))).toHaveLength(2);
    expect(summary.rounds.map((r) => [r.round, r.accepted])).toEqual([
      [1, 3],
      [2, 3],
    ]);
  });

  test('a network drop under a site mid-round: it reconnects by itself and trains the later rounds', async () => {
    const { coordinator, url } = await startCoordinator({ rounds: 3, minClients: 3, roundDeadlineMs: 120_000, fit: FIT });
    const proxy = await startTcpProxy(portOf(url));
    const lines: string[] = [];
    const log = createLogger('client', { level: 'info', write: (line) => lines.push(line) });
    const connects = () => lines.filter((l) => / info connected /.test(l)).length;
    const sites = await honestSites(url, [{ index: 0, url: proxy.url, log }, { index: 1 }]);
    const ends = sites.map((c) => c.run());
    // A raw site paces the run: it holds round 1 open until the dropped site is back and ready.
    const pacer = await connectRawPeer(url, 'pacer');
    answerEvaluations(pacer);
    const running = coordinator.run();
    const fit1 = await pacer.next('fit');
    expect(connects()).toBe(1);
    expect(proxy.cut()).toBeGreaterThanOrEqual(1); // client-0 had round 1's instruction too: it drops mid-round
    await until(() => connects() >= 2 && coordinator.readyClients().includes('client-0'));
    expect(await pacer.sendUpdate(fit1)).toEqual({ accepted: true });
    for (const round of [2, 3]) {
      const fit = await pacer.next('fit');
      expect(fit.round).toBe(round);
      expect(await pacer.sendUpdate(fit)).toEqual({ accepted: true });
    }
    const summary = await running;
    await Promise.all(ends);
    await coordinator.close();
    await proxy.close();
    pacer.disconnect();
    expect(lines.filter((l) => / info disconnected /.test(l)).length).toBeGreaterThanOrEqual(1);
    // Rounds 2 and 3 have all three sites, the dropped one included.
    expect(summary.rounds.map((r) => [r.round, r.status, r.selected, r.accepted])).toEqual([
      [1, 'aggregated', 3, expect.any(Number)],
      [2, 'aggregated', 3, 3],
      [3, 'aggregated', 3, 3],
    ]);
  });

  test('a flood of unauthenticated handshakes, garbage frames and junk connections leaves two authenticated sites their whole run', async () => {
    await initBackend();
    const dir = await scratch('flood');
    const store = Store.open(join(dir, 'coordinator.db'));
    const tokens = ['site-0', 'site-1'].map((name) => {
      const token = newClientToken();
      store.addClient(name, hashClientToken(token));
      return token;
    });
    const coordinator = await createCoordinator(
      { runId: 'flood-run', requireAuth: true, minClients: 2, rounds: 3, waitTimeoutMs: 120_000, roundDeadlineMs: 120_000, fit: FIT },
      { store },
    );
    const { url } = await coordinator.listen();
    const sites = await honestSites(
      url,
      [0, 1].map((index) => ({ index, name: `site-${index}`, token: tokens[index]! })),
    );

    const HANDSHAKES = 60;
    const GARBAGE = 30;
    const JUNK = 30;
    const garbage: Array<Uint8Array | string> = [
      randomBytes(64),
      Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff), // an array claiming 4 billion entries
      Uint8Array.of(0xc6, 0x7f, 0xff, 0xff, 0xff, 1, 2), // a bin claiming 2 GiB
      new Uint8Array(20_000).fill(0x91), // nesting 20,000 deep
      'not msgpack at all',
    ];
    const flooders: Array<{ close: () => void }> = [];
    // Bare engine.io connections (a Manager with no namespace socket): nothing on this side ever closes
    // them, so each one that ends was closed by the coordinator.
    const bare = (resolve: (outcome: string) => void, onOpen: (m: Manager) => void): void => {
      const m = new Manager(url, { parser: createMsgpackParser(), transports: ['websocket'], reconnection: false, autoConnect: false });
      flooders.push({ close: () => m.engine?.close() });
      m.open((err) => (err ? resolve(`could not connect: ${err.message}`) : onOpen(m)));
    };
    const encoder = new (createMsgpackParser().Encoder as new () => { encode(p: object): Uint8Array[] })();
    const wave = () => {
      const outcomes: Array<Promise<string>> = [];
      for (let i = 0; i < HANDSHAKES; i++) {
        // Unknown names, known names with a wrong token, no token at all: each must be refused.
        const auth =
          i % 3 === 0
            ? { protocol: PROTOCOL_VERSION, name: `intruder-${i}`, token: 'x'.repeat(64) }
            : i % 3 === 1
              ? { protocol: PROTOCOL_VERSION, name: 'site-0', token: newClientToken() }
              : { protocol: PROTOCOL_VERSION, name: 'site-1' };
        // A refused peer tries once more on the same connection: the coordinator must have closed it already.
        outcomes.push(
          new Promise((resolve) => {
            const answers = { refused: 0, connected: 0, other: 0 };
            bare(resolve, (m) => {
              const handshake = () => m.engine.write(encoder.encode({ type: 0, nsp: '/', data: auth })[0]! as never);
              m.on('packet', (p: { type: number }) => {
                if (p.type === 4 && answers.refused++ === 0) handshake();
                else if (p.type === 0) answers.connected++;
                else if (p.type !== 4) answers.other++;
              });
              m.on('close', () =>
                resolve(`refused ${answers.refused}, connected ${answers.connected}, other ${answers.other}, then closed by the server`),
              );
              handshake();
            });
          }),
        );
      }
      for (let i = 0; i < GARBAGE; i++) {
        outcomes.push(
          new Promise((resolve) => {
            bare(resolve, (m) => {
              m.on('close', () => resolve('garbage, then closed by the server'));
              m.engine.write(garbage[i % garbage.length] as never);
            });
          }),
        );
      }
      for (let i = 0; i < JUNK; i++) {
        const tcp = connect(portOf(url), '127.0.0.1', () => tcp.write(randomBytes(256)));
        tcp.on('error', () => {});
        tcp.resume(); // read the server's answer, so its close is seen
        flooders.push({ close: () => tcp.destroy() });
        outcomes.push(new Promise((resolve) => tcp.once('close', () => resolve('junk, then closed by the server'))));
      }
      return Promise.all(outcomes);
    };

    // One wave while the sites join, one after round 1.
    const waves = [wave()];
    const ends = sites.map((c) => c.run());
    const summary = await coordinator.run((r) => r.round === 1 && waves.push(wave()));
    await Promise.all(ends);
    const outcomes = (await Promise.all(waves)).flat();
    const backbone = await fetch(`${url}/backbone/model.json`);
    for (const f of flooders) f.close();
    await coordinator.close();
    store.close();

    expect(summary.reason).toBe('completed');
    expect(summary.rounds.map((r) => [r.round, r.status, r.accepted])).toEqual([
      [1, 'aggregated', 2],
      [2, 'aggregated', 2],
      [3, 'aggregated', 2],
    ]);
    const tally: Record<string, number> = {};
    for (const o of outcomes) tally[o] = (tally[o] ?? 0) + 1;
    expect(tally).toEqual({
      'refused 1, connected 0, other 0, then closed by the server': 2 * HANDSHAKES,
      'garbage, then closed by the server': 2 * GARBAGE,
      'junk, then closed by the server': 2 * JUNK,
    });
    expect(backbone.status).toBe(200);
  });
});

// ---- the coordinator process itself killed mid-round ----

const OPERATOR_TOKEN = 'operator-token-for-fault-tests-0123456789';

/** A child process with its output kept (shown when an expectation about it fails). */
function child(
  args: string[],
  extraEnv: Record<string, string> = {},
): { proc: ChildProcess; output: () => string; exited: Promise<number | string>; line: (re: RegExp) => Promise<string> } {
  const proc = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, FTL_LOG: 'warn', ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const watchers: Array<{ re: RegExp; resolve: (l: string) => void }> = [];
  const onData = (d: Buffer) => {
    output += d.toString();
    for (const w of [...watchers]) {
      const m = output.split('\n').find((l) => w.re.test(l));
      if (m !== undefined) {
        watchers.splice(watchers.indexOf(w), 1);
        w.resolve(m);
      }
    }
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<number | string>((resolve) => proc.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  return {
    proc,
    exited,
    output: () => output,
    line: (re) =>
      new Promise((resolve, reject) => {
        const m = output.split('\n').find((l) => re.test(l));
        if (m !== undefined) return resolve(m);
        watchers.push({ re, resolve });
        void exited.then((how) => reject(new Error(`exited (${how}) before printing ${re}:\n${output}`)));
      }),
  };
}

describe('the coordinator process stopped mid-round', () => {
  let siteCache = '';
  beforeAll(async () => {
    siteCache = await scratch('faults-sites');
  });

  test.each(['SIGKILL', 'SIGTERM'] as const)(
    '%s during round 2: after the restart round 2 is redone, every round is stored once and none is aggregated twice',
    async (signal) => {
      const dir = await scratch(`coordinator-${signal}`);
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const db = join(dir, 'coordinator.db');
      const serveArgs = ['packages/coordinator/dist/cli.js', 'serve', '--port', String(port), '--db', db, '--exports', join(dir, 'runs')];
      const env = { FTL_OPERATOR_TOKEN: OPERATOR_TOKEN };
      const first = child(serveArgs, env);
      await first.line(/coordinator serving on/);
      const api = new ApiClient({ url, token: OPERATOR_TOKEN });
      const token = async (name: string) => (await api.call<{ token: string }>('POST', '/api/clients', { name })).token;
      const sites = await Promise.all(
        [0, 1].map(async (index) => {
          const file = join(dir, `site-${index}.token`);
          await writeFile(file, `${await token(`site-${index}`)}\n`, { mode: 0o600 });
          return child([
            'packages/client/dist/cli.js',
            '--server',
            url,
            '--name',
            `site-${index}`,
            '--token-file',
            file,
            '--stay',
            '--dataset',
            'mnist',
            '--clients',
            '2',
            '--index',
            String(index),
            '--limit',
            '300',
            '--cache-dir',
            join(siteCache, `site-${index}`),
          ]);
        }),
      );
      const holderToken = await token('holder');
      await api.call('POST', '/api/runs', {
        runId: 'interrupted',
        // The raw holder speaks fit and evaluate only: a random head keeps class statistics out of the run.
        headInit: 'random',
        rounds: 3,
        minClients: 3,
        fit: FIT,
        roundDeadlineSeconds: 120,
        waitTimeoutSeconds: 120,
      });
      await api.call('POST', '/api/runs/interrupted/start');

      // A third site answers round 1 and then holds round 2 open, so the stop surely lands mid-round.
      const holder = await connectRawPeer(url, 'holder', { token: holderToken });
      expect(await holder.sendUpdate(await holder.next('fit'))).toEqual({ accepted: true });
      await holder.sendEvaluation(await holder.next('evaluate'));
      expect((await holder.next('fit')).round).toBe(2);
      const before = await api.call<RunView>('GET', '/api/runs/interrupted');
      expect(before.rounds.map((r) => r.round)).toEqual([1]);
      expect(before.live).toMatchObject({ phase: 'fit', round: 2 });
      // Both CLI sites' round-2 updates are in: a shutdown now has a partial round it must not commit.
      await until(async () => (await api.call<RunView>('GET', '/api/runs/interrupted')).live?.received === 2);
      first.proc.kill(signal);
      expect(await first.exited).toBe(signal === 'SIGKILL' ? 'SIGKILL' : 0);
      holder.disconnect();

      const second = child(serveArgs, env);
      await second.line(/resuming run interrupted/);
      // The holder comes back as a well-behaved site; the two CLI sites reconnect by themselves.
      const back = await connectRawPeer(url, 'holder', { token: holderToken });
      answerEvaluations(back);
      void (async () => {
        for (;;) {
          const fit = await back.next('fit');
          await back.sendUpdate(fit).catch(() => {});
        }
      })();
      await until(async () => (await api.call<RunView>('GET', '/api/runs/interrupted')).status === 'completed');
      back.disconnect();
      second.proc.kill('SIGTERM');
      expect(await second.exited, second.output()).toBe(0);
      for (const site of sites) site.proc.kill('SIGTERM');
      for (const site of sites) expect(await site.exited, site.output()).toBe(0);

      const store = Store.open(db);
      try {
        const rounds = store.listRounds('interrupted');
        expect(rounds.map((r) => r.round)).toEqual([1, 2, 3]);
        // One aggregation per round: the model version moved by exactly one each time.
        expect(rounds.map((r) => [r.record.status, r.record.modelVersion])).toEqual([
          ['aggregated', 1],
          ['aggregated', 2],
          ['aggregated', 3],
        ]);
        // Round 2 as stored is the redone one, after the restart: the holder answered it this time.
        expect(rounds[1]!.participants.slice().sort()).toEqual(['holder', 'site-0', 'site-1']);
        expect(rounds[1]!.record.failed).toBe(0);
        expect(store.latestCheckpoint('interrupted')).toMatchObject({ round: 3, modelVersion: 3 });
        const resumed = store.listEvents('interrupted').filter((e) => e.type === 'run-resumed');
        expect(resumed.map((e) => (e.data as { afterRound: number }).afterRound)).toEqual([1]);
        expect(store.getRun('interrupted')?.status).toBe('completed');
      } finally {
        store.close();
      }
    },
  );
});
