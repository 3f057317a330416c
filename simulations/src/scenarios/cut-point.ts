import { parsePartition, parseStrategy } from '@ftl/shared';
import { simulate } from '../simulate.js';

/** One row of the cut-point scenario. */
export interface CutPointRow {
  featureLayer: string;
  /** Length of the feature vector, i.e. the head's input. */
  featureDim: number;
  heldOut: number;
  finalValAccuracy: number;
  /** Bytes of one head update on the wire. */
  updateBytes: number;
  seconds: number;
}

/** The default backbone's candidate cut points, from the input side up. */
export const CUT_POINTS = ['conv1', 'features', 'fc', 'source_logits'] as const;

/**
 * Which backbone layer's output transfers best from Fashion-MNIST to MNIST digits: the same federation
 * (10 clients, Dirichlet 0.5, FedAvg) with the head on each candidate layer's output.
 */
export async function cutPointScenario(progress: (line: string) => void, o: { quick: boolean; rounds: number }): Promise<CutPointRow[]> {
  const rows: CutPointRow[] = [];
  for (const featureLayer of CUT_POINTS) {
    progress(`running with features from ${featureLayer} …`);
    const r = await simulate({
      clients: 10,
      partition: parsePartition('dirichlet:0.5'),
      rounds: o.rounds,
      epochs: 2,
      learningRate: 0.001,
      batchSize: 32,
      seed: 1,
      strategy: parseStrategy('fedavg'),
      featureLayer,
      ...(o.quick ? { limit: 1500 } : {}),
      onRound: (round, acc) => progress(`  round ${round}: federated validation accuracy ${(acc * 100).toFixed(2)}%`),
    });
    const last = r.summary.rounds.at(-1)!;
    const first = r.summary.rounds[0]!;
    rows.push({
      featureLayer,
      featureDim: r.featureDim,
      heldOut: r.heldOut,
      finalValAccuracy: last.valAccuracy,
      updateBytes: Math.round(first.bytesIn / Math.max(1, first.accepted)),
      seconds: r.seconds,
    });
  }
  return rows;
}
