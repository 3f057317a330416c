/**
 * Long tfjs work on the wasm and cpu backends is synchronous: a client extracting features or training
 * for many seconds would answer no socket.io ping meanwhile, and the coordinator (ping every 5 s, 10 s
 * timeout) would drop it mid-round. Loops over batches call the function this returns after each batch;
 * it gives the event loop one turn whenever `ms` have passed since the last.
 *
 * @example
 * const breathe = eventLoopYielder();
 * for (const batch of batches) { step(batch); await breathe(); }
 */
export function eventLoopYielder(ms = 50): () => Promise<void> {
  let last = performance.now();
  return async () => {
    if (performance.now() - last < ms) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    last = performance.now();
  };
}
