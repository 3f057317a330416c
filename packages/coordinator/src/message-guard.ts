import { rejectionFor, type Ack, type Logger } from '@ftl/shared';
import type { PeerBudget } from './peer-budget.js';

/**
 * The one boundary every message from a site passes: rate-limited, handled, answered. Nothing a peer
 * sends can throw out of it; a peer that floods or keeps sending what is refused loses its connection
 * (`disconnect` says why), and only its own.
 *
 * @example
 * const guard = messageGuard({ client: name, budget, log, connected: () => socket.connected, disconnect });
 * socket.on('fit-result', guard('fit-result', (raw) => run.submitFit(name, raw)));
 */
export function messageGuard(o: {
  client: string;
  budget: PeerBudget;
  log: Logger;
  connected: () => boolean;
  disconnect: (message: string) => void;
}) {
  return (event: string, handle: (raw: unknown) => Ack | undefined) =>
    (raw: unknown, ack?: unknown): void => {
      const answer = typeof ack === 'function' ? (ack as (a: Ack) => void) : () => {};
      let result: Ack | undefined;
      if (!o.budget.take()) {
        result = { accepted: false, reason: 'rate-limited', message: `too many messages; a site sends a few per round` };
      } else {
        try {
          result = handle(raw);
        } catch (err) {
          result = rejectionFor(err);
          o.log.warn('message-failed', { client: o.client, event, detail: (err as Error).message });
        }
      }
      if (result === undefined) return;
      answer(result);
      if (result.accepted) o.budget.accepted();
      else if (o.budget.refused() && o.connected()) {
        o.log.warn('client-misbehaving', { client: o.client, event, reason: result.reason });
        o.disconnect(`${event} messages kept being refused (last: ${result.reason}: ${result.message}); fix the site and reconnect`);
      }
    };
}
