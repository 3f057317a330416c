import { parsePartition, parseStrategy } from '@ftl/shared';
import { simulate, type SimulationOptions } from '../simulate.js';

/** One row of the personalization scenario. */
export interface PersonalizationRow {
  label: string;
  /** Held-out MNIST accuracy of the exported global model (NaN when layers stay local). */
  heldOut: number;
  /** Sample-weighted mean of the clients' validation accuracy with the global model. */
  globalPerClient: number;
  /** The same with each client's personalised model (local layers, or local fine-tuning). */
  personalPerClient: number;
  /** Lowest per-client personalised accuracy (fine-tuning only; NaN otherwise). */
  worstClient: number;
  seconds: number;
}

/**
 * 10 MNIST clients with 2 label shards each (about 2 classes per client): FedAvg against FedProx, a
 * local output layer (FedPer-style) and post-training local fine-tuning.
 */
export async function personalizationScenario(
  progress: (line: string) => void,
  o: { quick: boolean; rounds: number },
): Promise<PersonalizationRow[]> {
  const base: Omit<SimulationOptions, 'strategy'> = {
    clients: 10,
    partition: parsePartition('shards:2'),
    rounds: o.rounds,
    epochs: 2,
    learningRate: 0.001,
    batchSize: 32,
    seed: 4,
    ...(o.quick ? { limit: 1500 } : {}),
  };
  const runs: Array<[string, Partial<SimulationOptions> & Pick<SimulationOptions, 'strategy'>]> = [
    ['FedAvg', { strategy: parseStrategy('fedavg') }],
    ['FedProx μ=0.1', { strategy: parseStrategy('fedprox', 'mu=0.1') }],
    ['FedProx μ=1', { strategy: parseStrategy('fedprox', 'mu=1') }],
    ['FedAvg + local output layer', { strategy: parseStrategy('fedavg'), localLayers: ['head_output'] }],
    ['FedAvg + 3 epochs local fine-tuning', { strategy: parseStrategy('fedavg'), personalizeEpochs: 3 }],
  ];
  const rows: PersonalizationRow[] = [];
  for (const [label, over] of runs) {
    progress(`running ${label} …`);
    const r = await simulate({
      ...base,
      ...over,
      onRound: (round, acc) => progress(`  round ${round}: federated validation accuracy ${(acc * 100).toFixed(2)}%`),
    });
    const last = r.summary.rounds.at(-1)!;
    const p = r.summary.personalization;
    const weighted = (f: (x: NonNullable<typeof p>[number]) => number) =>
      p!.reduce((s, x) => s + f(x) * x.numExamples, 0) / p!.reduce((s, x) => s + x.numExamples, 0);
    rows.push({
      label,
      heldOut: r.heldOut,
      // With local layers every evaluation already uses the client's own output layer.
      globalPerClient: p ? weighted((x) => x.globalAccuracy) : over.localLayers ? NaN : last.valAccuracy,
      personalPerClient: p ? weighted((x) => x.personalAccuracy) : over.localLayers ? last.valAccuracy : NaN,
      worstClient: p ? Math.min(...p.map((x) => x.personalAccuracy)) : NaN,
      seconds: r.seconds,
    });
  }
  return rows;
}
