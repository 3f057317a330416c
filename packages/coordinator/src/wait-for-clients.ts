import { ErrorCode, FtlError } from '@ftl/shared';
import type { RunContext } from './run-context.js';

/**
 * Waits (bounded by `waitTimeoutMs`) until `minClients` are ready; returns early when the run is asked to
 * stop or pause, which calls the `wake` it was given. Throws FtlError(Timeout) saying how many came.
 */
export async function waitForClients(
  ctx: RunContext,
  o: { stopRequested: () => boolean; setWake: (wake: (() => void) | undefined) => void },
): Promise<void> {
  const { minClients, waitTimeoutMs, runId } = ctx.config;
  const ready = () => ctx.host.readyClients(runId).length;
  if (ready() >= minClients) return;
  ctx.setPhase('waiting-for-clients');
  ctx.log.info('waiting-for-clients', { need: minClients, ready: ready() });
  let unsubscribe = () => {};
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new FtlError(
              ErrorCode.Timeout,
              `only ${ready()} of the ${minClients} clients needed were ready after ${waitTimeoutMs / 1000} s; ` +
                'start more clients or lower minClients',
            ),
          ),
        waitTimeoutMs,
      );
      const check = () => {
        if (ready() >= minClients || o.stopRequested()) {
          clearTimeout(timer);
          resolve();
        }
      };
      o.setWake(check);
      unsubscribe = ctx.host.onClientReady(check);
    });
  } finally {
    unsubscribe();
    o.setWake(undefined);
  }
}
