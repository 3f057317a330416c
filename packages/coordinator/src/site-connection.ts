import {
  parseClientFailure,
  PROTOCOL_VERSION,
  type Ack,
  type ChannelSocket,
  type ClientToServerEvents,
  type GoodbyeReason,
  type Logger,
} from '@ftl/shared';
import type { ClientEntry, ClientRegistry } from './client-registry.js';
import type { FederatedRun } from './federated-run.js';
import { messageGuard } from './message-guard.js';
import { PeerBudget, type PeerBudgetOptions } from './peer-budget.js';
import { checkReady } from './ready-check.js';
import { SECURE_AGGREGATION_EVENTS } from './update-intake.js';
import type { SiteTracker } from './site-tracker.js';

/** What a site's connection reaches on the server that accepted it. */
export interface SiteConnectionHost {
  clients: ClientRegistry<ChannelSocket>;
  /** The run being hosted now, if any. */
  activeRun(): FederatedRun | undefined;
  budget: PeerBudgetOptions;
  log: Logger;
  /** Each site's last state per run. */
  sites: SiteTracker;
  /** Counts every acknowledged update (metrics.ts); absent when the server keeps no metrics. */
  metrics?: { updateAnswered(runId: string | undefined, ack: Ack): void };
}

/** Why the coordinator closed a connection, for the site's state when its `disconnect` comes. */
const farewells = new WeakMap<ChannelSocket, string>();

/** Tells a client why its connection ends, then closes it. */
export function goodbye(socket: ChannelSocket, reason: GoodbyeReason, message: string): void {
  farewells.set(socket, `${reason}: ${message}`);
  socket.emit('goodbye', { protocol: PROTOCOL_VERSION, reason, message });
  socket.disconnect(true);
}

/** socket.io's reasons for a connection the server itself closed. */
const SERVER_CLOSED: ReadonlySet<string> = new Set(['server namespace disconnect', 'server shutting down']);

/**
 * A connection that passed the handshake becomes the site's entry in the registry (replacing an older
 * one of the same name), gets the active run's `welcome`, and has every inbound event pass one guard
 * (rate budget, error boundary, acknowledgement) on its way to the active run. Works the same on any
 * transport: it sees only the {@link ChannelSocket}.
 */
export function acceptSite(socket: ChannelSocket, host: SiteConnectionHost): void {
  const { clients, log } = host;
  const name = (socket.data as { name: string }).name;
  const previous = clients.get(name);
  if (previous) {
    log.info('client-replaced', { client: name });
    goodbye(previous.socket, 'replaced', `a newer connection named "${name}" replaced this one; run each site under its own name`);
  }
  const entry: ClientEntry<ChannelSocket> = { id: name, socket };
  clients.add(entry);
  log.info('client-connected', { client: name, clients: clients.size });
  const run = host.activeRun();
  if (run) {
    socket.emit('welcome', run.welcome(name));
    host.sites.set(run.runId, name, 'connected');
  }

  const guard = messageGuard({
    client: name,
    budget: new PeerBudget(host.budget),
    log,
    connected: () => socket.connected,
    disconnect: (message) => goodbye(socket, 'misbehaving', message),
  });
  // Every inbound event passes the guard: its rate budget and its one error boundary.
  const on = (event: keyof ClientToServerEvents, handle: (raw: unknown) => Ack | undefined) => socket.on(event, guard(event, handle));
  on('ready', (raw) => onReady(entry, raw, host));
  const closed = { accepted: false, reason: 'round-closed', message: 'no run is active' } as const;
  on('fit-result', (raw) => {
    const run = host.activeRun();
    const ack = run?.submitFit(name, raw) ?? closed;
    host.metrics?.updateAnswered(run?.runId, ack);
    answered(host, name, run, 'update', ack);
    return ack;
  });
  on('evaluate-result', (raw) => {
    const run = host.activeRun();
    const ack = run?.submitEvaluate(name, raw) ?? closed;
    answered(host, name, run, 'evaluation', ack);
    return ack;
  });
  on('personalize-result', (raw) => host.activeRun()?.submitPersonalize(name, raw) ?? closed);
  on('class-sums-result', (raw) => host.activeRun()?.submitClassSums(name, raw) ?? closed);
  // Secure aggregation's phases: a site's answers in place of a fit-result, each acknowledged the same way.
  // Its masked input is its update, for the metrics and the site's state; a refused answer of any phase shows.
  for (const event of SECURE_AGGREGATION_EVENTS) {
    on(event, (raw) => {
      const run = host.activeRun();
      const ack = run?.submitSecure(event, name, raw) ?? closed;
      if (event === 'secagg-masked-input') {
        host.metrics?.updateAnswered(run?.runId, ack);
        answered(host, name, run, 'masked update', ack);
      } else if (!ack.accepted) {
        answered(host, name, run, `${event} answer`, ack);
      }
      return ack;
    });
  }
  on('failure', (raw) => {
    const run = host.activeRun();
    if (run && siteFailed(host, name, run.runId, raw) === 'prepare') {
      // A site that cannot prepare was never asked for anything, so no round waits for it; it leaves
      // next, and waits for this close to know its error was recorded (socket.io drops an event that
      // arrives together with the disconnect after it).
      farewells.set(socket, 'after recording its failure');
      socket.disconnect(true);
    } else {
      run?.clientFailed(name, raw);
    }
    return undefined;
  });
  socket.on('disconnect', (reason) => {
    if (!clients.remove(name, socket)) return; // replaced by a newer connection
    log.info('client-disconnected', { client: name, reason, clients: clients.size });
    const run = host.activeRun();
    run?.clientLeft(name, `disconnected (${reason})`);
    if (run) siteLeft(host, name, run, farewells.get(socket) ?? (SERVER_CLOSED.has(reason) ? reason : undefined), reason);
  });
}

/**
 * The site's state once its connection ended: `dropped` when the coordinator closed it (`farewell` says
 * why), else `disconnected`. A site that reported a failure keeps `failed`, its own error first: leaving
 * is what a site that cannot go on does, and its error is the reason the operator needs.
 */
function siteLeft(host: SiteConnectionHost, name: string, run: FederatedRun, farewell: string | undefined, reason: string): void {
  const last = host.sites.get(run.runId, name);
  if (last?.state === 'failed') {
    const message = `${last.message}; then the connection closed (${farewell ?? reason})`;
    host.sites.set(run.runId, name, 'failed', { ...(last.round !== undefined ? { round: last.round } : {}), message });
    return;
  }
  host.sites.set(run.runId, name, farewell !== undefined ? 'dropped' : 'disconnected', { round: run.progress().round, message: farewell ?? reason });
}

/** The site's state after the coordinator answered its update or evaluation: ready for more, or refused and why. */
function answered(host: SiteConnectionHost, name: string, run: FederatedRun | undefined, what: string, ack: Ack): void {
  if (!run) return;
  const round = run.progress().round;
  if (ack.accepted) host.sites.set(run.runId, name, 'ready', { round, message: `its ${what} of round ${round} was accepted` });
  else host.sites.set(run.runId, name, 'refused', { round, message: `its ${what} was refused (${ack.reason}): ${ack.message}` });
}

/**
 * A site's `failure`: its own error becomes its state's message; returns the stage it failed in (undefined
 * for a malformed one, which the run's intake logs).
 */
function siteFailed(host: SiteConnectionHost, name: string, runId: string, raw: unknown): string | undefined {
  let f: ReturnType<typeof parseClientFailure>;
  try {
    f = parseClientFailure(raw);
  } catch {
    return undefined;
  }
  if (f.runId !== runId) return f.stage;
  if (f.stage === 'prepare') host.log.warn('client-failure', { client: name, stage: f.stage, detail: f.message });
  host.sites.set(runId, name, 'failed', { round: f.round, message: `${f.stage}: ${f.message}` });
  return f.stage;
}

/** A site reports ready for the active run, with its sample counts, labels and (normalised runs) statistics. */
function onReady(entry: ClientEntry<ChannelSocket>, raw: unknown, host: SiteConnectionHost): Ack {
  const { clients, log, activeRun } = host;
  const checked = checkReady(activeRun(), entry.id, raw);
  if ('refused' in checked) return checked.refused;
  const { runId, numTrain, numVal, labels, stats, table } = checked.ready;
  clients.markReady(entry, { runId, numTrain, numVal, ...(labels ? { labels } : {}) }, stats, table);
  host.sites.set(runId, entry.id, 'ready', { message: `ready with ${numTrain} training and ${numVal} validation samples` });
  log.info('client-ready', { client: entry.id, train: numTrain, val: numVal, ready: clients.readyClients(runId).length });
  clients.notifyReady();
  // A tabular run whose encoding is already fixed sends it now: the site encodes its table before any round.
  activeRun()?.siteReady(entry.id);
  return { accepted: true };
}
