import { PROTOCOL_VERSION, type Ack, type ChannelSocket, type ClientToServerEvents, type GoodbyeReason, type Logger } from '@ftl/shared';
import type { ClientEntry, ClientRegistry } from './client-registry.js';
import type { FederatedRun } from './federated-run.js';
import { messageGuard } from './message-guard.js';
import { PeerBudget, type PeerBudgetOptions } from './peer-budget.js';
import { checkReady } from './ready-check.js';

/** What a site's connection reaches on the server that accepted it. */
export interface SiteConnectionHost {
  clients: ClientRegistry<ChannelSocket>;
  /** The run being hosted now, if any. */
  activeRun(): FederatedRun | undefined;
  budget: PeerBudgetOptions;
  log: Logger;
}

/** Tells a client why its connection ends, then closes it. */
export function goodbye(socket: ChannelSocket, reason: GoodbyeReason, message: string): void {
  socket.emit('goodbye', { protocol: PROTOCOL_VERSION, reason, message });
  socket.disconnect(true);
}

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
  if (run) socket.emit('welcome', run.welcome(name));

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
  on('fit-result', (raw) => host.activeRun()?.submitFit(name, raw) ?? closed);
  on('evaluate-result', (raw) => host.activeRun()?.submitEvaluate(name, raw) ?? closed);
  on('personalize-result', (raw) => host.activeRun()?.submitPersonalize(name, raw) ?? closed);
  on('class-sums-result', (raw) => host.activeRun()?.submitClassSums(name, raw) ?? closed);
  on('failure', (raw) => {
    host.activeRun()?.clientFailed(name, raw);
    return undefined;
  });
  socket.on('disconnect', (reason) => {
    if (!clients.remove(name, socket)) return; // replaced by a newer connection
    log.info('client-disconnected', { client: name, reason, clients: clients.size });
    host.activeRun()?.clientLeft(name, `disconnected (${reason})`);
  });
}

/** A site reports ready for the active run, with its sample counts, labels and (normalised runs) statistics. */
function onReady(entry: ClientEntry<ChannelSocket>, raw: unknown, { clients, log, activeRun }: SiteConnectionHost): Ack {
  const checked = checkReady(activeRun(), entry.id, raw);
  if ('refused' in checked) return checked.refused;
  const { runId, numTrain, numVal, labels, stats, table } = checked.ready;
  clients.markReady(entry, { runId, numTrain, numVal, ...(labels ? { labels } : {}) }, stats, table);
  log.info('client-ready', { client: entry.id, train: numTrain, val: numVal, ready: clients.readyClients(runId).length });
  clients.notifyReady();
  // A tabular run whose encoding is already fixed sends it now: the site encodes its table before any round.
  activeRun()?.siteReady(entry.id);
  return { accepted: true };
}
