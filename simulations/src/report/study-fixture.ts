import type { MethodRun, RoundPoint, StudyReport } from './types.js';

/**
 * A run for the report's tests, built from its held-out accuracy per round: the validation accuracy is
 * one point lower, each round moves 1 kB in and 2 kB out and takes 2 s, and the final held-out accuracy
 * is the last round's unless `heldOut` says otherwise.
 */
export function fixtureRun(spec: { method: string; seed: number; accuracies: number[] } & Partial<Omit<MethodRun, 'rounds'>>): MethodRun {
  const { accuracies, ...rest } = spec;
  const rounds: RoundPoint[] = accuracies.map((accuracy, i) => ({
    round: i + 1,
    valLoss: 1 - accuracy,
    valAccuracy: accuracy - 0.01,
    heldOut: accuracy,
    trainLoss: 1.1 - accuracy,
    accepted: 3,
    selected: 3,
    bytesIn: 1000,
    bytesOut: 2000,
    seconds: 2,
  }));
  return {
    rounds,
    heldOut: accuracies[accuracies.length - 1] ?? Number.NaN,
    updateValues: 650,
    bytesTotal: 3000 * accuracies.length,
    seconds: 2 * accuracies.length,
    ...rest,
  };
}

/** A study around `runs`, with a 10,000-image held-out set and a fixed environment. */
export function fixtureStudy(runs: MethodRun[], extra: Partial<StudyReport> = {}): StudyReport {
  return {
    title: 'Low-data transfer',
    config: { rounds: 3, sites: 3, lr: 0.003 },
    seeds: [...new Set(runs.map((r) => r.seed))],
    environment: {
      date: '2025-01-02T03:04:05Z',
      node: 'v20.19.0',
      ftlVersion: '0.1.0',
      tfjsVersion: '4.22.0',
      backend: 'wasm',
      cpus: 8,
      platform: 'linux',
    },
    heldOut: { dataset: 'MNIST test', images: 10_000 },
    runs,
    ...extra,
  };
}
