import { parsePartition, parseStrategy, type FineTuning } from '@ftl/shared';
import { simulate, type SimulationOptions } from '../simulate.js';

/** One row of the fine-tuning scenario. */
export interface FineTuneRow {
  label: string;
  fineTuning: FineTuning;
  /** Held-out MNIST accuracy of the exported global model (1,500 images no client saw). */
  heldOut: number;
  finalValAccuracy: number;
  /** Float32 values the last round's updates carried (head + unfrozen backbone layers). */
  trainedValues: number;
  /** Bytes received by the coordinator in the last round, per accepted update. */
  updateBytes: number;
  seconds: number;
}

const mode = (over: Partial<FineTuning>): FineTuning => ({ mode: 'feature-extraction', layers: 1, everyRounds: 1, backboneLrFactor: 1, ...over });

/** The scenario's runs: today's head-only federation against fine-tuning the top backbone layers. */
export const FINE_TUNE_RUNS: ReadonlyArray<[string, FineTuning]> = [
  ['feature extraction (head only)', mode({})],
  ['partial k=1 (conv2), backbone lr ×1', mode({ mode: 'partial', layers: 1, backboneLrFactor: 1 })],
  ['partial k=1 (conv2), backbone lr ×0.1', mode({ mode: 'partial', layers: 1, backboneLrFactor: 0.1 })],
  [
    'gradual to k=2 (conv2 from round 6, conv1 from 11), backbone lr ×0.1',
    mode({ mode: 'gradual', layers: 2, everyRounds: 5, backboneLrFactor: 0.1 }),
  ],
];

/**
 * 10 MNIST clients with a Dirichlet(0.5) label split, FedAvg, the default (Fashion-MNIST) backbone: the
 * held-out accuracy of head-only training against partial and gradual fine-tuning of the backbone.
 */
export async function fineTuneScenario(
  progress: (line: string) => void,
  o: { quick: boolean; rounds: number; epochs: number; only?: string[] },
): Promise<FineTuneRow[]> {
  const base: Omit<SimulationOptions, 'fineTuning'> = {
    clients: 10,
    partition: parsePartition('dirichlet:0.5'),
    rounds: o.rounds,
    epochs: o.epochs,
    learningRate: 0.001,
    batchSize: 32,
    seed: 1,
    strategy: parseStrategy('fedavg'),
    ...(o.quick ? { limit: 1500 } : {}),
  };
  const rows: FineTuneRow[] = [];
  for (const [label, fineTuning] of FINE_TUNE_RUNS) {
    if (o.only && !o.only.includes(fineTuning.mode)) continue;
    progress(`running ${label} …`);
    const r = await simulate({
      ...base,
      fineTuning,
      onRound: (round, acc) => progress(`  round ${round}: federated validation accuracy ${(acc * 100).toFixed(2)}%`),
    });
    const last = r.summary.rounds.at(-1)!;
    rows.push({
      label,
      fineTuning,
      heldOut: r.heldOut,
      finalValAccuracy: last.valAccuracy,
      trainedValues: r.summary.weights.values.length,
      updateBytes: Math.round(last.bytesIn / Math.max(1, last.accepted)),
      seconds: r.seconds,
    });
  }
  return rows;
}
