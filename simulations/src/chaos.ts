#!/usr/bin/env node
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FtlClient } from '@ftl/client';
import { ApiClient, loadExportedModel, Store, type RoundRecord, type RunView } from '@ftl/coordinator';
import * as tf from '@tensorflow/tfjs';
import {
  flagOptions,
  createLogger,
  decodeWeights,
  federationSplit,
  initBackend,
  loadBuiltinDataset,
  loadClientShard,
  numberFlag,
  parseStrategy,
  runProgram,
  stringFlag,
  type ImageDataset,
  type LocalShard,
  type StrategyConfig,
} from '@ftl/shared';
import { holdoutAccuracy } from './holdout.js';
import { answerEvaluations, connectRawPeer, type RawPeer } from './raw-peer.js';
import { signFlip } from './simulate.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';
import { freePort } from './free-port.js';

const HELP = `npm run chaos -- [options]
Runs one federation twice on MNIST, once clean and once under faults, and prints what was injected and
what came out. The coordinator is a child process (ftl-coordinator serve, its SQLite database in a
temporary folder); the sites run in this process, each behind its own loopback TCP proxy so the driver
can cut its network. Both runs have the same sites, data, seeds and run config.
Faults of the chaos run:
  - 30% of the sites are killed mid-round (connection cut, client gone) and restarted a round later
  - 10% are hostile: half of them send every update sign-flipped and scaled x10
    (global - 10 (trained - global)); the others answer every round with a non-finite update, a
    wrong-shape update and a malformed frame (which costs them the connection; they reconnect)
  - the coordinator is SIGKILLed mid-round twice (at 1/3 and 2/3 of the run) and restarted on its database
Outcomes: rounds completed, each round stored exactly once with one aggregation, updates rejected by
reason, held-out accuracy of each run's exported model and their difference. The target: every round
completes, none is aggregated twice, and the accuracy under faults is within 2 points of the clean run;
the exit code is 1 when it is missed.
  --clients N            sites (default 20)
  --rounds N             rounds (default 15)
  --strategy NAME        aggregation rule (default fedmedian; see docs/strategies.md)
  --strategy-options KV  its options, e.g. beta=0.2
  --seed S               seed of the run and of the fault schedule (default 1)
  --epochs N             local epochs per round (default 2)
  --limit N              cut the MNIST pool to N samples (default: all 8,500)
  --skip-clean           run only the federation under faults
  --table FILE           print the table of rows a previous run wrote (e.g. .ftl/chaos/fedmedian-seed1.json)
                         and run nothing
Progress goes to stderr, the table to stdout; the rows are written to .ftl/chaos/<strategy>-seed<S>.json
and the coordinator's and sites' logs beside them.`;

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const OUT_DIR = join(ROOT, '.ftl', 'chaos');
const RUN_ID = 'chaos';

/** Kinds of fault the driver injects. */
type FaultKind =
  | 'site killed mid-round'
  | 'site restarted'
  | 'coordinator SIGKILL mid-round'
  | 'coordinator restarted'
  | 'sign-flipped x10 update'
  | 'non-finite update'
  | 'wrong-shape update'
  | 'malformed frame';

interface Fault {
  kind: FaultKind;
  round: number;
  site?: string;
}

/** What one federation gave: the stored rounds as the coordinator committed them and the exported model's accuracy. */
export interface ChaosRow {
  mode: 'clean' | 'chaos';
  strategy: StrategyConfig;
  seed: number;
  clients: number;
  rounds: number;
  status: string;
  /** Round numbers in the store, in order; exactly 1..rounds when every round was stored once. */
  storedRounds: number[];
  /** Per stored round: status, accepted, rejected, failed, model version. */
  roundRecords: Array<Pick<RoundRecord, 'round' | 'status' | 'selected' | 'accepted' | 'rejected' | 'failed' | 'modelVersion' | 'valAccuracy'>>;
  everyRoundOnce: boolean;
  /** Each aggregated round moved the model version by exactly one (nothing aggregated twice). */
  oneAggregationPerRound: boolean;
  resumed: number;
  rejectedByReason: Record<string, number>;
  /** Accepted updates the run's trust policy left out of the aggregate, by reason (from the store's events). */
  excludedByReason: Record<string, number>;
  /** Rounds whose aggregate took the sign-flipping site's update: accepted and not excluded (chaos only). */
  poisonedAccepted: number;
  heldOut: number;
  /** Images in the held-out test set (none of them on any site). */
  heldOutImages: number;
  seconds: number;
  faults: Fault[];
  /** Held-out images on which the chaos run's model predicts another class than the clean run's. */
  predictionsDifferFromClean?: number;
  /** Sites whose client gave up with an error (they took no further part), with the error. */
  sitesLost: Array<{ site: string; round: number; error: string }>;
}

interface Options {
  clients: number;
  rounds: number;
  strategy: StrategyConfig;
  seed: number;
  epochs: number;
  limit?: number;
}

const progress = (line: string) => process.stderr.write(`[chaos] ${line}\n`);

/** A deterministic generator for the fault schedule (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `ftl-coordinator serve` as a child process that can be killed and started again on the same database. */
class CoordinatorProcess {
  private proc?: ChildProcess;
  private exited?: Promise<void>;
  starts = 0;

  constructor(
    private readonly args: string[],
    private readonly env: Record<string, string>,
    private readonly logFile: string,
  ) {}

  /** Starts it and resolves once it serves (and, on a restart, has resumed the interrupted run). */
  async start(expect: RegExp): Promise<void> {
    const log = createWriteStream(this.logFile, { flags: 'a' });
    const proc = spawn(process.execPath, ['packages/coordinator/dist/cli.js', 'serve', ...this.args], {
      cwd: ROOT,
      env: { ...process.env, FTL_LOG: 'info', ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    this.starts++;
    proc.stderr!.pipe(log);
    this.exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    let out = '';
    await new Promise<void>((resolve, reject) => {
      proc.stdout!.on('data', (d: Buffer) => {
        log.write(d);
        out += d.toString();
        if (expect.test(out)) resolve();
      });
      void this.exited!.then(() => reject(new Error(`the coordinator exited before printing ${expect}; see ${this.logFile}:\n${out}`)));
    });
  }

  async kill(signal: NodeJS.Signals): Promise<void> {
    this.proc?.kill(signal);
    await this.exited;
  }
}

/** One site: its data and credentials, and (while it runs) its client and how that client's run ended. */
interface Site {
  index: number;
  name: string;
  shard: LocalShard;
  token: string;
  proxy: TcpProxy;
  role: 'honest' | 'poison' | 'garbage';
  client?: FtlClient;
  down: boolean;
}

/** Sends each kind of bad input once per fit it is asked, reconnecting after the coordinator drops it. */
function garbageSite(site: Site, record: (kind: FaultKind, round: number) => void, isStopped: () => boolean): Promise<void> {
  const frames: Array<Uint8Array | string> = [
    randomBytes(64),
    Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff),
    new Uint8Array(5000).fill(0x91),
    'not a msgpack frame',
  ];
  return (async () => {
    let sent = 0;
    while (!isStopped()) {
      let peer: RawPeer;
      try {
        peer = await connectRawPeer(site.proxy.url, site.name, {
          token: site.token,
          numTrain: site.shard.train.n,
          numVal: site.shard.val.n,
          ackTimeoutMs: 10_000,
        });
      } catch {
        await new Promise((r) => setTimeout(r, 500)); // refused, or the coordinator is down: try again
        continue;
      }
      answerEvaluations(peer);
      const fit = await Promise.race([peer.next('fit'), peer.closed.then(() => undefined)]);
      if (fit === undefined || isStopped()) {
        peer.disconnect();
        continue;
      }
      const values = decodeWeights(fit.weights).values.slice();
      values[sent % values.length] = Number.NaN;
      await peer.sendUpdate(fit, { values }).catch(() => {});
      record('non-finite update', fit.round);
      const bytes = new Uint8Array(fit.weights.data.byteLength - 4);
      await peer.sendUpdate(fit, { weights: { specs: fit.weights.specs, data: bytes } }).catch(() => {});
      record('wrong-shape update', fit.round);
      peer.sendRaw(frames[sent++ % frames.length]!);
      record('malformed frame', fit.round);
      await Promise.race([peer.closed, new Promise((r) => setTimeout(r, 5000))]);
      peer.disconnect();
    }
  })();
}

/** The exported model's predicted class for each held-out test image, in order. */
async function testPredictions(modelDir: string): Promise<Int32Array> {
  const { test } = federationSplit(loadBuiltinDataset('mnist'));
  const model = await loadExportedModel(modelDir);
  try {
    return tf.tidy(
      () =>
        model
          .predict(tf.tensor4d(test.images, [test.n, test.height, test.width, test.channels]))
          .argMax(1)
          .dataSync() as Int32Array,
    );
  } finally {
    model.dispose();
  }
}

async function federation(
  mode: 'clean' | 'chaos',
  o: Options,
  mnist: ImageDataset,
  cacheDir: string,
): Promise<{ row: ChaosRow; predicted?: Int32Array }> {
  const t0 = performance.now();
  const dir = await mkdtemp(join(tmpdir(), `ftl-chaos-${mode}-`));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const db = join(dir, 'coordinator.db');
  const operatorToken = randomBytes(24).toString('hex');
  const logFile = join(OUT_DIR, `${mode}-coordinator.log`);
  await writeFile(logFile, '');
  const coordinator = new CoordinatorProcess(
    // The setting the chaos figures were measured on: small-fmnist under a 128-unit head from a random start.
    ['--port', String(port), '--db', db, '--exports', join(dir, 'runs'), '--backbone', 'small-fmnist'],
    { FTL_OPERATOR_TOKEN: operatorToken },
    logFile,
  );
  await coordinator.start(/coordinator serving on/);
  const api = new ApiClient({ url, token: operatorToken, waitMs: 60_000 });
  const faults: Fault[] = [];
  const record = (kind: FaultKind, round: number, site?: string) => faults.push({ kind, round, ...(site ? { site } : {}) });
  const random = rng(o.seed);

  // Roles: the last 10% of the sites are hostile in the chaos run (half poisoners, half garbage senders);
  // 30% of the others are killed and restarted. In the clean run everyone is honest.
  const hostile = mode === 'chaos' ? Math.round(o.clients * 0.1) : 0;
  const sites: Site[] = [];
  for (let index = 0; index < o.clients; index++) {
    const name = `site-${index}`;
    const { token } = await api.call<{ token: string }>('POST', '/api/clients', { name });
    const role = index < o.clients - hostile ? 'honest' : (o.clients - index) % 2 === 0 ? 'poison' : 'garbage';
    sites.push({
      index,
      name,
      token,
      role,
      down: true,
      proxy: await startTcpProxy(port),
      shard: loadClientShard(
        { dataset: 'mnist', partition: { kind: 'iid' }, clients: o.clients, index, seed: o.seed, ...(o.limit ? { limit: o.limit } : {}) },
        undefined,
        mnist,
      ),
    });
  }
  const siteLog = createWriteStream(join(OUT_DIR, `${mode}-sites.log`));
  const clientLog = createLogger('client', { level: 'warn', write: (line) => siteLog.write(`${line}\n`) });
  let stopped = false;
  let lastRound = 0;
  const sitesLost: ChaosRow['sitesLost'] = [];
  const garbageLoops: Array<Promise<void>> = [];
  const startSite = (site: Site) => {
    site.down = false;
    if (site.role === 'garbage') {
      garbageLoops.push(
        garbageSite(
          site,
          (kind, round) => record(kind, round, site.name),
          () => stopped,
        ),
      );
      return;
    }
    const flip = signFlip(10);
    // The poisoner logs every training epoch with its round, so each poisoned update is counted in its own round.
    let training = 0;
    const poisonLog = createLogger('client', {
      level: 'info',
      base: { client: site.name },
      write: (line) => {
        const m = / training .*\bround=(\d+)/.exec(line);
        if (m) training = Number(m[1]);
        else if (!/ info /.test(line)) siteLog.write(`${line}\n`);
      },
    });
    site.client = new FtlClient({
      serverUrl: site.proxy.url,
      name: site.name,
      token: site.token,
      shard: site.shard,
      cacheDir,
      stay: true,
      log: site.role === 'poison' ? poisonLog : clientLog.child({ client: site.name }),
      reconnectionAttempts: 1000,
      ...(site.role === 'poison'
        ? {
            progressEveryMs: 0,
            transformUpdate: (trained, global) => {
              record('sign-flipped x10 update', training, site.name);
              return flip(trained, global);
            },
          }
        : {}),
    });
    site.client.run().catch((err: unknown) => {
      const error = (err as Error).message;
      sitesLost.push({ site: site.name, round: lastRound + 1, error });
      progress(`${mode}: ${site.name} stopped: ${error}`);
    });
  };
  const killSite = (site: Site) => {
    site.proxy.cut(); // the connection dies first, as when a process is killed: no goodbye, no disconnect packet
    site.client?.close();
    site.client = undefined;
    site.down = true;
  };
  for (const site of sites) startSite(site);

  // The same in both runs: room for the hostile sites and one killed site to be away when a round starts.
  const minClients = o.clients - Math.round(o.clients * 0.1) - 1;
  await api.call('POST', '/api/runs', {
    runId: RUN_ID,
    rounds: o.rounds,
    hidden: [128],
    // The hostile sites speak fit and evaluate only, so no phase asks for class statistics.
    headInit: 'random',
    minClients,
    seed: o.seed,
    strategy: o.strategy,
    fit: { epochs: o.epochs, batchSize: 32, learningRate: 0.001 },
    roundDeadlineSeconds: 120,
    waitTimeoutSeconds: 600,
  });
  await api.call('POST', `/api/runs/${RUN_ID}/start`);
  progress(`${mode}: ${o.clients} sites, ${o.rounds} rounds, ${o.strategy.name}, waiting for ${minClients} sites`);

  // The schedule: coordinator kills at 1/3 and 2/3 of the run; site kills spread over the rounds between.
  const coordinatorKills = mode === 'chaos' ? [Math.floor(o.rounds / 3) + 1, Math.floor((2 * o.rounds) / 3) + 1] : [];
  const honest = sites.filter((s) => s.role === 'honest');
  const victims =
    mode === 'chaos'
      ? honest
          .map((s) => ({ s, k: random() }))
          .sort((a, b) => a.k - b.k)
          .slice(0, Math.round(o.clients * 0.3))
          .map((x) => x.s)
      : [];
  const spare = Array.from({ length: Math.max(1, o.rounds - 3) }, (_, i) => i + 2).filter((r) => !coordinatorKills.includes(r));
  const siteKills = victims.map((site, i) => ({
    site,
    round: spare[Math.floor((i * spare.length) / victims.length)]!,
    done: false,
    restartAfter: 0,
  }));

  let shown = 0;
  let lastCoordinatorKill = 0; // one coordinator kill per round at most
  let view = await api.call<RunView>('GET', `/api/runs/${RUN_ID}`);
  while (view.status === 'created' || view.status === 'running') {
    await new Promise((r) => setTimeout(r, 50));
    view = await api.call<RunView>('GET', `/api/runs/${RUN_ID}`);
    for (; shown < view.rounds.length; shown++) {
      const r = view.rounds[shown]!;
      progress(
        `${mode}: round ${r.round}/${o.rounds} ${r.status}, ${r.accepted}/${r.selected} accepted, ${r.rejected} rejected, ${r.failed} failed; federated val acc ${(r.valAccuracy * 100).toFixed(2)}%`,
      );
    }
    const live = view.live;
    const done = view.rounds.length;
    lastRound = done;
    // Restart killed sites a round after their kill.
    for (const k of siteKills) {
      if (k.done && k.site.down && done >= k.restartAfter) {
        startSite(k.site);
        record('site restarted', done + 1, k.site.name);
      }
    }
    if (live?.phase !== 'fit') continue;
    // A round that finished between two looks takes its fault in the next one.
    const due = coordinatorKills.findIndex((r) => r <= live.round);
    if (due >= 0 && live.received >= 1 && live.round > lastCoordinatorKill) {
      coordinatorKills.splice(due, 1);
      lastCoordinatorKill = live.round;
      await coordinator.kill('SIGKILL');
      record('coordinator SIGKILL mid-round', live.round);
      progress(`${mode}: coordinator SIGKILLed in round ${live.round} with ${live.received}/${live.expected} updates in`);
      await coordinator.start(/resuming run/);
      record('coordinator restarted', live.round);
      continue;
    }
    for (const k of siteKills) {
      if (!k.done && k.round <= live.round && live.received < live.expected) {
        k.done = true;
        k.restartAfter = live.round + 1;
        killSite(k.site);
        record('site killed mid-round', live.round, k.site.name);
        progress(`${mode}: ${k.site.name} killed in round ${live.round}`);
      }
    }
  }
  progress(`${mode}: run ${view.status} after ${view.rounds.length} rounds`);
  stopped = true;
  await coordinator.kill('SIGTERM');
  for (const site of sites) {
    site.client?.close();
    await site.proxy.close();
  }
  await Promise.race([Promise.all(garbageLoops), new Promise((r) => setTimeout(r, 2000))]);
  siteLog.end();

  const store = Store.open(db);
  let row: ChaosRow;
  try {
    const rounds = store.listRounds(RUN_ID);
    const storedRounds = rounds.map((r) => r.round);
    let version = 0;
    let oneAggregationPerRound = true;
    for (const r of rounds) {
      if (r.record.status === 'aggregated') version++;
      if (r.record.modelVersion !== version) oneAggregationPerRound = false;
    }
    const rejectedByReason: Record<string, number> = {};
    for (const r of rounds) for (const x of r.rejected) rejectedByReason[x.reason] = (rejectedByReason[x.reason] ?? 0) + 1;
    const exclusions = store
      .listEvents(RUN_ID)
      .filter((e) => e.type === 'update-excluded')
      .map((e) => e.data as { round: number; client: string; reason: string });
    const excludedByReason: Record<string, number> = {};
    for (const x of exclusions) excludedByReason[x.reason] = (excludedByReason[x.reason] ?? 0) + 1;
    const poisoners = new Set(sites.filter((s) => s.role === 'poison').map((s) => s.name));
    const aggregatedPoison = (r: (typeof rounds)[number]) =>
      r.participants.some((p) => poisoners.has(p) && !exclusions.some((x) => x.round === r.round && x.client === p));
    let heldOut = Number.NaN;
    let heldOutImages = 0;
    try {
      ({ accuracy: heldOut, n: heldOutImages } = await holdoutAccuracy(join(dir, 'runs', RUN_ID)));
    } catch (err) {
      progress(`${mode}: no exported model to evaluate (${(err as Error).message})`);
    }
    row = {
      mode,
      strategy: o.strategy,
      seed: o.seed,
      clients: o.clients,
      rounds: o.rounds,
      status: store.getRun(RUN_ID)?.status ?? 'missing',
      storedRounds,
      roundRecords: rounds.map(({ record: r }) => ({
        round: r.round,
        status: r.status,
        selected: r.selected,
        accepted: r.accepted,
        rejected: r.rejected,
        failed: r.failed,
        modelVersion: r.modelVersion,
        valAccuracy: r.valAccuracy,
      })),
      everyRoundOnce: storedRounds.length === o.rounds && storedRounds.every((n, i) => n === i + 1),
      oneAggregationPerRound,
      resumed: store.listEvents(RUN_ID).filter((e) => e.type === 'run-resumed').length,
      rejectedByReason,
      excludedByReason,
      poisonedAccepted: rounds.filter(aggregatedPoison).length,
      heldOut,
      heldOutImages,
      seconds: (performance.now() - t0) / 1000,
      faults,
      sitesLost,
    };
  } finally {
    store.close();
  }
  const predicted = Number.isFinite(row.heldOut) ? await testPredictions(join(dir, 'runs', RUN_ID)) : undefined;
  await rm(dir, { recursive: true, force: true });
  return { row, ...(predicted ? { predicted } : {}) };
}

const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(2)}%` : '–');

/** Rounds as a compact list: 3, 5–7, 12. */
function roundList(rounds: number[]): string {
  const sorted = [...new Set(rounds)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; i++) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(j === i ? `${sorted[i]}` : `${sorted[i]}–${sorted[j]}`);
    i = j;
  }
  return parts.join(', ');
}

/** The markdown tables: faults injected, then outcomes side by side. */
export function chaosTable(rows: ChaosRow[]): string {
  const chaos = rows.find((r) => r.mode === 'chaos');
  const clean = rows.find((r) => r.mode === 'clean');
  const lines: string[] = [];
  if (chaos) {
    lines.push('| fault injected | count | rounds |', '| --- | --- | --- |');
    const kinds = [...new Set(chaos.faults.map((f) => f.kind))];
    for (const kind of kinds) {
      const of = chaos.faults.filter((f) => f.kind === kind);
      const sites = [...new Set(of.map((f) => f.site).filter(Boolean))];
      lines.push(
        `| ${kind}${sites.length > 0 && sites.length <= 2 ? ` (${sites.join(', ')})` : sites.length > 2 ? ` (${sites.length} sites)` : ''} | ${of.length} | ${roundList(of.map((f) => f.round))} |`,
      );
    }
    lines.push('');
  }
  const cols = [clean, chaos].filter((r): r is ChaosRow => r !== undefined);
  const yes = (b: boolean) => (b ? 'yes' : '**no**');
  const reasons = (counts: Record<string, number>) =>
    Object.entries(counts)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ') || 'none';
  const row = (label: string, f: (r: ChaosRow) => string) => `| ${label} | ${cols.map(f).join(' | ')} |`;
  lines.push(
    `| outcome | ${cols.map((r) => (r.mode === 'clean' ? 'without faults' : 'with faults')).join(' | ')} |`,
    `| --- | ${cols.map(() => '---').join(' | ')} |`,
  );
  lines.push(
    row('run status', (r) => r.status),
    row('rounds completed (aggregated)', (r) => `${r.roundRecords.filter((x) => x.status === 'aggregated').length}/${r.rounds}`),
    row('every round stored exactly once', (r) => yes(r.everyRoundOnce)),
    row('one aggregation per round (model version +1 each)', (r) => yes(r.oneAggregationPerRound)),
    row('run resumed after a coordinator restart', (r) => String(r.resumed)),
    row('updates accepted (sum over rounds)', (r) => String(r.roundRecords.reduce((s, x) => s + x.accepted, 0))),
    row('sites failed in a round (sum over rounds)', (r) => String(r.roundRecords.reduce((s, x) => s + x.failed, 0))),
    row('updates rejected, by reason', (r) => reasons(r.rejectedByReason)),
    row('accepted updates the trust policy excluded, by reason', (r) => reasons(r.excludedByReason)),
    row('rounds whose aggregate took a sign-flipped update', (r) => (r.mode === 'clean' ? '–' : String(r.poisonedAccepted))),
    row('sites whose client stopped with an error', (r) =>
      r.sitesLost.length === 0 ? '0' : `${r.sitesLost.length}: ${r.sitesLost.map((x) => `${x.site} in round ${x.round} (${x.error})`).join('; ')}`,
    ),
    row(`held-out accuracy (exported model, ${cols[0]?.heldOutImages.toLocaleString('en-US')} test images)`, (r) => pct(r.heldOut)),
    row('held-out images where the two models predict differently', (r) =>
      r.predictionsDifferFromClean === undefined ? '–' : String(r.predictionsDifferFromClean),
    ),
    row('seconds', (r) => r.seconds.toFixed(0)),
  );
  if (clean && chaos) lines.push('', `Difference with faults: ${((chaos.heldOut - clean.heldOut) * 100).toFixed(2)} points of held-out accuracy.`);
  return lines.join('\n');
}

/** Whether the chaos run met its target: every round once, one aggregation each, within 2 points of clean. */
function targetMet(rows: ChaosRow[]): boolean {
  const chaos = rows.find((r) => r.mode === 'chaos');
  const clean = rows.find((r) => r.mode === 'clean');
  if (!chaos) return true;
  const ok = chaos.status === 'completed' && chaos.everyRoundOnce && chaos.oneAggregationPerRound;
  return ok && (!clean || Math.abs(chaos.heldOut - clean.heldOut) <= 0.02);
}

const FLAGS = flagOptions(['clients', 'rounds', 'strategy', 'strategy-options', 'seed', 'epochs', 'limit', 'table'], ['skip-clean']);

runProgram({ help: HELP, flags: FLAGS }, async (values) => {
  const saved = stringFlag(values, 'table');
  if (saved !== undefined) {
    process.stdout.write(`${chaosTable(JSON.parse(await readFile(saved, 'utf8')) as ChaosRow[])}\n`);
    return;
  }
  const limit = values['limit'] === undefined ? undefined : numberFlag(values, 'limit', { default: 0, min: 100, integer: true });
  const o: Options = {
    clients: numberFlag(values, 'clients', { default: 20, min: 4, integer: true }),
    rounds: numberFlag(values, 'rounds', { default: 15, min: 4, integer: true }),
    strategy: parseStrategy(stringFlag(values, 'strategy', 'fedmedian'), stringFlag(values, 'strategy-options', '')),
    seed: numberFlag(values, 'seed', { default: 1, min: 0, integer: true }),
    epochs: numberFlag(values, 'epochs', { default: 2, min: 1, integer: true }),
    ...(limit !== undefined ? { limit } : {}),
  };
  await initBackend();
  await mkdir(OUT_DIR, { recursive: true });
  const mnist = loadBuiltinDataset('mnist');
  // Both runs share one feature cache: the clean run extracts, the chaos run's restarted sites hit it.
  const cacheDir = await mkdtemp(join(tmpdir(), 'ftl-chaos-cache-'));
  const rows: ChaosRow[] = [];
  try {
    const clean = values['skip-clean'] === true ? undefined : await federation('clean', o, mnist, cacheDir);
    const chaos = await federation('chaos', o, mnist, cacheDir);
    if (clean?.predicted && chaos.predicted) {
      chaos.row.predictionsDifferFromClean = clean.predicted.reduce((n, p, i) => n + (p === chaos.predicted![i] ? 0 : 1), 0);
    }
    rows.push(...(clean ? [clean.row] : []), chaos.row);
  } finally {
    await rm(cacheDir, { recursive: true, force: true });
  }
  const file = join(OUT_DIR, `${o.strategy.name}-seed${o.seed}.json`);
  await writeFile(file, `${JSON.stringify(rows, null, 2)}\n`);
  process.stdout.write(`${chaosTable(rows)}\n`);
  progress(`rows written to ${file}`);
  if (!targetMet(rows)) {
    progress('target missed: see the table (every round once, one aggregation each, within 2 points of the clean run)');
    process.exit(1);
  }
});
