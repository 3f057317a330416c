#!/usr/bin/env node
import {
  createLogger,
  ErrorCode,
  FtlError,
  describeDataSource,
  expandShortHelp,
  formatImageShape,
  initBackend,
  loadCsvTable,
  loadLocalShard,
  localLabels,
  readPackageInfo,
  runMain,
  type LocalShard,
  type RawTable,
} from '@ftl/shared';
import { prepareCacheDir } from './cache-dir.js';
import { FtlClient } from './client.js';
import { oneLine } from './one-line.js';
import { AUDIT_HELP, CLIENT_HELP, parseAuditArgs, parseClientArgs } from './config.js';
import { printAuditLog } from './audit-table.js';

runMain(async () => {
  const argv = expandShortHelp(process.argv.slice(2));
  const [command, ...rest] = argv;
  if (command === '--version') {
    process.stdout.write(`ftl-client ${readPackageInfo(import.meta.url).version}\n`);
    return;
  }
  if (command === 'audit') {
    const audit = parseAuditArgs(rest);
    if (audit === 'help') process.stdout.write(`${AUDIT_HELP}\n`);
    else printAuditLog(audit.file, (text) => process.stdout.write(text));
    return;
  }
  const config = parseClientArgs(argv);
  if (config === 'help') {
    process.stdout.write(`${CLIENT_HELP}\n`);
    return;
  }
  await prepareCacheDir(config.cacheDir);
  const log = createLogger('client').child({ client: config.name });
  await initBackend({ log });
  // A data error (unknown file type, corrupt image, ragged CSV row…) ends this client before it connects.
  // A table is read as text here; its cells are read against the run's columns when the run says them.
  const { data } = config;
  const local: { shard?: LocalShard; table?: RawTable; tableSplit?: { seed: number; valFraction?: number; limit?: number } } =
    data.kind === 'table'
      ? {
          table: loadCsvTable(data.file),
          tableSplit: {
            seed: data.seed,
            ...(data.valFraction !== undefined ? { valFraction: data.valFraction } : {}),
            ...(data.limit ? { limit: data.limit } : {}),
          },
        }
      : { shard: loadLocalShard(data, { shape: config.imageShape, log }) };
  log.info(
    'data',
    local.shard
      ? {
          source: describeDataSource(data),
          shape: formatImageShape(config.imageShape),
          train: local.shard.train.n,
          val: local.shard.val.n,
          labels: localLabels(local.shard).join(','),
        }
      : { source: describeDataSource(data), rows: local.table!.rows.length, columns: local.table!.header.length },
  );
  const client = new FtlClient({
    serverUrl: config.serverUrl,
    name: config.name,
    ...local,
    cacheDir: config.cacheDir,
    ...(config.featureCacheMaxBytes !== undefined ? { featureCacheMaxBytes: config.featureCacheMaxBytes } : {}),
    log,
    stay: config.stay,
    classSums: config.classSums,
    backboneIdleTimeoutMs: config.backboneIdleTimeoutMs,
    backboneMaxBytes: config.backboneMaxBytes,
    ...(config.pinnedSha256 ? { pinnedSha256: config.pinnedSha256 } : {}),
    ...(config.dpBudget !== undefined ? { dpBudget: config.dpBudget } : {}),
    ...(config.auditLog !== undefined ? { auditLog: config.auditLog } : {}),
    ...(config.token ? { token: config.token } : {}),
    ...(config.ca ? { ca: config.ca } : {}),
  });
  const quit = () => {
    client.close();
    process.exit(config.stay ? 0 : 130);
  };
  process.once('SIGINT', quit);
  process.once('SIGTERM', quit);
  const end = await client.run();
  if (end.reason === 'failed')
    throw new FtlError(ErrorCode.Quorum, `run ${end.runId} failed on the coordinator: ${oneLine(end.message ?? 'no reason given')}`);
});
