import { readFileSync } from 'node:fs';
import {
  BUILTIN_DATASETS, ErrorCode, FtlError, numberFlag, parseFlags, parsePartition, stringFlag,
  type BuiltinDatasetName, type ClientShardOptions,
} from '@ftl/shared';

/** Everything a client node needs, validated at start-up. */
export interface ClientConfig {
  serverUrl: string;
  name: string;
  data: ClientShardOptions;
  cacheDir: string;
  pinnedSha256?: string;
  token?: string;
  ca?: Buffer;
}

/** Help text of `ftl-client`. */
export const CLIENT_HELP = `ftl-client [options]
Joins a federated run: downloads and verifies the backbone, extracts features from local data once,
trains the head each round and sends back only its weights.
  --server URL              coordinator (default http://127.0.0.1:8080)
  --name NAME               this client's name (default client-<index>)
  --dataset NAME            built-in dataset: ${BUILTIN_DATASETS.join(', ')} (default mnist)
  --partition P             iid | dirichlet:<alpha> | shards:<k> (default iid)
  --clients N               how many clients share the dataset (default 1)
  --index I                 this client's share, 0..N-1 (default 0)
  --seed S                  partition seed; the same on every client of a run (default 1)
  --val-fraction X          local validation share (default 0.15)
  --limit N                 use at most N samples of the pool, for quick trials
  --cache-dir DIR           backbone cache (default .ftl/cache)
  --backbone-sha256 HEX     refuse any backbone with another digest
  --token-file FILE         the token the operator issued for --name (or set FTL_TOKEN)
  --ca-file FILE            CA certificate (PEM) to trust for an https coordinator`;

/**
 * Parses and validates the client's command line.
 *
 * @throws FtlError(INVALID_CONFIG) naming the flag and the bad value.
 */
export function parseClientArgs(argv: string[]): ClientConfig | 'help' {
  const str = { type: 'string' } as const;
  const values = parseFlags(argv, {
      server: str, name: str, dataset: str, partition: str, clients: str, index: str, seed: str, 'val-fraction': str,
      limit: str, 'cache-dir': str, 'backbone-sha256': str, 'token-file': str, 'ca-file': str, help: { type: 'boolean' },
    });
  if (values['help']) return 'help';
  const dataset = stringFlag(values, 'dataset', 'mnist');
  if (!(BUILTIN_DATASETS as readonly string[]).includes(dataset)) {
    throw new FtlError(ErrorCode.InvalidConfig, `--dataset must be one of ${BUILTIN_DATASETS.join(', ')} (got "${dataset}")`);
  }
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
  const limit = values['limit'] === undefined ? undefined : numberFlag(values, 'limit', { default: 0, min: 10, integer: true });
  return {
    serverUrl,
    name: stringFlag(values, 'name', `client-${index}`),
    data: {
      dataset: dataset as BuiltinDatasetName,
      partition: parsePartition(stringFlag(values, 'partition', 'iid')),
      clients,
      index,
      seed: numberFlag(values, 'seed', { default: 1, min: 0, integer: true }),
      valFraction: numberFlag(values, 'val-fraction', { default: 0.15, min: 0.01, max: 0.9 }),
      ...(limit !== undefined ? { limit } : {}),
    },
    cacheDir: stringFlag(values, 'cache-dir', '.ftl/cache'),
    ...(pinned !== undefined ? { pinnedSha256: pinned } : {}),
    ...readSecrets(stringFlag(values, 'token-file'), stringFlag(values, 'ca-file')),
  };
}

function readFlagFile(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new FtlError(ErrorCode.InvalidConfig, `${flag}: cannot read ${path} (${(err as Error).message})`, { cause: err });
  }
}

/** The token (from --token-file, else FTL_TOKEN; never a plain flag, which would show in `ps`) and the CA file. */
function readSecrets(tokenFile: string | undefined, caFile: string | undefined): { token?: string; ca?: Buffer } {
  const token = tokenFile !== undefined ? readFlagFile(tokenFile, '--token-file').toString('utf8').trim() : process.env['FTL_TOKEN'];
  return { ...(token ? { token } : {}), ...(caFile !== undefined ? { ca: readFlagFile(caFile, '--ca-file') } : {}) };
}
