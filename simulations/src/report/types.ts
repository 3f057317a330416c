// What a simulation study records, as the report writer reads it. The runner fills it; the writers
// (JSON, CSV, SVG, HTML, terminal table) only read it.

/** One round of one run, as the coordinator recorded it plus what the runner measured. */
export interface RoundPoint {
  round: number;
  /** Federated evaluation of the round's global model on the sites' validation splits. */
  valLoss: number;
  valAccuracy: number;
  /** Accuracy of the round's global model on the held-out set (absent when not measured that round). */
  heldOut?: number;
  trainLoss: number;
  /** Updates accepted into the aggregate, and sites asked to train. */
  accepted: number;
  selected: number;
  /** Bytes the coordinator received and sent this round (all sites). */
  bytesIn: number;
  bytesOut: number;
  seconds: number;
  /** With record-level DP: the largest ε any site reported spending so far (at the run's δ). */
  epsilon?: number;
  /** Each site's own validation accuracy of the round's global model, when the run reports it. */
  perClient?: ClientPoint[];
}

/** One site's figures in a round. */
export interface ClientPoint {
  client: string;
  samples: number;
  valAccuracy: number;
  valLoss: number;
}

/**
 * One run: a method (the federated transfer run, or a baseline) with one seed at one setting. A failed
 * run keeps its row with `failed` set, so a table shows it instead of silently leaving it out.
 */
export interface MethodRun {
  /** `transfer`, or a baseline: `centralized`, `local`, `scratch`, `linear`, `random-backbone`, … */
  method: string;
  seed: number;
  /** The setting this run belongs to when a study sweeps one (e.g. samples per site); absent otherwise. */
  setting?: { name: string; value: number | string };
  rounds: RoundPoint[];
  /** Held-out accuracy of the final model (for `local`: the mean over sites). */
  heldOut: number;
  /** `local` only: the worst site's held-out accuracy. */
  worstHeldOut?: number;
  /** Values in one update (the trained tensors), and bytes moved over the whole run (in + out). */
  updateValues: number;
  bytesTotal: number;
  seconds: number;
  /** Final per-site validation accuracies (for the per-client spread plot). */
  perClientAccuracy?: number[];
  failed?: string;
}

/** Where and with what the study ran. */
export interface Environment {
  date: string;
  node: string;
  ftlVersion: string;
  tfjsVersion: string;
  backend: string;
  cpus: number;
  platform: string;
}

/** The whole study: its config, its runs and the context needed to read them. */
export interface StudyReport {
  title: string;
  /** The validated config as run (JSON), shown verbatim in the report. */
  config: unknown;
  seeds: number[];
  environment: Environment;
  /** The held-out set: its name and size, so every table can state its uncertainty. */
  heldOut: { dataset: string; images: number };
  /** Accuracy whose first crossing the tables report as rounds and seconds to target. */
  target?: number;
  runs: MethodRun[];
}
