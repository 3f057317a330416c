import { existsSync, readFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { createLogger, ErrorCode, FtlError, initBackend, type Logger } from '@ftl/shared';
import { newClientToken } from './client-tokens.js';
import { parseServeArgs, SERVE_HELP } from './config.js';
import { CoordinatorServer } from './coordinator-server.js';
import { DEFAULT_OPERATOR_TOKEN_FILE } from './operator-cli.js';
import { writeSecretFile } from './secret-file.js';
import { listenExplained } from './startup-errors.js';
import { DbLock } from './store/db-lock.js';
import { Store } from './store/store.js';

/** Reads the operator token file, or creates it with a new token readable by its owner only. */
export function operatorToken(file: string): { token: string; created: boolean } {
  const fromEnv = process.env['FTL_OPERATOR_TOKEN'];
  if (fromEnv) return { token: fromEnv, created: false };
  if (existsSync(file)) {
    const token = readFileSync(file, 'utf8').trim();
    if (token.length < 16)
      throw new FtlError(ErrorCode.InvalidConfig, `operator token file ${file} holds fewer than 16 characters; delete it to get a new token`);
    return { token, created: false };
  }
  const token = newClientToken();
  writeSecretFile(file, token, '--operator-token-file');
  return { token, created: true };
}

/**
 * Where the operator token is, and the flag the operator commands need to find it when it is not where
 * they look by default (.ftl/operator-token in their working folder).
 */
function tokenNote(file: string, created: boolean, dbPath: string): string {
  if (process.env['FTL_OPERATOR_TOKEN']) return 'operator token: from FTL_OPERATOR_TOKEN';
  const where = created ? `operator token written to ${file}` : `operator token: ${file}`;
  if (resolve(file) === resolve(DEFAULT_OPERATOR_TOKEN_FILE)) return `${where} (the clients and runs commands read it from there)`;
  const db = relative(process.cwd(), resolve(dbPath)) || dbPath;
  return (
    `${where}; the clients and runs commands need --token-file ${file}` +
    (resolve(file) === resolve(dbPath, '..', 'operator-token') ? ` (or --db ${db})` : '')
  );
}

/** Waits for SIGINT or SIGTERM; a second SIGINT quits at once. */
function untilSignal(onFirst: () => void): Promise<void> {
  return new Promise<void>((done) => {
    const shutdown = () => {
      process.off('SIGINT', shutdown);
      process.off('SIGTERM', shutdown);
      onFirst();
      process.once('SIGINT', () => process.exit(130));
      done();
    };
    process.once('SIGINT', shutdown);
    process.once('SIGTERM', shutdown);
  });
}

async function serveLocked(config: Exclude<ReturnType<typeof parseServeArgs>, 'help'>, log: Logger): Promise<void> {
  await initBackend({ log });
  const { token, created } = operatorToken(config.operatorTokenFile);
  const store = Store.open(config.dbPath);
  try {
    const server = await CoordinatorServer.create(config.base, log, store, {
      operatorToken: token,
      exportRoot: config.exportRoot,
      ...(config.maxMessageBytes !== undefined ? { maxMessageBytes: config.maxMessageBytes } : {}),
    });
    try {
      // Listening for the signals before the port opens: a SIGTERM the moment the server is up must
      // still shut it down cleanly, and node's default for an unhandled SIGTERM is to die on the spot.
      const signalled = untilSignal(() => process.stdout.write('shutting down: the active run (if any) resumes on the next start\n'));
      const { url, metricsUrl } = await listenExplained(() => server.listen(), config.base);
      process.stdout.write(`coordinator serving on ${url} (database ${config.dbPath})\n`);
      if (metricsUrl) process.stdout.write(`metrics on ${metricsUrl}/metrics (also /healthz and /readyz)\n`);
      process.stdout.write(`${tokenNote(config.operatorTokenFile, created, config.dbPath)}\n`);
      const resumed = server.resumeInterrupted();
      if (resumed.length > 0) process.stdout.write(`resuming run ${resumed[0]} where the last server stopped\n`);
      await signalled;
    } finally {
      await server.close();
    }
  } finally {
    store.close();
  }
}

/**
 * `ftl-coordinator serve`: the coordinator as a long-lived service until SIGINT/SIGTERM. It holds the
 * database's lock while it runs, so a second server on the same --db refuses to start.
 */
export async function serve(argv: string[]): Promise<void> {
  const config = parseServeArgs(argv);
  if (config === 'help') {
    process.stdout.write(`${SERVE_HELP}\n`);
    return;
  }
  const log = createLogger('coordinator');
  const lock = DbLock.acquire(config.dbPath, log);
  try {
    await serveLocked(config, log);
  } finally {
    lock.release();
  }
}
