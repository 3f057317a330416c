import { parseRunConfig, SMALL_BACKBONE_DIR } from '@ftl/coordinator';
import { createLogger, loadBuiltinDataset, loadClientShard, type LocalShard } from '@ftl/shared';
import { runFederation } from './sim/federation.js';

/** One configuration the bench runs: plain FedAvg, secure aggregation, or SecAgg+ with `neighbours`. */
interface Variant {
  label: string;
  secure: boolean;
  neighbours?: number;
}

/** What a variant cost per round: the medians over its rounds. */
interface Cost {
  bytesIn: number;
  bytesOut: number;
  seconds: number;
  /** Values of the head each site's update holds. */
  values: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** Per-round bytes and seconds of `rounds` rounds of a federation of `shards` run as `variant`, sites in this thread over the in-process hub. */
async function roundCost(shards: readonly LocalShard[], variant: Variant, rounds: number, epochs: number, cacheDir: string): Promise<Cost> {
  const run = parseRunConfig({
    runId: `bench-secagg-${shards.length}-${variant.label.replace(/\W+/g, '-')}`,
    rounds,
    fit: { epochs, batchSize: 32, learningRate: 0.01 },
    // The setting the overhead was measured on: small-fmnist's 800 features under a 128-unit head (103,818
    // values per update), from a random start in both variants.
    hidden: [128],
    headInit: 'random',
    ...(variant.secure
      ? {
          trust: { normBound: 0, maxAbsValue: 0 },
          secureAggregation: { enabled: true, clipRange: 1, ...(variant.neighbours ? { neighbours: variant.neighbours } : {}) },
        }
      : {}),
  });
  const log = createLogger('bench', { level: 'warn' });
  const r = await runFederation({ run, backboneDir: SMALL_BACKBONE_DIR, sites: shards, transport: 'inproc', log, cacheDir });
  const points = r.rounds;
  if (points.length !== rounds || points.some((p) => p.accepted !== shards.length)) {
    throw new Error(`${variant.label} with ${shards.length} sites did not aggregate every site in every round`);
  }
  return {
    bytesIn: median(points.map((p) => p.bytesIn)),
    bytesOut: median(points.map((p) => p.bytesOut)),
    seconds: median(points.map((p) => p.seconds)),
    values: r.featureDim * run.hidden[0]! + run.hidden[0]! + run.hidden[0]! * run.classes.length + run.classes.length,
  };
}

/**
 * Secure aggregation's overhead against plain FedAvg: bytes into and out of the coordinator and seconds
 * per round, the medians of `rounds` rounds, for each federation size in `sizes` (MNIST, IID, `perSite`
 * images per site, the default head), with every site in this thread over the in-process hub. At the
 * largest size also SecAgg+ with `neighbours` neighbours. Prints a markdown table.
 */
export async function secureAggregationBench(o: {
  sizes: number[];
  rounds: number;
  epochs: number;
  perSite: number;
  neighbours: number;
  cacheDir: string;
}) {
  const mnist = loadBuiltinDataset('mnist');
  const MB = (b: number) => (b / 1e6).toFixed(2);
  process.stdout.write(
    `\nSecure aggregation against plain FedAvg: MNIST IID, ${o.perSite} images per site, the default head, ${o.epochs} local epoch(s), ` +
      `medians of ${o.rounds} rounds, every site in this thread over the in-process hub (every message msgpack-encoded and checked as over a socket)\n`,
  );
  process.stdout.write('| sites | aggregation | MB in / round | MB out / round | s / round | × bytes in | × bytes out | × seconds |\n');
  process.stdout.write('| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n');
  let values = 0;
  for (const n of o.sizes) {
    const shards = Array.from({ length: n }, (_, index) =>
      loadClientShard({ dataset: 'mnist', partition: { kind: 'iid' }, clients: n, index, seed: 1, perClient: o.perSite }, undefined, mnist),
    );
    const variants: Variant[] = [
      { label: 'plain FedAvg', secure: false },
      { label: 'secure, all sites', secure: true },
      ...(n === Math.max(...o.sizes) && o.neighbours < n - 1
        ? [{ label: `SecAgg+, ${o.neighbours} neighbours`, secure: true, neighbours: o.neighbours }]
        : []),
    ];
    let base: Cost | undefined;
    for (const v of variants) {
      const cost = await roundCost(shards, v, o.rounds, o.epochs, o.cacheDir);
      base ??= cost;
      values = cost.values;
      const x = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
      process.stdout.write(
        `| ${n} | ${v.label} | ${MB(cost.bytesIn)} | ${MB(cost.bytesOut)} | ${cost.seconds.toFixed(2)} | ${x(cost.bytesIn, base.bytesIn)} | ${x(cost.bytesOut, base.bytesOut)} | ${x(cost.seconds, base.seconds)} |\n`,
      );
    }
  }
  process.stdout.write(`Each update holds ${values} values (${(values * 4e-6).toFixed(2)} MB as float32).\n`);
}
