#!/usr/bin/env node
import {
  createLogger,
  ErrorCode,
  expandShortHelp,
  FtlError,
  initBackend,
  parseFlags,
  readPackageInfo,
  runMain,
  stringFlag,
  type Logger,
} from '@ftl/shared';
import { hashClientToken, newClientToken } from './client-tokens.js';
import { COORDINATOR_HELP, parseCoordinatorArgs, type CoordinatorConfig } from './config.js';
import { Coordinator } from './coordinator.js';
import { operatorCommand } from './operator-cli.js';
import { checkRunReuse } from './run-reuse.js';
import { serve } from './serve.js';
import { formatRoundRow, roundTableHeader } from './round-table.js';
import { writeSecretFile } from './secret-file.js';
import { listenExplained } from './startup-errors.js';
import { DbLock } from './store/db-lock.js';
import { Store } from './store/store.js';

const CLIENTS_USAGE = 'usage: ftl-coordinator clients add NAME [--save FILE] | revoke NAME | list, each with --db FILE';

/**
 * `ftl-coordinator clients add|revoke|list [NAME] --db FILE [--save FILE]`: manages client tokens in the
 * database directly. It takes no server lock: each edit is one short SQLite transaction, which SQLite
 * serialises with a running server's own writes, so sites can be added while a server runs.
 */
function clientsCommand(argv: string[]): void {
  const { values, positionals } = parseFlags(argv, { db: { type: 'string' }, save: { type: 'string' } }, { positionals: true });
  const [action, name, ...extra] = positionals;
  const save = stringFlag(values, 'save');
  if (extra.length > 0 || (action === 'list' ? name !== undefined : name === undefined) || (save !== undefined && action !== 'add')) {
    throw new FtlError(ErrorCode.InvalidConfig, CLIENTS_USAGE);
  }
  if (action !== 'add' && action !== 'revoke' && action !== 'list') throw new FtlError(ErrorCode.InvalidConfig, CLIENTS_USAGE);
  const store = Store.open(stringFlag(values, 'db', '.ftl/coordinator.db'));
  try {
    if (action === 'list') {
      for (const c of store.listClients()) {
        process.stdout.write(`${c.name}\t${c.revoked ? 'revoked' : 'active'}\tcreated ${c.createdAt}\tlast seen ${c.lastSeen ?? 'never'}\n`);
      }
    } else if (action === 'add') {
      const token = newClientToken();
      if (save !== undefined) {
        // The file first, so a folder that cannot be written leaves no site registered with a token
        // nobody has; a taken name is refused before its file (perhaps that site's token) is replaced.
        if (store.getClient(name!)) store.addClient(name!, hashClientToken(token));
        writeSecretFile(save, token, '--save');
        store.addClient(name!, hashClientToken(token));
        process.stdout.write(`client ${name} added; its token is in ${save} (give it to the site for --token-file)\n`);
      } else {
        store.addClient(name!, hashClientToken(token));
        process.stdout.write(`client ${name} added. Its token (shown once; give it to the site, e.g. as FTL_TOKEN):\n${token}\n`);
      }
    } else {
      store.revokeClient(name!);
      process.stdout.write(`client ${name} revoked; it is refused from its next connection on\n`);
    }
  } finally {
    store.close();
  }
}

/** One run start to finish on `store` (whose database this process holds the lock of). */
async function runOnce(config: CoordinatorConfig, log: Logger, store: Store): Promise<void> {
  // Before the backbone loads or a client waits: a reused run id says at once what the stored run is.
  checkRunReuse(store, config);
  await initBackend({ log });
  const coordinator = await Coordinator.create(config, log, store);
  try {
    // Before the port opens: a signal the moment the line below is read must stop the run, not kill
    // the process (node's default for a signal nobody listens to).
    const stop = () => {
      process.stdout.write(
        'stopping after the current round: the run then ends as stopped, its model exported if a round trained it ' +
          '(Ctrl-C again to quit now instead; the same --db and --run-id then resume it)\n',
      );
      coordinator.stop('by a signal (SIGINT or SIGTERM)');
      process.once('SIGINT', () => process.exit(130));
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    const { url, metricsUrl } = await listenExplained(() => coordinator.listen(), config);
    // The demo and scripts read this line to find the port.
    process.stdout.write(`coordinator listening on ${url} (run ${config.runId})\n`);
    if (metricsUrl) process.stdout.write(`metrics on ${metricsUrl}/metrics (also /healthz and /readyz)\n`);
    const table = { privacy: config.privacy.mode !== 'none' };
    process.stdout.write(`${roundTableHeader(table)}\n`);
    const summary = await coordinator.run((r) => process.stdout.write(`${formatRoundRow(r, config.rounds, table)}\n`));
    const last = summary.rounds.at(-1);
    process.stdout.write(
      `run ${summary.runId} ${summary.reason} after ${summary.rounds.length} rounds; ` +
        `federated validation accuracy ${last ? `${(last.valAccuracy * 100).toFixed(2)}%` : '-'}` +
        (summary.exportDir ? `; global model written to ${summary.exportDir}` : '') +
        (summary.message ? `\n${summary.message}` : '') +
        '\n',
    );
  } finally {
    await coordinator.close();
  }
}

runMain(async () => {
  const argv = expandShortHelp(process.argv.slice(2));
  const [command, ...rest] = argv;
  if (command === '--version') {
    process.stdout.write(`ftl-coordinator ${readPackageInfo(import.meta.url).version}\n`);
    return;
  }
  if (command === 'serve') return serve(rest);
  // With --db the client registry is edited in the database directly (no server needed).
  if (command === 'clients' && rest.some((a) => a === '--db' || a.startsWith('--db='))) return clientsCommand(rest);
  if (command === 'clients' || command === 'runs') return operatorCommand(command, rest);
  const config = parseCoordinatorArgs(argv);
  if (config === 'help') {
    process.stdout.write(`${COORDINATOR_HELP}\n`);
    return;
  }
  const log = createLogger('coordinator');
  const dbPath = config.dbPath!;
  // One server per database: a second one would run the same run again beside this one.
  const lock = DbLock.acquire(dbPath, log);
  try {
    const store = Store.open(dbPath);
    try {
      await runOnce(config, log, store);
    } finally {
      store.close();
    }
  } finally {
    lock.release();
  }
});
