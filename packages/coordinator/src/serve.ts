import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { createLogger, ErrorCode, FtlError, initBackend } from '@ftl/shared';
import { newClientToken } from './client-tokens.js';
import { parseServeArgs, SERVE_HELP } from './config.js';
import { CoordinatorServer } from './coordinator-server.js';
import { Store } from './store/store.js';

/** Reads the operator token file, or creates it with a new token readable by its owner only. */
export function operatorToken(file: string): { token: string; created: boolean } {
  const fromEnv = process.env['FTL_OPERATOR_TOKEN'];
  if (fromEnv) return { token: fromEnv, created: false };
  if (existsSync(file)) {
    const token = readFileSync(file, 'utf8').trim();
    if (token.length < 16) throw new FtlError(ErrorCode.InvalidConfig, `operator token file ${file} holds fewer than 16 characters; delete it to get a new token`);
    return { token, created: false };
  }
  mkdirSync(dirname(file), { recursive: true });
  const token = newClientToken();
  writeFileSync(file, token + '\n', { mode: 0o600 });
  chmodSync(file, 0o600);
  return { token, created: true };
}

/** `ftl-coordinator serve`: the coordinator as a long-lived service until SIGINT/SIGTERM. */
export async function serve(argv: string[]): Promise<void> {
  const config = parseServeArgs(argv);
  if (config === 'help') {
    process.stdout.write(SERVE_HELP + '\n');
    return;
  }
  const log = createLogger('coordinator');
  await initBackend({ log });
  const { token, created } = operatorToken(config.operatorTokenFile);
  const store = Store.open(config.dbPath);
  const server = await CoordinatorServer.create(config.base, log, store, {
    operatorToken: token, exportRoot: config.exportRoot,
    ...(config.maxMessageBytes !== undefined ? { maxMessageBytes: config.maxMessageBytes } : {}),
  });
  const { url } = await server.listen();
  process.stdout.write(`coordinator serving on ${url} (database ${config.dbPath})\n`);
  process.stdout.write(created
    ? `operator token written to ${config.operatorTokenFile} (the clients and runs commands read it from there)\n`
    : `operator token: ${process.env['FTL_OPERATOR_TOKEN'] ? 'from FTL_OPERATOR_TOKEN' : config.operatorTokenFile}\n`);
  const resumed = server.resumeInterrupted();
  if (resumed.length > 0) process.stdout.write(`resuming run ${resumed[0]} where the last server stopped\n`);
  await new Promise<void>((resolve) => {
    const shutdown = () => {
      process.stdout.write('shutting down: the active run (if any) resumes on the next start\n');
      process.once('SIGINT', () => process.exit(130));
      resolve();
    };
    process.once('SIGINT', shutdown);
    process.once('SIGTERM', shutdown);
  });
  await server.close();
  store.close();
}
