import { defaultCoordinatorConfig } from '@ftl/coordinator';
import { parsePartition } from '@ftl/shared';
import { simulate } from '../simulate.js';

/** One run of the scenario: its length, the exported model's held-out accuracy and its rounds' federated validation accuracy. */
export interface LongerRunRow {
  rounds: number;
  seed: number;
  heldOut: number;
  valAccuracy: number[];
  seconds: number;
}

/**
 * Does a longer run end worse than a shorter one? The run config's defaults (backbone, head, local epochs,
 * learning rate, strategy) on the whole MNIST federation pool, 10 sites, Dirichlet 0.5, one run per
 * length and seed. A seeded run repeats a shorter one's rounds exactly, so the rows are one run's
 * trajectory read at each length.
 */
export async function longerRunsScenario(progress: (line: string) => void, o: { lengths: number[]; seeds: number[] }): Promise<LongerRunRow[]> {
  const d = defaultCoordinatorConfig();
  const rows: LongerRunRow[] = [];
  for (const seed of o.seeds) {
    for (const rounds of o.lengths) {
      progress(`${rounds} rounds · seed ${seed} …`);
      const r = await simulate({
        clients: 10,
        partition: parsePartition('dirichlet:0.5'),
        rounds,
        epochs: d.fit.epochs,
        learningRate: d.fit.learningRate,
        batchSize: d.fit.batchSize,
        seed,
        strategy: d.strategy,
      });
      rows.push({ rounds, seed, heldOut: r.heldOut, valAccuracy: r.summary.rounds.map((x) => x.valAccuracy), seconds: r.seconds });
      progress(`  held-out ${(r.heldOut * 100).toFixed(2)}%`);
    }
  }
  return rows;
}
