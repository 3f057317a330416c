import { createMsgpackParser } from 'ftl-msgpack-parser';
import { io, type Socket } from 'socket.io-client';
import type { ClientView, ConsoleMode, RunListItem, RunView, SiteEvent } from './types';

/** What the coordinator pushes to a console. */
export interface LiveHandlers {
  state(state: { mode: ConsoleMode; runs: RunListItem[]; clients: ClientView[] }): void;
  runs(runs: RunListItem[]): void;
  clients(clients: ClientView[]): void;
  run(run: RunView): void;
  site(event: SiteEvent): void;
  /** The connection is up (true) or lost (false); socket.io reconnects by itself. */
  connection(up: boolean, why?: string): void;
}

/**
 * The console's live channel: socket.io at /console/socket.io, namespace /operator, with the project's
 * msgpackr parser. The session cookie authenticates the handshake; the server pushes every change.
 */
export class Live {
  private readonly socket: Socket;
  private watched: string | null = null;

  constructor(handlers: LiveHandlers) {
    this.socket = io('/operator', {
      path: '/console/socket.io',
      parser: createMsgpackParser(),
      transports: ['websocket'],
      withCredentials: true,
    });
    this.socket.on('state', handlers.state);
    this.socket.on('runs', handlers.runs);
    this.socket.on('clients', handlers.clients);
    this.socket.on('run', handlers.run);
    this.socket.on('site', handlers.site);
    this.socket.on('connect', () => {
      handlers.connection(true);
      // After a reconnection the server has forgotten what this page watched.
      if (this.watched !== null) this.watch(this.watched).then((run) => run && handlers.run(run));
    });
    this.socket.on('disconnect', (reason) => handlers.connection(false, reason));
    this.socket.on('connect_error', (err) => handlers.connection(false, err.message));
  }

  /** Watches run `id` (its view now, then every change), or nothing with null. */
  async watch(id: string | null): Promise<RunView | undefined> {
    this.watched = id;
    const reply = (await this.socket.timeout(10_000).emitWithAck('watch', id)) as { run?: RunView; error?: string };
    if (reply.error) throw new Error(reply.error);
    return reply.run;
  }

  close(): void {
    this.socket.close();
  }
}
