import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  parseRunConfig,
  readRunConfigFile,
  runConfigFromFlags,
  runConfigHelp,
  RunConfigSchema,
  runConfigFlags,
  type RunConfig,
} from './run-config.js';
import { checkTlsFiles } from './startup-errors.js';
import { flagOptions, ErrorCode, FtlError, numberFlag, parseFlags, stringFlag, type RawFlags } from '@ftl/shared';

/** The backbone a coordinator serves unless told otherwise, by name (docs/results.md, "Backbones"). */
export const DEFAULT_BACKBONE = 'encoder-spatial-fmnist';

/**
 * The default backbone's folder: the encoder pretrained on all of Fashion-MNIST, whose 256 features take a
 * linear head of a few thousand values (2,570 for ten classes), about 40× fewer than the network under it.
 */
export const DEFAULT_BACKBONE_DIR = fileURLToPath(new URL(`../backbones/${DEFAULT_BACKBONE}`, import.meta.url));

/**
 * The first committed backbone's folder (`small-fmnist` by name): two convolutions, 5,056 values and 800
 * features, kept for comparison and as a quick backbone for tests.
 */
export const SMALL_BACKBONE_DIR = fileURLToPath(new URL('../backbone', import.meta.url));

/** Where and how a coordinator serves: everything that is not the run. */
export interface ServerSettings {
  host: string;
  /** 0 picks a free port. */
  port: number;
  backboneDir: string;
  /** Where the global model (backbone + head) is written at the end; none when undefined. */
  exportDir?: string;
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
  /**
   * Also serve `/metrics`, `/healthz` and `/readyz` without a token on this plain HTTP port (0 picks a
   * free one); without it `/metrics` is only on the main port, behind the operator token.
   */
  metricsPort?: number;
  /** Where the metrics port listens (default 127.0.0.1). */
  metricsHost?: string;
}

/** The run config's two durations, which the coordinator keeps in milliseconds. */
const DURATIONS = { waitTimeoutSeconds: 'waitTimeoutMs', roundDeadlineSeconds: 'roundDeadlineMs' } as const;

/**
 * The run as a coordinator holds it: the run config ({@link RunConfigSchema}, docs/run-config.md — every
 * field is defined and documented there, once), with a run id it always has and its durations in
 * milliseconds (`waitTimeoutMs`: how long to wait for `minClients`; `roundDeadlineMs`: how long training,
 * and then evaluation, wait for answers).
 */
export type RunSettings = Omit<RunConfig, keyof typeof DURATIONS | 'runId'> & { runId: string; waitTimeoutMs: number; roundDeadlineMs: number };

/** Everything a coordinator run needs; one typed source, validated at start-up. */
export type CoordinatorConfig = ServerSettings & RunSettings;

/** A coordinator configuration running `run`: the server settings of `base`, every run field from `run`. */
export function applyRunConfig(base: ServerSettings & Partial<RunSettings>, run: RunConfig): CoordinatorConfig {
  const { waitTimeoutSeconds, roundDeadlineSeconds, runId, ...fields } = structuredClone(run);
  const config: CoordinatorConfig = {
    ...base,
    ...fields,
    runId: runId ?? base.runId ?? `run-${Date.now().toString(36)}`,
    waitTimeoutMs: waitTimeoutSeconds * 1000,
    roundDeadlineMs: roundDeadlineSeconds * 1000,
  };
  // A field the run leaves out (featureLayer, inputRange) is not inherited from the base's run.
  for (const key of ['featureLayer', 'inputRange'] as const) if (run[key] === undefined) delete config[key];
  return config;
}

/**
 * The run configuration inside a coordinator configuration (the reverse of {@link applyRunConfig}):
 * what the store keeps for a run, so a restart, a resume or the API sees the run as it was defined.
 */
export function toRunConfig(c: CoordinatorConfig): RunConfig {
  const run: Record<string, unknown> = { runId: c.runId, waitTimeoutSeconds: c.waitTimeoutMs / 1000, roundDeadlineSeconds: c.roundDeadlineMs / 1000 };
  for (const key of Object.keys(RunConfigSchema.shape)) {
    if (key in run) continue;
    const value = (c as unknown as Record<string, unknown>)[key];
    if (value !== undefined) run[key] = structuredClone(value);
  }
  return run as RunConfig;
}

/** The defaults of a one-run coordinator: the run config schema's defaults plus the server's. */
export function defaultCoordinatorConfig(): CoordinatorConfig {
  const server = {
    host: '127.0.0.1',
    port: 8080,
    backboneDir: DEFAULT_BACKBONE_DIR,
    runId: `run-${Date.now().toString(36)}`,
    exportDir: '.ftl/global-model',
    requireAuth: false,
  };
  return applyRunConfig(server as CoordinatorConfig, parseRunConfig({}));
}

function readPem(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new FtlError(ErrorCode.InvalidConfig, `${flag}: cannot read ${path} (${(err as Error).message})`, { cause: err });
  }
}

/** Help text of `ftl-coordinator`: the server's flags, then one per run config field (from its schema). */
export const COORDINATOR_HELP = `ftl-coordinator [options]
ftl-coordinator --version | --help (-h)
Runs one federated run start to finish: serves the backbone, waits for clients, trains the rounds and
exports the global model. For the long-lived service with the operator API see "ftl-coordinator serve
--help"; for the operator commands "ftl-coordinator runs --help".
  --host H               (default 127.0.0.1)
  --port N               0 picks a free port (default 8080)
  --backbone NAME|DIR|URL  TensorFlow.js layers or graph model: a committed backbone by name (small-fmnist,
                         encoder-fmnist, encoder-spatial-fmnist, and their -0to4 near-transfer twins; see
                         npm run pretrain -- --list), its folder, or an http(s) address of the folder or of
                         its model.json (default: encoder-spatial-fmnist)
  --out DIR              export folder for the global model (default .ftl/global-model)
  --db FILE              SQLite state; restarting with the same --db and --run-id resumes the run
                         after its last completed round (default .ftl/coordinator.db); one coordinator
                         at a time per database
  --require-auth         refuse clients without a valid token (issue them with: clients add NAME); without
                         it the coordinator accepts any client, so it listens only on a loopback --host
  --insecure-open        accept clients without tokens on a non-loopback --host too (anyone who reaches
                         the port may join as any site); not for real sites
  --tls-cert FILE        serve HTTPS/WSS with this PEM certificate …
  --tls-key FILE         … and this PEM key
  --metrics-port N       also serve /metrics (Prometheus), /healthz and /readyz on this plain HTTP port,
                         without a token (0 picks a free port; /healthz and /readyz are on --port too)
  --metrics-host H       where the metrics port listens (default 127.0.0.1)
  --config FILE          run configuration (JSON, docs/run-config.md); the run flags below override it
The run (each flag sets one field of the run configuration, with the same bounds and messages):
${runConfigHelp()}

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
                            (default: encoder-spatial-fmnist, pretrained on Fashion-MNIST)
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
  --tls-key FILE            … and this PEM key
  --metrics-port N          also serve /metrics (Prometheus), /healthz and /readyz on this plain HTTP
                            port without a token (0 picks a free port); without it /metrics is on
                            --port behind the operator token (/healthz and /readyz need none)
  --metrics-host H          where the metrics port listens (default 127.0.0.1)`;

/** Parses and validates `ftl-coordinator serve`'s command line. */
export function parseServeArgs(argv: string[]): ServeConfig | 'help' {
  const values = parseFlags(
    argv,
    flagOptions(
      [
        'host',
        'port',
        'db',
        'backbone',
        'feature-layer',
        'config',
        'operator-token-file',
        'exports',
        'max-message-mb',
        'tls-cert',
        'tls-key',
        'metrics-port',
        'metrics-host',
      ],
      ['open', 'insecure-open', 'help'],
    ),
  );
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
    ...metricsSettings(values),
  };
  delete base.exportDir;
  const featureLayer = stringFlag(values, 'feature-layer');
  if (featureLayer !== undefined) base.featureLayer = featureLayer;
  const tls = readTls(stringFlag(values, 'tls-cert'), stringFlag(values, 'tls-key'));
  if (tls) base.tls = tls;
  const mb = values['max-message-mb'] === undefined ? undefined : numberFlag(values, 'max-message-mb', { default: 0, min: 0.01 });
  return {
    base,
    dbPath,
    operatorTokenFile: stringFlag(values, 'operator-token-file', beside('operator-token')),
    exportRoot: stringFlag(values, 'exports', beside('runs')),
    ...(mb !== undefined ? { maxMessageBytes: Math.round(mb * 1024 * 1024) } : {}),
  };
}

/** `--metrics-port` and `--metrics-host`, checked as `--port` and `--host` are; `--metrics-host` alone is refused. */
function metricsSettings(values: RawFlags): Pick<ServerSettings, 'metricsPort' | 'metricsHost'> {
  const host = stringFlag(values, 'metrics-host');
  if (values['metrics-port'] === undefined) {
    if (host !== undefined) throw new FtlError(ErrorCode.InvalidConfig, '--metrics-host needs --metrics-port: give the port the metrics listen on');
    return {};
  }
  const port = numberFlag(values, 'metrics-port', { default: 0, min: 0, max: 65535, integer: true });
  return { metricsPort: port, ...(host !== undefined ? { metricsHost: host } : {}) };
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

/**
 * Parses and validates the coordinator's command line.
 *
 * @throws FtlError(INVALID_CONFIG) with a message like `--rounds must be an integer ≥ 1 (got "-1")`.
 */
export function parseCoordinatorArgs(argv: string[]): CoordinatorConfig | 'help' {
  const values = parseFlags(argv, {
    ...flagOptions(
      ['host', 'port', 'backbone', 'out', 'db', 'config', 'tls-cert', 'tls-key', 'metrics-port', 'metrics-host'],
      ['require-auth', 'insecure-open', 'help'],
    ),
    ...Object.fromEntries(runConfigFlags().map((f) => [f.name, { type: 'string' as const }])),
  });
  if (values['help']) return 'help';
  const file = stringFlag(values, 'config');
  const d = defaultCoordinatorConfig();
  const fromFile = file === undefined ? undefined : readRunConfigFile(file);
  const run = runConfigFromFlags(values, fromFile ? { ...fromFile, runId: fromFile.runId ?? d.runId } : toRunConfig(d));
  const config = applyRunConfig(
    {
      host: stringFlag(values, 'host', d.host),
      port: numberFlag(values, 'port', { default: d.port, min: 0, max: 65535, integer: true }),
      backboneDir: stringFlag(values, 'backbone', d.backboneDir),
      exportDir: stringFlag(values, 'out', d.exportDir!),
      dbPath: stringFlag(values, 'db', '.ftl/coordinator.db'),
      requireAuth: values['require-auth'] === true,
      insecureOpen: values['insecure-open'] === true,
      ...metricsSettings(values),
    },
    run,
  );
  const tls = readTls(stringFlag(values, 'tls-cert'), stringFlag(values, 'tls-key'));
  if (tls) config.tls = tls;
  return config;
}
