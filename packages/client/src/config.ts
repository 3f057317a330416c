import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { auditLogPath } from './audit-log.js';
import {
  checkSiteName,
  flagOptions,
  BUILTIN_DATASETS,
  ErrorCode,
  FtlError,
  formatImageShape,
  DEFAULT_IMAGE_SHAPE,
  IMAGE_EXTENSIONS,
  numberFlag,
  parseFlags,
  parseImageShape,
  parsePartition,
  stringFlag,
  type BuiltinDatasetName,
  inferCsvKind,
  splitCsvFields,
  type DataSource,
  type ImageShape,
  type RawFlags,
} from '@ftl/shared';

/** Everything a client node needs, validated at start-up. */
export interface ClientConfig {
  serverUrl: string;
  name: string;
  /** Where the local data comes from: a built-in dataset's share, an image folder or a CSV file. */
  data: DataSource;
  /** The shape every image is brought to: the backbone's input (default 28×28×1). */
  imageShape: ImageShape;
  cacheDir: string;
  /** The most bytes the feature cache may hold (`--feature-cache-max-mb`); none: no limit. */
  featureCacheMaxBytes?: number;
  pinnedSha256?: string;
  token?: string;
  ca?: Buffer;
  /** Stay connected after a run ends and join the next one (a long-lived site under `ftl-coordinator serve`). */
  stay: boolean;
  /** Abandon the backbone download after this long without a byte. */
  backboneIdleTimeoutMs: number;
  /** Refuse a backbone whose files have more bytes than this together. */
  backboneMaxBytes: number;
  /** This site's ε budget for its training data (`--dp-budget`); none: it trains every DP round, still accounting. */
  dpBudget?: number;
  /** This site's audit log (`--audit-log FILE`), or false (`--no-audit-log`); absent: `<cacheDir>/audit/<name>.jsonl`. */
  auditLog?: string | false;
  /** False with `--no-class-sums`: the site declines a run's request for its per-class feature statistics. */
  classSums: boolean;
}

/** Help text of `ftl-client`. */
export const CLIENT_HELP = `ftl-client [options]
ftl-client audit [--file PATH | --cache-dir DIR --name SITE]   (see ftl-client audit --help)
ftl-client --version | --help (-h)
Joins a federated run: downloads and verifies the backbone, extracts features from local data once,
trains the head each round and sends back only its weights.
  --server URL              coordinator (default http://127.0.0.1:8080)
  --name NAME               this client's name (default client-<index>)
Local data, one of (default --dataset mnist):
  --data-dir DIR            an image folder: one sub-folder per class, named by its label, holding
                            ${IMAGE_EXTENSIONS.join(' ')} files (at any depth below it); dot-files are skipped
  --csv FILE                a CSV file: a header line, a label column, and one pixel value per other
                            column in row-major order (e.g. Kaggle MNIST: label,pixel0,...,pixel783).
                            Values that are all integers with some above 1 are 8-bit and divided by 255;
                            otherwise they must already be in [0, 1]. Rows of side² (grey) or side²×3 (RGB)
                            values are reshaped to that square image, then resized like folder images
  --label-column NAME       the CSV's label column (default label)
  --table FILE              a CSV table of records (numbers, categories, booleans, dates): a header line
                            naming the columns, one record per line. The run's table.columns say each
                            column's type and role (feature, label, ignore); a bad cell stops the site
                            with its line and column. Same as --csv FILE --kind table
  --kind table|image        what a --csv file holds; without it, image when every column but the label
                            is numbered (pixel0, 1, p2…) and there are side² or side²×3 of them, else table
  --dataset NAME            built-in dataset: ${BUILTIN_DATASETS.join(', ')}, shared out among --clients:
    --partition P           iid | dirichlet:<alpha> | shards:<k> (default iid)
    --clients N             how many clients share the dataset (default 1)
    --index I               this client's share, 0..N-1 (default 0)
  Label names (folder names, CSV labels, a built-in's class names) must be in the run's label set; the
  client maps them to the run's order by name and stops with an error naming any other label.
  --image-shape HxWxC       bring every image to this size and channels (1 grey, 3 RGB), bilinear;
                            the backbone's input (default ${formatImageShape(DEFAULT_IMAGE_SHAPE)})
  --seed S                  seed of the partition and the train/validation split; with --dataset the
                            same on every client of a run (default 1)
  --val-fraction X          local validation share (default 0.15)
  --limit N                 use at most N samples, for quick trials
  --cache-dir DIR           backbone and feature cache (default .ftl/cache)
  --feature-cache-max-mb N  keep at most N MiB of extracted features in the cache, removing the least
                            recently used first (default: no limit)
  --backbone-sha256 HEX     refuse any backbone with another digest
  --backbone-timeout S      give up the backbone download after S seconds without data (default 120)
  --backbone-max-mb N       refuse a backbone larger than N MiB in all (default 512)
  --token-file FILE         the token the operator issued for --name (or set FTL_TOKEN)
  --ca-file FILE            CA certificate (PEM) to trust for an https coordinator
  --stay                    stay connected after a run ends and take part in the next one
                            (a long-lived site of "ftl-coordinator serve"); stop with Ctrl-C
  --no-class-sums           decline a run's request for this site's per-class feature sums and
                            scatter (sent once before round 1 when the head starts as the pooled
                            discriminant or class means); the head starts from the other sites'
                            statistics, and this site trains the rounds as usual
  --dp-budget EPS           this site's own ε budget for its training data, at the δ each run with
                            record-level DP names: a round that would take the ε recorded in the
                            site's ledger (in --cache-dir, per dataset, across runs) past it is refused,
                            and so is any work that would release the data without DP. Without it the
                            site trains every DP round, still accounting and reporting its ε
  --audit-log FILE          append a line for every message sent to the coordinator here, each line
                            chained to the one before by its SHA-256 (default
                            <cache-dir>/audit/<name>.jsonl); "ftl-client audit" prints and checks it
  --no-audit-log            keep no audit log`;

/** Help text of `ftl-client audit`. */
export const AUDIT_HELP = `ftl-client audit [--file PATH | --cache-dir DIR --name SITE]
Prints a site's audit log, one row per message it sent the coordinator (time, run, round, kind, payload
bytes, SHA-256 prefix, ε), and checks its chain of hashes: "chain intact: N lines" and the hash of the
last line (note it elsewhere: it shows later that no line was cut off the end), or the first bad line
and why, with exit code 1.
  --file PATH               the log to read
  --cache-dir DIR           the client's --cache-dir (default .ftl/cache), with
  --name NAME               the client's --name: reads <cache-dir>/audit/<name>.jsonl`;

/**
 * Parses `ftl-client audit`'s flags: the log file to read.
 *
 * @throws FtlError(INVALID_CONFIG) when neither --file nor --name is given, or both.
 */
export function parseAuditArgs(argv: string[]): { file: string } | 'help' {
  const values = parseFlags(argv, flagOptions(['file', 'cache-dir', 'name'], ['help']));
  if (values['help']) return 'help';
  const file = stringFlag(values, 'file');
  const name = stringFlag(values, 'name');
  if (file !== undefined && (name !== undefined || values['cache-dir'] !== undefined)) {
    throw new FtlError(ErrorCode.InvalidConfig, 'give --file, or --cache-dir and --name, not both');
  }
  if (file !== undefined) return { file };
  if (name === undefined) {
    throw new FtlError(ErrorCode.InvalidConfig, "give --file PATH, or --name SITE (with the client's --cache-dir unless it is .ftl/cache)");
  }
  return { file: auditLogPath(stringFlag(values, 'cache-dir', '.ftl/cache'), checkSiteName(name, '--name')) };
}

/**
 * Parses and validates the client's command line.
 *
 * @throws FtlError(INVALID_CONFIG) naming the flag and the bad value.
 */
export function parseClientArgs(argv: string[]): ClientConfig | 'help' {
  const values = parseFlags(
    argv,
    flagOptions(
      [
        'server',
        'name',
        'dataset',
        'data-dir',
        'csv',
        'table',
        'kind',
        'label-column',
        'image-shape',
        'partition',
        'clients',
        'index',
        'seed',
        'val-fraction',
        'limit',
        'cache-dir',
        'feature-cache-max-mb',
        'backbone-sha256',
        'backbone-timeout',
        'backbone-max-mb',
        'token-file',
        'ca-file',
        'dp-budget',
        'audit-log',
      ],
      ['stay', 'no-audit-log', 'no-class-sums', 'help'],
    ),
  );
  if (values['help']) return 'help';
  const clients = numberFlag(values, 'clients', { default: 1, min: 1, integer: true });
  const index = numberFlag(values, 'index', { default: 0, min: 0, max: clients - 1, integer: true });
  const serverUrl = stringFlag(values, 'server', 'http://127.0.0.1:8080');
  if (!/^https?:\/\/[^/]+/.test(serverUrl)) {
    throw new FtlError(ErrorCode.InvalidConfig, `--server must be an http(s) URL like http://127.0.0.1:8080 (got "${serverUrl}")`);
  }
  const pinned = stringFlag(values, 'backbone-sha256');
  if (pinned !== undefined && !/^[0-9a-f]{64}$/.test(pinned)) {
    throw new FtlError(ErrorCode.InvalidConfig, `--backbone-sha256 must be 64 lowercase hex digits (got "${pinned}")`);
  }
  const dpBudget = values['dp-budget'] === undefined ? undefined : numberFlag(values, 'dp-budget', { default: 0, min: Number.MIN_VALUE });
  const featureCacheMaxMb =
    values['feature-cache-max-mb'] === undefined
      ? undefined
      : numberFlag(values, 'feature-cache-max-mb', { default: 0, min: 1, max: 1024 * 1024 * 1024 });
  const auditLog = stringFlag(values, 'audit-log');
  if (auditLog !== undefined && values['no-audit-log'])
    throw new FtlError(ErrorCode.InvalidConfig, 'give --audit-log FILE or --no-audit-log, not both');
  const limit = values['limit'] === undefined ? undefined : numberFlag(values, 'limit', { default: 0, min: 10, integer: true });
  const split = {
    seed: numberFlag(values, 'seed', { default: 1, min: 0, integer: true }),
    valFraction: numberFlag(values, 'val-fraction', { default: 0.15, min: 0.01, max: 0.9 }),
    ...(limit !== undefined ? { limit } : {}),
  };
  return {
    serverUrl,
    name: stringFlag(values, 'name', `client-${index}`),
    data: dataSource(values, split, clients, index),
    imageShape: parseImageShape(stringFlag(values, 'image-shape', formatImageShape(DEFAULT_IMAGE_SHAPE))),
    cacheDir: stringFlag(values, 'cache-dir', '.ftl/cache'),
    ...(featureCacheMaxMb !== undefined ? { featureCacheMaxBytes: Math.round(1024 * 1024 * featureCacheMaxMb) } : {}),
    stay: values['stay'] === true,
    classSums: values['no-class-sums'] !== true,
    backboneIdleTimeoutMs: 1000 * numberFlag(values, 'backbone-timeout', { default: 120, min: 1, max: 86_400 }),
    backboneMaxBytes: Math.round(1024 * 1024 * numberFlag(values, 'backbone-max-mb', { default: 512, min: 1, max: 1024 * 1024 })),
    ...(pinned !== undefined ? { pinnedSha256: pinned } : {}),
    ...(dpBudget !== undefined ? { dpBudget } : {}),
    ...(values['no-audit-log'] ? { auditLog: false as const } : auditLog !== undefined ? { auditLog } : {}),
    ...readSecrets(stringFlag(values, 'token-file'), stringFlag(values, 'ca-file')),
  };
}

/**
 * What a `--csv` file holds: `--kind` when given, else inferred from its header ({@link inferCsvKind}); a
 * file that cannot be read counts as images, and the image loader then says why it cannot be read.
 */
function csvKind(values: RawFlags, file: string, labelColumn: string | undefined): 'table' | 'image' {
  const kind = stringFlag(values, 'kind');
  if (kind !== undefined) {
    if (kind !== 'table' && kind !== 'image') throw new FtlError(ErrorCode.InvalidConfig, `--kind must be table or image (got "${kind}")`);
    return kind;
  }
  let header: string[];
  try {
    const text = readFileSync(file, 'utf8');
    const first = text.split(/\r?\n/).find((l) => l.trim() !== '') ?? '';
    header = splitCsvFields(first.replace(/^\uFEFF/, ''), file).map((h) => h.trim());
  } catch {
    return 'image';
  }
  return inferCsvKind(header, labelColumn);
}

// --dataset, --data-dir, --csv and --table are alternatives; the flags of one make no sense with another.
function dataSource(values: RawFlags, split: { seed: number; valFraction: number; limit?: number }, clients: number, index: number): DataSource {
  const given = (['dataset', 'data-dir', 'csv', 'table'] as const).filter((f) => values[f] !== undefined);
  if (given.length > 1) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `--dataset, --data-dir, --csv and --table are alternatives; give one (got ${given.map((f) => `--${f}`).join(' and ')})`,
    );
  }
  if (given[0] !== 'csv' && values['kind'] !== undefined) {
    throw new FtlError(ErrorCode.InvalidConfig, `--kind only applies with --csv (this client reads --${given[0] ?? 'dataset'})`);
  }
  if (
    given[0] === 'table' ||
    (given[0] === 'csv' && csvKind(values, stringFlag(values, 'csv', ''), stringFlag(values, 'label-column')) === 'table')
  ) {
    if (values['label-column'] !== undefined) {
      throw new FtlError(
        ErrorCode.InvalidConfig,
        "--label-column is for image CSV files; a table's label column is the run's (table.columns, role label)",
      );
    }
    return { kind: 'table', file: stringFlag(values, given[0], ''), ...split };
  }
  const kind = given[0] ?? 'dataset';
  const misplaced = (flags: string[], allowedWith: string) => {
    const wrong = flags.filter((f) => values[f] !== undefined);
    if (wrong.length > 0) {
      throw new FtlError(
        ErrorCode.InvalidConfig,
        `${wrong.map((f) => `--${f}`).join(', ')} only ${wrong.length === 1 ? 'applies' : 'apply'} with ${allowedWith} (this client reads --${kind})`,
      );
    }
  };
  if (kind !== 'csv') misplaced(['label-column'], '--csv');
  if (kind !== 'dataset') misplaced(['partition', 'clients', 'index'], '--dataset');
  if (kind === 'data-dir') return { kind: 'image-folder', dir: stringFlag(values, 'data-dir', ''), ...split };
  if (kind === 'csv') {
    const labelColumn = stringFlag(values, 'label-column');
    if (labelColumn !== undefined && labelColumn.trim() === '')
      throw new FtlError(ErrorCode.InvalidConfig, '--label-column needs a column name (got "")');
    return { kind: 'csv', file: stringFlag(values, 'csv', ''), ...(labelColumn !== undefined ? { labelColumn: labelColumn.trim() } : {}), ...split };
  }
  const dataset = stringFlag(values, 'dataset', 'mnist');
  if (!(BUILTIN_DATASETS as readonly string[]).includes(dataset)) {
    throw new FtlError(ErrorCode.InvalidConfig, `--dataset must be one of ${BUILTIN_DATASETS.join(', ')} (got "${dataset}")`);
  }
  return {
    kind: 'builtin',
    dataset: dataset as BuiltinDatasetName,
    partition: parsePartition(stringFlag(values, 'partition', 'iid')),
    clients,
    index,
    ...split,
  };
}

function readFlagFile(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new FtlError(ErrorCode.InvalidConfig, `${flag}: cannot read ${path} (${(err as Error).message})`, { cause: err });
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/**
 * The --ca-file's bytes, once every certificate in it parses: TLS would otherwise ignore a file that is
 * not PEM (a key, a DER file) and every connection would fail later as an untrusted certificate.
 */
function readCaFile(path: string): Buffer {
  const bytes = readFlagFile(path, '--ca-file');
  const blocks = bytes.toString('latin1').match(PEM_CERTIFICATE) ?? [];
  const fix = 'give the coordinator\'s certificate (or its CA\'s) in PEM form, the text file starting "-----BEGIN CERTIFICATE-----"';
  if (blocks.length === 0) throw new FtlError(ErrorCode.InvalidConfig, `--ca-file ${path} holds no PEM certificate; ${fix}`);
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch (err) {
      throw new FtlError(ErrorCode.InvalidConfig, `--ca-file ${path} holds a certificate that does not parse (${(err as Error).message}); ${fix}`, {
        cause: err,
      });
    }
  }
  return bytes;
}

/** The token (from --token-file, else FTL_TOKEN; never a plain flag, which would show in `ps`) and the CA file. */
function readSecrets(tokenFile: string | undefined, caFile: string | undefined): { token?: string; ca?: Buffer } {
  const token = tokenFile !== undefined ? readFlagFile(tokenFile, '--token-file').toString('utf8').trim() : process.env['FTL_TOKEN'];
  return { ...(token ? { token } : {}), ...(caFile !== undefined ? { ca: readCaFile(caFile) } : {}) };
}
