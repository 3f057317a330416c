#!/usr/bin/env node
import { mkdir, writeFile } from 'node:fs/promises';
import { ErrorCode, FtlError, numberFlag, parseFlags, runMain } from '@ftl/shared';
import { byzantineScenario } from './scenarios/byzantine.js';
import { cutPointScenario } from './scenarios/cut-point.js';
import { fineTuneScenario } from './scenarios/finetune.js';
import { hostileScenario } from './scenarios/hostile.js';
import { personalizationScenario } from './scenarios/personalization.js';

const HELP = `npm run scenario -- <byzantine|personalization|cutpoint|finetune|hostile> [--quick]
Runs a research scenario (real coordinator and real clients in one process, over loopback socket.io) on
MNIST and prints a markdown table; the rows are also written to .ftl/scenarios/<name>.json.
  byzantine        10 IID clients, 2 send sign-flipped ×10 updates: FedAvg vs robust rules
  personalization  10 clients with 2 label shards each: FedAvg, FedProx, local layers, local fine-tuning
  cutpoint         10 clients, Dirichlet 0.5: the head on each candidate backbone layer
  finetune         10 clients, Dirichlet 0.5, 20 rounds: head only vs partial and gradual fine-tuning
                   (--epochs N local epochs, default 2; --only partial,… picks fine-tuning modes)
  hostile          10 IID clients, one hostile (poisoned updates, false sample counts, evaluation lies,
                   poisoned normalisation statistics) under the default run config and trust policy
  --rounds N       rounds per run (default 8)
  --lr-decay X     client learning rate × X each round, every strategy alike (default: 0.8 for
                   byzantine, 1 otherwise)
  --only A,B       byzantine: only these strategies (plus the clean reference), e.g. krum,fedmedian
  --quick          2 rounds on 1,500 samples (a smoke run)`;

const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(2)}%` : '–');

runMain(async () => {
  // The scenario's name comes first: `npm run scenario -- byzantine --rounds 15`.
  const [first, ...rest] = process.argv.slice(2);
  const name = first !== undefined && !first.startsWith('-') ? first : undefined;
  const values = parseFlags(name === undefined ? process.argv.slice(2) : rest, {
    quick: { type: 'boolean' }, rounds: { type: 'string' }, 'lr-decay': { type: 'string' }, only: { type: 'string' }, help: { type: 'boolean' },
    epochs: { type: 'string' },
  });
  if (values['help'] || name === undefined) {
    process.stdout.write(HELP + '\n');
    return;
  }
  const quick = values['quick'] === true;
  const rounds = numberFlag(values, 'rounds', { default: quick ? 2 : 8, min: 1, integer: true });
  // Byzantine: Krum keeps one site's model per round and needs a decaying step to settle (docs/results.md).
  const lrDecay = numberFlag(values, 'lr-decay', { default: name === 'byzantine' ? 0.8 : 1, min: Number.MIN_VALUE, max: 1 });
  const only = values['only'] === undefined ? undefined : String(values['only']).split(',').filter(Boolean);
  const progress = (line: string) => process.stderr.write(line + '\n');
  let table: string[];
  let rows: object[];
  if (name === 'byzantine') {
    const r = await byzantineScenario(progress, { quick, rounds, lrDecay, ...(only ? { only } : {}) });
    rows = r;
    const clean = r[0]!.heldOut;
    table = [
      '| strategy | attackers | held-out accuracy | vs clean FedAvg | federated val acc (last round) | seconds |',
      '| --- | --- | --- | --- | --- | --- |',
      ...r.map((x) => `| ${x.label} | ${x.attackers} | ${pct(x.heldOut)} | ${((x.heldOut - clean) * 100).toFixed(2)} pts | ${pct(x.finalValAccuracy)} | ${x.seconds.toFixed(0)} |`),
    ];
  } else if (name === 'personalization') {
    const r = await personalizationScenario(progress, { quick, rounds });
    rows = r;
    table = [
      '| strategy | held-out accuracy (global model) | per-client val acc, global model | per-client val acc, personalised | worst client, personalised | seconds |',
      '| --- | --- | --- | --- | --- | --- |',
      ...r.map((x) => `| ${x.label} | ${pct(x.heldOut)} | ${pct(x.globalPerClient)} | ${pct(x.personalPerClient)} | ${pct(x.worstClient)} | ${x.seconds.toFixed(0)} |`),
    ];
  } else if (name === 'cutpoint') {
    const r = await cutPointScenario(progress, { quick, rounds });
    rows = r;
    table = [
      '| feature layer | features | held-out accuracy | federated val acc (last round) | bytes per update | seconds |',
      '| --- | --- | --- | --- | --- | --- |',
      ...r.map((x) => `| ${x.featureLayer} | ${x.featureDim} | ${pct(x.heldOut)} | ${pct(x.finalValAccuracy)} | ${x.updateBytes} | ${x.seconds.toFixed(0)} |`),
    ];
  } else if (name === 'finetune') {
    const r = await fineTuneScenario(progress, {
      quick, rounds: values['rounds'] === undefined && !quick ? 20 : rounds,
      epochs: numberFlag(values, 'epochs', { default: 2, min: 1, integer: true }), ...(only ? { only } : {}),
    });
    rows = r;
    table = [
      '| run | held-out accuracy | federated val acc (last round) | values per update | bytes per update | seconds |',
      '| --- | --- | --- | --- | --- | --- |',
      ...r.map((x) => `| ${x.label} | ${pct(x.heldOut)} | ${pct(x.finalValAccuracy)} | ${x.trainedValues} | ${x.updateBytes} | ${x.seconds.toFixed(0)} |`),
    ];
  } else if (name === 'hostile') {
    const r = await hostileScenario(progress, { quick, rounds });
    rows = r;
    const counts = (c: Record<string, number>) => Object.entries(c).map(([k, n]) => `${k} ×${n}`).join('; ') || '–';
    const delta = (x: (typeof r)[number]) => (x.hostile && Number.isFinite(x.heldOut) ? `${((x.heldOut - x.cleanHeldOut) * 100).toFixed(2)} pts` : '–');
    table = [
      '| run | config | outcome | held-out accuracy | vs clean (same config) | rounds (best) | hostile site: recorded exclusions | hostile site: refused messages | seconds |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      ...r.map((x) => `| ${x.label} | ${x.config} | ${x.outcome} | ${pct(x.heldOut)} | ${delta(x)} | ${x.rounds || '–'}${x.bestRound !== undefined ? ` (${x.bestRound})` : ''} | ` +
        `${x.hostile ? counts(x.exclusions) : ''} | ${x.hostile ? counts(x.refused) : ''} | ${x.seconds.toFixed(0)} |`),
    ];
  } else {
    throw new FtlError(ErrorCode.InvalidConfig, `unknown scenario "${name}"; use byzantine, personalization, cutpoint, finetune or hostile`);
  }
  process.stdout.write(table.join('\n') + '\n');
  await mkdir('.ftl/scenarios', { recursive: true });
  await writeFile(`.ftl/scenarios/${name}.json`, JSON.stringify(rows, null, 2) + '\n');
});
