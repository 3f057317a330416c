import { parsePartition, parseStrategy } from '@ftl/shared';
import { signFlip, simulate, type SimulationOptions } from '../simulate.js';

/** One row of the Byzantine scenario. */
export interface ByzantineRow {
  label: string;
  attackers: number;
  heldOut: number;
  finalValAccuracy: number;
  seconds: number;
}

/**
 * 10 MNIST clients (IID), 2 of which send sign-flipped updates scaled ×10, under FedAvg and the robust
 * rules; the clean FedAvg run (same settings, no attackers) is the reference. `only` keeps the reference
 * and the named strategies. The coordinator's trust policy is off here, so each row shows what the
 * aggregation rule alone does (the hostile scenario measures the policy, which is on by default).
 */
export async function byzantineScenario(
  progress: (line: string) => void,
  o: { quick: boolean; rounds: number; lrDecay: number; only?: string[] },
): Promise<ByzantineRow[]> {
  const base: Omit<SimulationOptions, 'strategy'> = {
    clients: 10,
    partition: parsePartition('iid'),
    rounds: o.rounds,
    epochs: 2,
    learningRate: 0.001,
    lrDecay: o.lrDecay,
    batchSize: 32,
    seed: 3,
    attack: signFlip(10),
    ...(o.quick ? { limit: 1500 } : {}),
    trust: { normBound: 0, maxAbsValue: 0, weightCap: 0 },
  };
  const runs: Array<[string, string, string, number]> = [
    ['FedAvg, no attackers', 'fedavg', '', 0],
    ['FedAvg', 'fedavg', '', 2],
    ['FedMedian', 'fedmedian', '', 2],
    ['FedTrimmedAvg β=0.2', 'fedtrimmedavg', 'beta=0.2', 2],
    ['Krum f=2', 'krum', 'f=2', 2],
    ['Multi-Krum f=2 m=5', 'multikrum', 'f=2,m=5', 2],
    ['Norm-bounded FedAvg (1.0)', 'normbounded', 'maxNorm=1', 2],
  ];
  const rows: ByzantineRow[] = [];
  for (const [label, name, options, attackers] of runs.filter(([, name], i) => i === 0 || !o.only || o.only.includes(name))) {
    progress(`running ${label} with ${attackers} attackers …`);
    const r = await simulate({
      ...base,
      strategy: parseStrategy(name, options),
      attackers,
      onRound: (round, acc) => progress(`  round ${round}: federated validation accuracy ${(acc * 100).toFixed(2)}%`),
    });
    const last = r.summary.rounds.at(-1)!;
    rows.push({ label, attackers, heldOut: r.heldOut, finalValAccuracy: last.valAccuracy, seconds: r.seconds });
  }
  return rows;
}
