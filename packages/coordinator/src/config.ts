import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseRunConfig, readRunConfigFile, type HeadInit, type RunConfig } from './run-config.js';
import { checkTlsFiles } from './startup-errors.js';
import { DEFAULT_TRUST, type TrustPolicy } from './update-screen.js';
import {
  ErrorCode, FtlError, numberFlag, parseFlags, parseStrategy, STRATEGY_OPTIONS, stringFlag, type RawFlags, type AugmentConfig, type FineTuning, type FitConfig,
  type StrategyConfig,
} from '@ftl/shared';

/** The default backbone committed with ftl (pretrained on Fashion-MNIST by `npm run pretrain`). */
export const DEFAULT_BACKBONE_DIR = fileURLToPath(new URL('../backbone', import.meta.url));


/** Everything a coordinator run needs; one typed source, validated at start-up. */
export interface CoordinatorConfig {
  host: string;
  /** 0 picks a free port. */
  port: number;
  backboneDir: string;
  /** Overrides the backbone's own `featureLayer`. */
  featureLayer?: string;
  runId: string;
  rounds: number;
  /** Ready clients to wait for before round 1, for at most `waitTimeoutMs`. */
  minClients: number;
  waitTimeoutMs: number;
  /** Share of ready clients asked to train each round. */
  fractionFit: number;
  /** Accepted updates needed to aggregate a round; fewer keeps the global model. */
  minFitClients: number;
  /** A round (training, then evaluation) closes at this deadline with whoever answered. */
  roundDeadlineMs: number;
  fit: Omit<FitConfig, 'seed'>;
  /** Per-round changes: learning rate × lrDecay^(round−1); epochs from the last entry whose fromRound ≤ round. */
  schedule: { lrDecay: number; epochs: Array<{ fromRound: number; epochs: number }> };
  /** A round below --min-fit-clients is retried this many times (global model unchanged), then the run ends as failed. */
  quorumRetries: number;
  seed: number;
  hidden: number[];
  /** Head regularisation: L2 on the dense kernels, dropout after hidden layers. */
  l2: number;
  dropout: number;
  /** Stop after this many rounds without a better federated validation loss (or accuracy) and export the best head (0 = off). */
  patience: number;
  /** What "better" means for `patience`: a lower median validation loss, or a higher median validation accuracy. */
  patienceMetric?: 'loss' | 'accuracy';
  /** The run's label set; the head has one output per class. */
  classes: string[];
  /** Where the global model (backbone + head) is written at the end; none when undefined. */
  exportDir?: string;
  /** Sample counts above this are refused as implausible. */
  maxExamplesPerClient: number;
  /** Aggregation weights are min(sample count, this), so no client outweighs others by claiming more. */
  sampleWeightCap: number;
  /** How updates become the next global model. */
  strategy: StrategyConfig;
  /** How the run screens sites' updates and claims (default {@link DEFAULT_TRUST}). */
  trust?: TrustPolicy;
  /** Per value position, this many sites with the most extreme means are left out of the combined statistics (0: exact). */
  normalizationTrim?: number;
  /** The range every input value lies in, when the run declares one: statistics outside it are refused. */
  inputRange?: [number, number];
  /** Head layers that never leave the clients (personalization): each keeps its own copy. */
  localLayers: string[];
  /** After the last round, clients fine-tune the global head this many epochs and report both accuracies (0 = off). */
  personalizeEpochs: number;
  /** Which backbone layers train and travel with the head, and when (default: none, feature extraction). */
  fineTuning: FineTuning;
  /** How the head starts: seeded random (default), or the nearest-class-mean head from the sites' per-class feature sums. */
  headInit?: HeadInit;
  /** Training-time augmentation done by each client before feature extraction (copies 0 = off). */
  augment: AugmentConfig;
  /** Federated input normalisation: per-channel mean/std or min/max combined from client statistics. */
  normalization: 'none' | 'standard' | 'min-max';
  /** One statistic per image channel, or per value position (tabular data: one per CSV column). */
  normalizationScope: 'channel' | 'feature';
  /** Refuse clients without a valid, unrevoked token from the store (see `ftl-coordinator clients add`). */
  requireAuth: boolean;
  /**
   * Accept clients without tokens on a non-loopback `host` (`--insecure-open`). Without it, a coordinator
   * that does not require auth refuses to start anywhere but loopback: there anyone who reaches the port
   * could join as any site and replace it.
   */
  insecureOpen?: boolean;
  /** Serve HTTPS and WSS with this certificate and key (PEM). */
  tls?: { cert: Buffer; key: Buffer };
  /** SQLite file for runs, rounds and checkpoints (the CLI's default: .ftl/coordinator.db); none keeps state in memory. */
  dbPath?: string;
}

/** Applies a validated run configuration (file or API body) onto a coordinator configuration. */
export function applyRunConfig(base: CoordinatorConfig, run: RunConfig): CoordinatorConfig {
  const config: CoordinatorConfig = {
    ...base,
    runId: run.runId ?? base.runId, rounds: run.rounds, minClients: run.minClients, waitTimeoutMs: run.waitTimeoutSeconds * 1000,
    fractionFit: run.fractionFit, minFitClients: run.minFitClients, roundDeadlineMs: run.roundDeadlineSeconds * 1000,
    quorumRetries: run.quorumRetries, fit: { ...run.fit }, schedule: { lrDecay: run.schedule.lrDecay, epochs: [...run.schedule.epochs] },
    seed: run.seed, hidden: [...run.hidden], l2: run.l2, dropout: run.dropout, patience: run.patience, patienceMetric: run.patienceMetric, classes: [...run.classes], strategy: run.strategy, localLayers: [...run.localLayers],
    personalizeEpochs: run.personalizeEpochs, maxExamplesPerClient: run.maxExamplesPerClient, sampleWeightCap: run.sampleWeightCap,
    fineTuning: { ...run.fineTuning }, augment: { ...run.augment }, normalization: run.normalization, normalizationScope: run.normalizationScope,
    normalizationTrim: run.normalizationTrim, trust: { ...run.trust }, headInit: run.headInit,
  };
  if (run.featureLayer !== undefined) config.featureLayer = run.featureLayer;
  if (run.inputRange !== undefined) config.inputRange = [...run.inputRange];
  return config;
}

/**
 * The run configuration inside a coordinator configuration (the reverse of {@link applyRunConfig}):
 * what the store keeps for a run, so a restart, a resume or the API sees the run as it was defined.
 */
export function toRunConfig(c: CoordinatorConfig): RunConfig {
  return {
    runId: c.runId, rounds: c.rounds, minClients: c.minClients, waitTimeoutSeconds: c.waitTimeoutMs / 1000, fractionFit: c.fractionFit,
    minFitClients: c.minFitClients, roundDeadlineSeconds: c.roundDeadlineMs / 1000, quorumRetries: c.quorumRetries, fit: { ...c.fit },
    schedule: { lrDecay: c.schedule.lrDecay, epochs: [...c.schedule.epochs] }, seed: c.seed, l2: c.l2, dropout: c.dropout,
    patience: c.patience, patienceMetric: c.patienceMetric ?? 'loss', hidden: [...c.hidden], classes: [...c.classes], strategy: c.strategy, localLayers: [...c.localLayers],
    personalizeEpochs: c.personalizeEpochs, maxExamplesPerClient: c.maxExamplesPerClient, sampleWeightCap: c.sampleWeightCap,
    ...(c.featureLayer !== undefined ? { featureLayer: c.featureLayer } : {}), fineTuning: { ...c.fineTuning }, augment: { ...c.augment }, normalization: c.normalization, normalizationScope: c.normalizationScope,
    normalizationTrim: c.normalizationTrim ?? 0, trust: { ...(c.trust ?? DEFAULT_TRUST) }, ...(c.inputRange ? { inputRange: [...c.inputRange] } : {}),
    headInit: c.headInit ?? 'random',
  };
}

/** Defaults that run the embedded demo: the run config schema's defaults plus the server's. */
export function defaultCoordinatorConfig(): CoordinatorConfig {
  const server = {
    host: '127.0.0.1', port: 8080, backboneDir: DEFAULT_BACKBONE_DIR, runId: `run-${Date.now().toString(36)}`,
    exportDir: '.ftl/global-model', requireAuth: false,
  };
  return applyRunConfig(server as CoordinatorConfig, parseRunConfig({}));
}

function parseEpochsSchedule(text: string): Array<{ fromRound: number; epochs: number }> {
  const steps = text.split(',').filter(Boolean).map((pair) => {
    const m = /^(\d+):(\d+)$/.exec(pair.trim());
    if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) {
      throw new FtlError(ErrorCode.InvalidConfig, `--epochs-schedule must be "round:epochs" pairs like 1:5,4:2 with both ≥ 1 (got "${pair}")`);
    }
    return { fromRound: Number(m[1]), epochs: Number(m[2]) };
  });
  if (steps.some((s, i) => i > 0 && s.fromRound <= steps[i - 1]!.fromRound)) {
    throw new FtlError(ErrorCode.InvalidConfig, `--epochs-schedule rounds must increase (got "${text}")`);
  }
  return steps;
}

function readPem(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new FtlError(ErrorCode.InvalidConfig, `${flag}: cannot read ${path} (${(err as Error).message})`, { cause: err });
  }
}

/** Help text of `ftl-coordinator`. */
export const COORDINATOR_HELP = `ftl-coordinator [options]
Runs one federated run start to finish: serves the backbone, waits for clients, trains the rounds and
exports the global model. For the long-lived service with the operator API see "ftl-coordinator serve
--help"; for the operator commands "ftl-coordinator runs --help".
  --host H               (default 127.0.0.1)
  --port N               0 picks a free port (default 8080)
  --backbone NAME|DIR|URL  TensorFlow.js layers or graph model: a committed backbone by name (small-fmnist,
                         encoder-fmnist, encoder-spatial-fmnist, and their -0to4 near-transfer twins; see
                         npm run pretrain -- --list), its folder, or an http(s) address of the folder or of
                         its model.json (default: small-fmnist)
  --feature-layer NAME   layer (layers model) or node (graph model) whose output, flattened, is the feature
                         vector (default: from ftl-backbone.json, else "features" or the graph's output)
  --config FILE          run configuration (JSON, docs/run-config.md); flags below override it
  --run-id ID            (default run-<time>)
  --rounds N             (default 5)
  --min-clients N        ready clients to wait for (default 2)
  --wait-timeout S       seconds to wait for them (default 120)
  --fraction-fit X       share of ready clients trained per round, (0, 1] (default 1)
  --min-fit-clients N    accepted updates needed to aggregate (default 1)
  --round-deadline S     seconds training, and then evaluation, each wait for answers (default 60)
  --epochs N             local epochs per round (default 5)
  --batch-size N         (default 32)
  --lr X                 client learning rate (default 0.001)
  --lr-decay X           learning rate × X each round, (0, 1] (default 1)
  --epochs-schedule S    from round r on, e local epochs: "r:e,r:e", e.g. 1:5,4:2 (default: --epochs throughout)
  --quorum-retries N     retries of a round below --min-fit-clients before the run fails (default 2)
  --hidden N[,N]         hidden layer sizes of the head, "" for linear (default 128)
  --l2 X                 L2 penalty on the head's kernels (default 0)
  --dropout X            dropout after hidden layers, [0, 1) (default 0)
  --patience N           early stopping: stop after N rounds without a better federated
                         validation loss and export the best head (default 0 = off)
  --patience-metric M    loss (default: the sites' median validation loss) | accuracy (their median
                         validation accuracy)
  --classes A,B,...      the run's label set (default 0..9)
  --seed N               (default 1)
  --out DIR              export folder for the global model (default .ftl/global-model)
  --max-examples N       larger claimed sample counts are rejected (default 1000000)
  --sample-weight-cap N  aggregation weight = min(samples, N) (default 1000000)
  --strategy NAME        ${Object.keys(STRATEGY_OPTIONS).join(' | ')} (default fedavg)
  --strategy-options KV  the strategy's options as key=value,… e.g. beta=0.2 (docs/strategies.md)
  --local-layers L[,L]   head layers kept on each client, e.g. head_output (default none)
  --personalize-epochs N after the run, clients fine-tune the global head N epochs and report (default 0)
  --fine-tuning SPEC     feature-extraction (default) | partial | gradual | scratch, then key=value options:
                         e.g. partial,layers=1,backboneLrFactor=0.1 or gradual,layers=2,everyRounds=5
  --head-init H          random (default) | class-means: before round 1 the head is set to the nearest-
                         class-mean classifier from the sites' per-class feature sums | discriminant:
                         to the pooled shrinkage linear discriminant, from the same sums and each
                         site's within-class scatter (both need --hidden "")
  --augment KV           seeded augmentation, e.g. copies=2,shift=0.1,rotation=10,flip=false (default off)
  --normalization N      federated input normalisation: none (default) | standard | min-max,
                         optionally :feature for one statistic per value (tabular data), e.g. standard:feature
  --db FILE              SQLite state; restarting with the same --db and --run-id resumes the run
                         after its last completed round (default .ftl/coordinator.db); one coordinator
                         at a time per database
  --require-auth         refuse clients without a valid token (issue them with: clients add NAME); without
                         it the coordinator accepts any client, so it listens only on a loopback --host
  --insecure-open        accept clients without tokens on a non-loopback --host too (anyone who reaches
                         the port may join as any site); not for real sites
  --tls-cert FILE        serve HTTPS/WSS with this PEM certificate …
  --tls-key FILE         … and this PEM key

ftl-coordinator clients add|revoke|list [NAME] --db FILE [--save FILE]
  works on the database directly, also while a server runs on it (without --db: over the API of a
  running serve); add prints the new client's token once, or writes it to --save FILE (mode 0600);
  only its hash is stored.`;

/** What `ftl-coordinator serve` needs: the server settings, run defaults, and where its state lives. */
export interface ServeConfig {
  /** Server settings and the defaults of runs created through the API. */
  base: CoordinatorConfig;
  dbPath: string;
  /** The operator token file: read when it exists, else created with a new token (mode 0600). */
  operatorTokenFile: string;
  /** Finished runs export their model to `<exportRoot>/<runId>`. */
  exportRoot: string;
  maxMessageBytes?: number;
}

/** Help text of `ftl-coordinator serve`. */
export const SERVE_HELP = `ftl-coordinator serve [options]
Runs the coordinator as a service: serves the backbone and the socket.io channel, keeps clients, runs
and checkpoints in SQLite, and hosts runs one after another as the operator creates and starts them
over the REST API (docs/api.md; the "clients" and "runs" commands use it). A run a killed server left
running resumes by itself on the next start.
  --host H                  (default 127.0.0.1)
  --port N                  (default 8080)
  --db FILE                 SQLite state (default .ftl/coordinator.db); one server at a time per database
  --backbone NAME|DIR|URL   the backbone: a committed one by name, a folder or an http(s) address
                            (default: small-fmnist, the committed Fashion-MNIST backbone)
  --feature-layer NAME      default cut point of runs (default: from the backbone's description)
  --config FILE             defaults for runs created over the API (JSON, docs/run-config.md)
  --operator-token-file F   operator API token; created with a new random token if missing
                            (default: operator-token beside --db)
  --exports DIR             where finished runs export their model, per run id (default: runs/ beside --db)
  --open                    accept clients without a token (default: only registered clients); only on a
                            loopback --host unless --insecure-open is given too
  --insecure-open           with --open on a non-loopback --host: anyone who reaches the port may join
                            as any site; not for real sites
  --max-message-mb X        largest client message (default: sized from the default run's head)
  --tls-cert FILE           serve HTTPS/WSS with this PEM certificate …
  --tls-key FILE            … and this PEM key`;

/** Parses and validates `ftl-coordinator serve`'s command line. */
export function parseServeArgs(argv: string[]): ServeConfig | 'help' {
  const str = { type: 'string' } as const;
  const values = parseFlags(argv, {
    host: str, port: str, db: str, backbone: str, 'feature-layer': str, config: str, 'operator-token-file': str, exports: str,
    open: { type: 'boolean' }, 'insecure-open': { type: 'boolean' }, 'max-message-mb': str, 'tls-cert': str, 'tls-key': str, help: { type: 'boolean' },
  });
  if (values['help']) return 'help';
  const file = stringFlag(values, 'config');
  const d = file === undefined ? defaultCoordinatorConfig() : applyRunConfig(defaultCoordinatorConfig(), readRunConfigFile(file));
  const dbPath = stringFlag(values, 'db', '.ftl/coordinator.db');
  const beside = (name: string) => join(dirname(dbPath), name);
  const base: CoordinatorConfig = {
    ...d,
    host: stringFlag(values, 'host', d.host),
    port: numberFlag(values, 'port', { default: d.port, min: 0, max: 65535, integer: true }),
    backboneDir: stringFlag(values, 'backbone', d.backboneDir),
    requireAuth: values['open'] !== true,
    insecureOpen: values['insecure-open'] === true,
    dbPath,
  };
  delete base.exportDir;
  const featureLayer = stringFlag(values, 'feature-layer');
  if (featureLayer !== undefined) base.featureLayer = featureLayer;
  const tls = readTls(stringFlag(values, 'tls-cert'), stringFlag(values, 'tls-key'));
  if (tls) base.tls = tls;
  const mb = values['max-message-mb'] === undefined ? undefined : numberFlag(values, 'max-message-mb', { default: 0, min: 0.01 });
  return {
    base, dbPath,
    operatorTokenFile: stringFlag(values, 'operator-token-file', beside('operator-token')),
    exportRoot: stringFlag(values, 'exports', beside('runs')),
    ...(mb !== undefined ? { maxMessageBytes: Math.round(mb * 1024 * 1024) } : {}),
  };
}

function readTls(cert: string | undefined, key: string | undefined): { cert: Buffer; key: Buffer } | undefined {
  if ((cert === undefined) !== (key === undefined)) {
    throw new FtlError(ErrorCode.InvalidConfig, '--tls-cert and --tls-key go together: give both PEM files, or neither for plain HTTP');
  }
  if (cert === undefined || key === undefined) return undefined;
  const files = { certFile: cert, cert: readPem(cert, '--tls-cert'), keyFile: key, key: readPem(key, '--tls-key') };
  checkTlsFiles(files);
  return { cert: files.cert, key: files.key };
}

/** `a=1,b=x,c=true` → {a: 1, b: 'x', c: true}; a bare first item (no "=") comes back as `head`. */
function keyValues(text: string, flag: string): { head?: string; values: Record<string, string | number | boolean> } {
  const values: Record<string, string | number | boolean> = {};
  let head: string | undefined;
  text.split(',').map((p) => p.trim()).filter(Boolean).forEach((pair, i) => {
    const eq = pair.indexOf('=');
    if (eq < 0) {
      if (i > 0) throw new FtlError(ErrorCode.InvalidConfig, `${flag} takes key=value pairs after its first item (got "${pair}")`);
      head = pair;
      return;
    }
    const [k, v] = [pair.slice(0, eq).trim(), pair.slice(eq + 1).trim()];
    values[k] = v === 'true' ? true : v === 'false' ? false : v !== '' && Number.isFinite(Number(v)) ? Number(v) : v;
  });
  return { ...(head !== undefined ? { head } : {}), values };
}

/** --fine-tuning, --augment and --normalization, validated by the run config schema (same messages as a config file). */
function transferFlags(
  flags: RawFlags, d: CoordinatorConfig,
): Pick<CoordinatorConfig, 'fineTuning' | 'augment' | 'normalization' | 'normalizationScope'> {
  const doc: Record<string, unknown> = { fineTuning: d.fineTuning, augment: d.augment, normalization: d.normalization, normalizationScope: d.normalizationScope };
  const ft = stringFlag(flags, 'fine-tuning');
  if (ft !== undefined) {
    const { head, values } = keyValues(ft, '--fine-tuning');
    doc['fineTuning'] = { ...d.fineTuning, ...(head !== undefined ? { mode: head } : {}), ...values };
  }
  const augment = stringFlag(flags, 'augment');
  if (augment !== undefined) doc['augment'] = { ...d.augment, ...keyValues(augment, '--augment').values };
  const norm = stringFlag(flags, 'normalization');
  if (norm !== undefined) {
    const [kind, scope] = norm.split(':');
    doc['normalization'] = kind;
    if (scope !== undefined) doc['normalizationScope'] = scope;
  }
  const run = parseRunConfig(doc, 'command line');
  return { fineTuning: run.fineTuning, augment: run.augment, normalization: run.normalization, normalizationScope: run.normalizationScope };
}

/**
 * Parses and validates the coordinator's command line.
 *
 * @throws FtlError(INVALID_CONFIG) with a message like `--rounds must be an integer ≥ 1 (got "-1")`.
 */
export function parseCoordinatorArgs(argv: string[]): CoordinatorConfig | 'help' {
  const str = { type: 'string' } as const;
  const values = parseFlags(argv, {
      host: str, port: str, backbone: str, 'feature-layer': str, 'run-id': str, rounds: str, 'min-clients': str,
      'wait-timeout': str, 'fraction-fit': str, 'min-fit-clients': str, 'round-deadline': str, epochs: str,
      'batch-size': str, lr: str, 'lr-decay': str, 'epochs-schedule': str, 'quorum-retries': str, hidden: str, l2: str, dropout: str, patience: str, 'patience-metric': str, classes: str, seed: str, out: str, 'max-examples': str,
      'sample-weight-cap': str, strategy: str, 'strategy-options': str, 'local-layers': str, 'personalize-epochs': str, db: str,
      'fine-tuning': str, augment: str, normalization: str, 'head-init': str,
      'require-auth': { type: 'boolean' }, 'insecure-open': { type: 'boolean' }, 'tls-cert': str, 'tls-key': str, config: str,
      help: { type: 'boolean' },
    });
  if (values['help']) return 'help';
  const file = stringFlag(values, 'config');
  const d = file === undefined ? defaultCoordinatorConfig() : applyRunConfig(defaultCoordinatorConfig(), readRunConfigFile(file));
  const hiddenText = stringFlag(values, 'hidden');
  const hidden = hiddenText === undefined ? d.hidden : hiddenText === '' ? [] : hiddenText.split(',').map(Number);
  if (hidden.some((h) => !Number.isInteger(h) || h < 1)) {
    throw new FtlError(ErrorCode.InvalidConfig, `--hidden must be comma-separated positive integers (got "${hiddenText}")`);
  }
  const classes = stringFlag(values, 'classes')?.split(',') ?? d.classes;
  if (classes.length < 2 || new Set(classes).size !== classes.length || classes.some((c) => c === '')) {
    throw new FtlError(ErrorCode.InvalidConfig, `--classes must list at least two distinct, non-empty labels (got "${classes.join(',')}")`);
  }
  const transfer = transferFlags(values, d);
  const config: CoordinatorConfig = {
    host: stringFlag(values, 'host', d.host),
    port: numberFlag(values, 'port', { default: d.port, min: 0, max: 65535, integer: true }),
    backboneDir: stringFlag(values, 'backbone', d.backboneDir),
    runId: stringFlag(values, 'run-id', d.runId),
    rounds: numberFlag(values, 'rounds', { default: d.rounds, min: 1, integer: true }),
    minClients: numberFlag(values, 'min-clients', { default: d.minClients, min: 1, integer: true }),
    waitTimeoutMs: 1000 * numberFlag(values, 'wait-timeout', { default: d.waitTimeoutMs / 1000, min: 0 }),
    fractionFit: numberFlag(values, 'fraction-fit', { default: d.fractionFit, min: Number.MIN_VALUE, max: 1 }),
    minFitClients: numberFlag(values, 'min-fit-clients', { default: d.minFitClients, min: 1, integer: true }),
    roundDeadlineMs: 1000 * numberFlag(values, 'round-deadline', { default: d.roundDeadlineMs / 1000, min: 0.1 }),
    fit: {
      epochs: numberFlag(values, 'epochs', { default: d.fit.epochs, min: 1, integer: true }),
      batchSize: numberFlag(values, 'batch-size', { default: d.fit.batchSize, min: 1, integer: true }),
      learningRate: numberFlag(values, 'lr', { default: d.fit.learningRate, min: Number.MIN_VALUE }),
    },
    schedule: {
      lrDecay: numberFlag(values, 'lr-decay', { default: d.schedule.lrDecay, min: Number.MIN_VALUE, max: 1 }),
      epochs: values['epochs-schedule'] === undefined ? d.schedule.epochs : parseEpochsSchedule(stringFlag(values, 'epochs-schedule', '')),
    },
    quorumRetries: numberFlag(values, 'quorum-retries', { default: d.quorumRetries, min: 0, integer: true }),
    seed: numberFlag(values, 'seed', { default: d.seed, min: 0, integer: true }),
    hidden,
    l2: numberFlag(values, 'l2', { default: d.l2, min: 0 }),
    dropout: numberFlag(values, 'dropout', { default: d.dropout, min: 0, max: 0.99 }),
    patience: numberFlag(values, 'patience', { default: d.patience, min: 0, integer: true }),
    patienceMetric: parseRunConfig({ patienceMetric: stringFlag(values, 'patience-metric', d.patienceMetric ?? 'loss') }, 'command line').patienceMetric,
    classes,
    exportDir: stringFlag(values, 'out', d.exportDir!),
    maxExamplesPerClient: numberFlag(values, 'max-examples', { default: d.maxExamplesPerClient, min: 1, integer: true }),
    sampleWeightCap: numberFlag(values, 'sample-weight-cap', { default: d.sampleWeightCap, min: 1 }),
    strategy: values['strategy'] === undefined && values['strategy-options'] === undefined
      ? d.strategy
      : parseStrategy(stringFlag(values, 'strategy', d.strategy.name), stringFlag(values, 'strategy-options', '')),
    localLayers: values['local-layers'] === undefined ? d.localLayers : stringFlag(values, 'local-layers', '').split(',').filter(Boolean),
    personalizeEpochs: numberFlag(values, 'personalize-epochs', { default: d.personalizeEpochs, min: 0, integer: true }),
    ...transfer,
    // Checked with hidden and the fine-tuning mode by the run config schema: the same message as a config file.
    headInit: parseRunConfig({
      headInit: stringFlag(values, 'head-init', d.headInit ?? 'random'), hidden, fineTuning: transfer.fineTuning,
    }, 'command line').headInit,
    dbPath: stringFlag(values, 'db', '.ftl/coordinator.db'),
    requireAuth: values['require-auth'] === true,
    insecureOpen: values['insecure-open'] === true,
  };
  const tls = readTls(stringFlag(values, 'tls-cert'), stringFlag(values, 'tls-key'));
  if (tls) config.tls = tls;
  const featureLayer = stringFlag(values, 'feature-layer', d.featureLayer ?? '') || undefined;
  if (featureLayer !== undefined) config.featureLayer = featureLayer;
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(config.runId)) {
    throw new FtlError(ErrorCode.InvalidConfig, `--run-id must be 1–64 letters, digits, ".", "_" or "-" (got "${config.runId}")`);
  }
  return config;
}
