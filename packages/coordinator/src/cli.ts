#!/usr/bin/env node
import { createLogger, ErrorCode, FtlError, initBackend, parseFlags, runMain, stringFlag } from '@ftl/shared';
import { hashClientToken, newClientToken } from './client-tokens.js';
import { COORDINATOR_HELP, parseCoordinatorArgs } from './config.js';
import { Coordinator } from './coordinator.js';
import { operatorCommand } from './operator-cli.js';
import { serve } from './serve.js';
import { formatRoundRow, roundTableHeader } from './round-table.js';
import { Store } from './store/store.js';

/** `ftl-coordinator clients add|revoke|list [NAME] [--db FILE]`: manages client tokens in the database. */
function clientsCommand(argv: string[]): void {
  const [action, ...rest] = argv;
  const name = rest.find((a) => !a.startsWith('--') && rest[rest.indexOf(a) - 1] !== '--db');
  const values = parseFlags(rest.filter((a) => a !== name), { db: { type: 'string' } });
  const store = Store.open(stringFlag(values, 'db', '.ftl/coordinator.db'));
  try {
    if (action === 'list') {
      for (const c of store.listClients()) {
        process.stdout.write(`${c.name}\t${c.revoked ? 'revoked' : 'active'}\tcreated ${c.createdAt}\tlast seen ${c.lastSeen ?? 'never'}\n`);
      }
    } else if ((action === 'add' || action === 'revoke') && name) {
      if (action === 'add') {
        const token = newClientToken();
        store.addClient(name, hashClientToken(token));
        process.stdout.write(`client ${name} added. Its token (shown once; give it to the site, e.g. as FTL_TOKEN):\n${token}\n`);
      } else {
        store.revokeClient(name);
        process.stdout.write(`client ${name} revoked; it is refused from its next connection on\n`);
      }
    } else {
      throw new FtlError(ErrorCode.InvalidConfig, 'usage: ftl-coordinator clients add NAME | revoke NAME | list [--db FILE]');
    }
  } finally {
    store.close();
  }
}

runMain(async () => {
  const [command, ...rest] = process.argv.slice(2);
  if (command === 'serve') return serve(rest);
  // With --db the client registry is edited in the database directly (no server needed).
  if (command === 'clients' && rest.includes('--db')) return clientsCommand(rest);
  if (command === 'clients' || command === 'runs') return operatorCommand(command, rest);
  const config = parseCoordinatorArgs(process.argv.slice(2));
  if (config === 'help') {
    process.stdout.write(COORDINATOR_HELP + '\n');
    return;
  }
  const log = createLogger('coordinator');
  await initBackend({ log });
  const store = config.dbPath ? Store.open(config.dbPath) : undefined;
  const coordinator = await Coordinator.create(config, log, store);
  const { url } = await coordinator.listen();
  // The demo and scripts read this line to find the port.
  process.stdout.write(`coordinator listening on ${url} (run ${config.runId})\n`);
  const stop = () => {
    process.stdout.write('stopping after the current round (Ctrl-C again to quit now)\n');
    coordinator.stop();
    process.once('SIGINT', () => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  process.stdout.write(roundTableHeader() + '\n');
  try {
    const summary = await coordinator.run((r) => process.stdout.write(formatRoundRow(r, config.rounds) + '\n'));
    const last = summary.rounds.at(-1);
    process.stdout.write(
      `run ${summary.runId} ${summary.reason} after ${summary.rounds.length} rounds; ` +
        `federated validation accuracy ${last ? (last.valAccuracy * 100).toFixed(2) + '%' : '-'}` +
        (summary.exportDir ? `; global model written to ${summary.exportDir}` : '') + '\n',
    );
  } finally {
    await coordinator.close();
    store?.close();
  }
});
