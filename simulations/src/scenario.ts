#!/usr/bin/env node
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { flagOptions, ErrorCode, FtlError, numberFlag, runProgram, type RawFlags } from '@ftl/shared';
import type { ByzantineRow } from './scenarios/byzantine.js';
import type { CutPointRow } from './scenarios/cut-point.js';
import type { FineTuneRow } from './scenarios/finetune.js';
import { hostileScenario, type HostileRow } from './scenarios/hostile.js';
import { longerRunsScenario, type LongerRunRow } from './scenarios/longer-runs.js';
import { LOW_DATA_METHODS, LOW_DATA_TASKS, lowDataScenario, type LowDataMethod, type LowDataRow, type LowDataTask } from './scenarios/low-data.js';
import type { PersonalizationRow } from './scenarios/personalization.js';
import { formatPercentInterval, meanInterval } from './confidence.js';
import { summaryMarkdown, writeStudy } from './report/index.js';
import { expandStudy } from './sim/config.js';
import { runStudy } from './sim/study.js';

/** Scenarios that run as study files now (`npm run sim -- --config simulations/scenarios/<name>.json`). */
const AS_STUDIES = ['byzantine', 'personalization', 'cutpoint', 'finetune'] as const;

const HELP = `npm run scenario -- <byzantine|personalization|cutpoint|finetune|hostile|lowdata|longer> [--quick]
Runs a research scenario (real coordinator and real clients in one process, over loopback socket.io) on
MNIST and prints a markdown table; the rows are also written to .ftl/scenarios/<name>.json (lowdata:
.ftl/scenarios/lowdata-<task>.json), from which --from prints the table again. byzantine,
personalization, cutpoint and finetune run as study files now: the same as
npm run sim -- --config simulations/scenarios/<name>.json (report in .ftl/sim/<name>); --from still prints
their earlier tables from saved rows.
  byzantine        10 IID clients, 2 send sign-flipped ×10 updates: FedAvg vs robust rules
  personalization  10 clients with 2 label shards each: FedAvg, FedProx, local layers, local fine-tuning
  cutpoint         10 clients, Dirichlet 0.5: the head on each candidate backbone layer
  finetune         10 clients, Dirichlet 0.5, 20 rounds: head only vs partial and gradual fine-tuning
  hostile          10 IID clients, one hostile (poisoned updates, false sample counts, evaluation lies,
                   poisoned normalisation statistics) under the default run config and trust policy
  lowdata          10 sites, Dirichlet 0.5, few labelled images each: transfer (feature extraction
                   from a random, class-mean or discriminant head, LP-FT, partial) against training
                   from scratch, a linear model on raw pixels and the pooled (centralized) data,
                   mean ± 95% CI over seeds; --task mnist|near (near: Fashion-MNIST 5–9), --sizes
                   10,25,50,100,500,all, --seeds 1,2,3, --methods …, --hidden "" (linear head),
                   --backbone DIR, --target 0.8 (accuracy for rounds-to-target); default 10 rounds
                   of 10 local epochs at --lr 0.003; --feature-layer NAME cuts the backbone there
                   for the transfer methods; --out NAME writes .ftl/scenarios/NAME.json instead
  longer           the run config's defaults on the whole MNIST pool (10 sites, Dirichlet 0.5) for
                   --lengths 5,10,20,40 rounds and --seeds 1: does a longer run end worse?
  --rounds N       rounds per run (default 8)
  --quick          2 rounds on 1,500 samples (a smoke run)
  --from FILE[,F]  any scenario: print its table from saved rows (the JSON a run wrote; several
                   files make one table) without running anything`;

const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(2)}%` : '–');

/** Each scenario's markdown table from its rows, the same whether they were just run or read back (`--from`). */
const TABLES = {
  byzantine: (r: ByzantineRow[]) => {
    const clean = r[0]!.heldOut;
    return [
      '| strategy | attackers | held-out accuracy | vs clean FedAvg | federated val acc (last round) | seconds |',
      '| --- | --- | --- | --- | --- | --- |',
      ...r.map(
        (x) =>
          `| ${x.label} | ${x.attackers} | ${pct(x.heldOut)} | ${((x.heldOut - clean) * 100).toFixed(2)} pts | ${pct(x.finalValAccuracy)} | ${x.seconds.toFixed(0)} |`,
      ),
    ];
  },
  personalization: (r: PersonalizationRow[]) => [
    '| strategy | held-out accuracy (global model) | per-client val acc, global model | per-client val acc, personalised | worst client, personalised | seconds |',
    '| --- | --- | --- | --- | --- | --- |',
    ...r.map(
      (x) =>
        `| ${x.label} | ${pct(x.heldOut)} | ${pct(x.globalPerClient)} | ${pct(x.personalPerClient)} | ${pct(x.worstClient)} | ${x.seconds.toFixed(0)} |`,
    ),
  ],
  cutpoint: (r: CutPointRow[]) => [
    '| feature layer | features | held-out accuracy | federated val acc (last round) | bytes per update | seconds |',
    '| --- | --- | --- | --- | --- | --- |',
    ...r.map(
      (x) => `| ${x.featureLayer} | ${x.featureDim} | ${pct(x.heldOut)} | ${pct(x.finalValAccuracy)} | ${x.updateBytes} | ${x.seconds.toFixed(0)} |`,
    ),
  ],
  finetune: (r: FineTuneRow[]) => [
    '| run | held-out accuracy | federated val acc (last round) | values per update | bytes per update | seconds |',
    '| --- | --- | --- | --- | --- | --- |',
    ...r.map(
      (x) => `| ${x.label} | ${pct(x.heldOut)} | ${pct(x.finalValAccuracy)} | ${x.trainedValues} | ${x.updateBytes} | ${x.seconds.toFixed(0)} |`,
    ),
  ],
  hostile: (r: HostileRow[]) => {
    const counts = (c: Record<string, number>) =>
      Object.entries(c)
        .map(([k, n]) => `${k} ×${n}`)
        .join('; ') || '–';
    const delta = (x: HostileRow) => (x.hostile && Number.isFinite(x.heldOut) ? `${((x.heldOut - x.cleanHeldOut) * 100).toFixed(2)} pts` : '–');
    return [
      '| run | config | outcome | held-out accuracy | vs clean (same config) | rounds (best) | hostile site: recorded exclusions | hostile site: refused messages | seconds |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      ...r.map(
        (x) =>
          `| ${x.label} | ${x.config} | ${x.outcome} | ${pct(x.heldOut)} | ${delta(x)} | ${x.rounds || '–'}${x.bestRound !== undefined ? ` (${x.bestRound})` : ''} | ` +
          `${x.hostile ? counts(x.exclusions) : ''} | ${x.hostile ? counts(x.refused) : ''} | ${x.seconds.toFixed(0)} |`,
      ),
    ];
  },
  lowdata: (r: LowDataRow[]) => lowDataTables(r),
  longer: (r: LongerRunRow[]) => {
    const lengths = [...new Set(r.map((x) => x.rounds))];
    const seeds = [...new Set(r.map((x) => x.seed))];
    return [
      `| seed | ${lengths.map((n) => `${n} rounds`).join(' | ')} |`,
      `| --- | ${lengths.map(() => '---').join(' | ')} |`,
      ...seeds.map(
        (seed) => `| ${seed} | ${lengths.map((n) => pct(r.find((x) => x.seed === seed && x.rounds === n)?.heldOut ?? NaN)).join(' | ')} |`,
      ),
    ];
  },
};
type ScenarioName = keyof typeof TABLES;

const FLAGS = flagOptions(
  ['rounds', 'epochs', 'task', 'sizes', 'seeds', 'methods', 'hidden', 'target', 'backbone', 'lr', 'from', 'feature-layer', 'out', 'lengths'],
  ['quick'],
);

// The scenario's name comes first: `npm run scenario -- byzantine --rounds 15`.
const [first, ...rest] = process.argv.slice(2);
const name = first !== undefined && !first.startsWith('-') ? first : undefined;

runProgram({ help: HELP, flags: FLAGS, argv: name === undefined ? process.argv.slice(2) : rest }, async (values) => {
  if (name === undefined) return 'help';
  const quick = values['quick'] === true;
  const rounds = numberFlag(values, 'rounds', { default: quick ? 2 : 8, min: 1, integer: true });
  const progress = (line: string) => process.stderr.write(`${line}\n`);
  if (!(name in TABLES)) {
    throw new FtlError(ErrorCode.InvalidConfig, `unknown scenario "${name}"; use ${Object.keys(TABLES).join(', ')}`);
  }
  const tableOf = TABLES[name as ScenarioName] as (rows: object[]) => string[];
  if (values['from'] !== undefined) {
    // Tables again from saved runs (what docs/results.md is generated from), without running anything;
    // several files (comma-separated) make one table, e.g. a grid run in parts.
    const files = String(values['from']).split(',').filter(Boolean);
    const saved = (await Promise.all(files.map(async (f) => JSON.parse(await readFile(f, 'utf8')) as object[]))).flat();
    process.stdout.write(`${tableOf(saved).join('\n')}\n`);
    return;
  }
  if ((AS_STUDIES as readonly string[]).includes(name)) {
    // A thin alias: the study file is the scenario now; --quick and --rounds still shorten it.
    const where = `simulations/scenarios/${name}.json`;
    process.stderr.write(`${name} runs as a study: npm run sim -- --config ${where}\n`);
    const doc = JSON.parse(await readFile(new URL(`../scenarios/${name}.json`, import.meta.url), 'utf8')) as Record<string, Record<string, unknown>>;
    if (quick) doc['data'] = { ...doc['data'], limit: 1500 };
    if (quick || values['rounds'] !== undefined) doc['run'] = { ...doc['run'], rounds };
    const report = await runStudy(expandStudy(doc, where));
    const { files } = await writeStudy(report, `.ftl/sim/${name}`);
    process.stdout.write(`${summaryMarkdown(report)}\nreport: .ftl/sim/${name}/report.html (${files.length} files)\n`);
    return;
  }
  let rows: object[];
  let file: string = name;
  if (name === 'hostile') {
    rows = await hostileScenario(progress, { quick, rounds });
  } else if (name === 'longer') {
    const lengths = integersFlag(values, 'lengths', quick ? [1, 2] : [5, 10, 20, 40]) as number[];
    rows = await longerRunsScenario(progress, { lengths, seeds: integersFlag(values, 'seeds', [1]) as number[] });
  } else {
    const options = lowDataOptions(values, quick);
    // One file per task, so the far and the near transfer tables are regenerated independently.
    file = values['out'] !== undefined ? String(values['out']) : `lowdata-${options.task}`;
    // Written after every run: an interrupted grid keeps what it measured.
    const path = `.ftl/scenarios/${file}.json`;
    await mkdir('.ftl/scenarios', { recursive: true });
    rows = await lowDataScenario(progress, options, (so) => writeFile(path, `${JSON.stringify(so, null, 2)}\n`));
  }
  process.stdout.write(`${tableOf(rows).join('\n')}\n`);
  await mkdir('.ftl/scenarios', { recursive: true });
  await writeFile(`.ftl/scenarios/${file}.json`, `${JSON.stringify(rows, null, 2)}\n`);
});

/** A comma list of allowed words, or the default when the flag is absent. */
function listFlag<T extends string>(values: RawFlags, name: string, allowed: readonly T[], fallback: readonly T[]): T[] {
  const raw = values[name];
  if (raw === undefined) return [...fallback];
  const items = String(raw).split(',').filter(Boolean);
  const bad = items.find((x) => !(allowed as readonly string[]).includes(x));
  if (bad !== undefined) throw new FtlError(ErrorCode.InvalidConfig, `--${name} takes ${allowed.join(', ')} (got "${bad}")`);
  return items as T[];
}

/** A comma list of positive integers, or the default when the flag is absent. */
function integersFlag(values: RawFlags, name: string, fallback: number[], extra: string[] = []): Array<number | string> {
  const raw = values[name];
  if (raw === undefined) return fallback;
  return String(raw)
    .split(',')
    .filter(Boolean)
    .map((x) => {
      if (extra.includes(x)) return x;
      const n = Number(x);
      if (!Number.isInteger(n) || n < 1)
        throw new FtlError(ErrorCode.InvalidConfig, `--${name} takes positive integers${extra.length ? ` or ${extra.join(', ')}` : ''} (got "${x}")`);
      return n;
    });
}

function lowDataOptions(values: RawFlags, quick: boolean): Parameters<typeof lowDataScenario>[1] {
  const [task] = listFlag(values, 'task', Object.keys(LOW_DATA_TASKS) as LowDataTask[], ['mnist']);
  const hidden = values['hidden'] === undefined ? [] : String(values['hidden']).split(',').filter(Boolean).map(Number);
  if (hidden.some((h) => !Number.isInteger(h) || h < 1))
    throw new FtlError(ErrorCode.InvalidConfig, `--hidden takes positive integers, or "" for a linear head (got "${String(values['hidden'])}")`);
  return {
    task: task!,
    sizes: integersFlag(values, 'sizes', quick ? [25] : [10, 25, 50, 100, 500], ['all']).map((x) => (x === 'all' ? undefined : (x as number))),
    seeds: integersFlag(values, 'seeds', quick ? [1] : [1, 2, 3]) as number[],
    methods: listFlag<LowDataMethod>(values, 'methods', LOW_DATA_METHODS, LOW_DATA_METHODS),
    rounds: numberFlag(values, 'rounds', { default: quick ? 2 : 10, min: 1, integer: true }),
    // A site with 25 images has one minibatch: local work is counted in epochs, so small sites need more of them.
    epochs: numberFlag(values, 'epochs', { default: quick ? 2 : 10, min: 1, integer: true }),
    learningRate: numberFlag(values, 'lr', { default: 0.003, min: Number.MIN_VALUE }),
    target: numberFlag(values, 'target', { default: 0.8, min: 0, max: 1 }),
    hidden,
    ...(values['backbone'] !== undefined ? { backboneDir: String(values['backbone']) } : {}),
    ...(values['feature-layer'] !== undefined ? { featureLayer: String(values['feature-layer']) } : {}),
  };
}

/** Held-out accuracy by images per site × method (mean ± 95% CI over seeds), then each method's traffic and time per round. */
function lowDataTables(rows: LowDataRow[]): string[] {
  const methods = [...new Set(rows.map((r) => r.method))];
  const sizes = [...new Set(rows.map((r) => r.perSite))];
  const cell = (size: number | undefined, method: string) => {
    const runs = rows.filter((r) => r.perSite === size && r.method === method);
    const done = runs.filter((r) => r.failed === undefined);
    const failed = runs.length - done.length;
    return formatPercentInterval(meanInterval(done.map((r) => r.heldOut))) + (failed > 0 ? ` (${failed} of ${runs.length} failed)` : '');
  };
  const finished = rows.filter((r) => r.failed === undefined);
  const per = (method: string, f: (r: LowDataRow) => number) => {
    const xs = finished.filter((r) => r.method === method).map(f);
    return xs.reduce((a, b) => a + b, 0) / xs.length;
  };
  const reached = (method: string) => {
    const xs = finished.filter((r) => r.method === method);
    const hit = xs.filter((r) => r.roundToTarget !== undefined);
    const mean = (f: (r: LowDataRow) => number) => hit.reduce((a, r) => a + f(r), 0) / hit.length;
    return `${hit.length}/${xs.length}${hit.length ? ` (round ${mean((r) => r.roundToTarget!).toFixed(1)}, ${mean((r) => r.secondsToTarget!).toFixed(1)} s)` : ''}`;
  };
  return [
    `| images per site | ${methods.join(' | ')} |`,
    `| --- | ${methods.map(() => '---').join(' | ')} |`,
    ...sizes.map((size) => `| ${size ?? 'all'} | ${methods.map((m) => cell(size, m)).join(' | ')} |`),
    '',
    '| method | values per update | MB per round (all sites) | seconds per round | runs reaching the target (mean round, mean seconds to it) |',
    '| --- | --- | --- | --- | --- |',
    ...methods.map(
      (m) =>
        `| ${m} | ${per(m, (r) => r.updateValues).toFixed(0)} | ${(per(m, (r) => r.bytesPerRound) / 1e6).toFixed(2)} | ` +
        `${per(m, (r) => r.secondsPerRound).toFixed(2)} | ${reached(m)} |`,
    ),
  ];
}
