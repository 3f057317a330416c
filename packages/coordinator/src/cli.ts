#!/usr/bin/env node
import { createLogger, initBackend, runMain } from '@ftl/shared';
import { COORDINATOR_HELP, parseCoordinatorArgs } from './config.js';
import { Coordinator } from './coordinator.js';
import { formatRoundRow, roundTableHeader } from './round-table.js';
import { Store } from './store/store.js';

runMain(async () => {
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
