import { join } from 'node:path';
import { decodeWeights, encodeWeights, parseAck, PROTOCOL_VERSION, type Ack } from '@ftl/shared';
import { describe, expect, test } from 'vitest';
import { connectRawPeer } from './raw-peer.js';
import { makeClient, scratch, startCoordinator } from './test-federation.js';

describe('a run survives bad and missing clients', () => {
  test('a client that disconnects mid-round does not stall the run: the round closes with the others', async () => {
    const dir = await scratch('drop');
    const { coordinator, url } = await startCoordinator({ rounds: 2, minClients: 3, roundDeadlineMs: 120_000 });
    const clients = await Promise.all([0, 1].map((index) => makeClient({ url, index, clients: 2, limit: 300, cacheDir: join(dir, `c${index}`) })));
    const ends = clients.map((c) => c.run());
    const quitter = await connectRawPeer(url, 'quitter');
    quitter.next('fit').then(() => quitter.socket.disconnect());
    const t0 = performance.now();
    const summary = await coordinator.run();
    await Promise.all(ends);
    await coordinator.close();
    expect(performance.now() - t0).toBeLessThan(60_000); // far below the 120 s deadline
    expect(summary.rounds.map((r) => [r.status, r.accepted, r.failed])).toEqual([
      ['aggregated', 2, 1],
      ['aggregated', 2, 0],
    ]);
  });

  test('every kind of invalid update is rejected with its reason, and the aggregate is the valid update alone', async () => {
    // A second, silent client keeps the round open (until its 3 s deadline) so a duplicate can arrive in it.
    const { coordinator, url } = await startCoordinator({ rounds: 1, minClients: 2, roundDeadlineMs: 3000, maxExamplesPerClient: 10_000 });
    const c = await connectRawPeer(url, 'tester');
    const silent = await connectRawPeer(url, 'silent');
    const running = coordinator.run();
    const fit = await c.next('fit');
    const global = decodeWeights(fit.weights);
    const shifted = { specs: global.specs, values: global.values.map((v) => v + 0.5) };
    const base = {
      protocol: PROTOCOL_VERSION,
      runId: fit.runId,
      round: fit.round,
      modelVersion: fit.modelVersion,
      numExamples: 100,
      metrics: { loss: 1, accuracy: 0.5, seconds: 1 },
    };
    const send = async (over: object): Promise<Ack> =>
      parseAck(await c.socket.emitWithAck('fit-result', { ...base, weights: encodeWeights(shifted), ...over }));
    const withValue = (v: number) => {
      const values = shifted.values.slice();
      values[7] = v;
      return encodeWeights({ specs: global.specs, values });
    };
    const cases: Array<[string, object]> = [
      ['non-finite', { weights: withValue(NaN) }],
      ['non-finite', { weights: withValue(Infinity) }],
      [
        'wrong-shape',
        { weights: { specs: global.specs.slice(0, -1), data: encodeWeights(shifted).data.subarray(0, (global.values.length - 10) * 4) } },
      ],
      [
        'wrong-shape',
        {
          weights: {
            specs: [...global.specs, { name: 'extra', shape: [1], dtype: 'float32' }],
            data: new Uint8Array((global.values.length + 1) * 4),
          },
        },
      ],
      ['malformed', { weights: { specs: global.specs, data: Array.from(shifted.values.subarray(0, 4)) } }],
      ['bad-sample-count', { numExamples: 1e9 }],
      ['stale-round', { round: fit.round + 1 }],
      ['stale-model', { modelVersion: fit.modelVersion + 3 }],
      ['protocol-mismatch', { protocol: 0 }],
    ];
    for (const [reason, over] of cases) expect(await send(over), reason).toMatchObject({ accepted: false, reason });
    expect(await send({})).toEqual({ accepted: true });
    expect(await send({})).toMatchObject({ accepted: false, reason: 'duplicate' });
    const summary = await running;
    c.socket.disconnect();
    silent.socket.disconnect();
    await coordinator.close();
    expect(summary.rounds[0]).toMatchObject({ status: 'aggregated', accepted: 1, rejected: 10, failed: 1 });
    expect(Array.from(summary.weights.values)).toEqual(Array.from(shifted.values));
  });

  test('an oversized frame is refused by the transport; a round without quorum is retried, then the run fails clearly', async () => {
    const { coordinator, url } = await startCoordinator({ rounds: 1, minClients: 1, roundDeadlineMs: 3000, quorumRetries: 1 });
    const c = await connectRawPeer(url, 'bloater');
    const rows: number[] = [];
    const running = coordinator.run((r) => rows.push(r.round));
    const fit = await c.next('fit');
    const huge = new Uint8Array(decodeWeights(fit.weights).values.length * 4 * 3);
    c.socket.emit('fit-result', {
      protocol: PROTOCOL_VERSION,
      runId: fit.runId,
      round: fit.round,
      modelVersion: fit.modelVersion,
      numExamples: 1,
      metrics: { loss: 0, accuracy: 0, seconds: 0 },
      weights: { specs: fit.weights.specs, data: huge },
    });
    await expect(running).rejects.toMatchObject({
      code: 'QUORUM',
      message: expect.stringMatching(
        /round 1 got 0 accepted updates, below minFitClients 1, after 1 retries; the run ends with the global model of round 0/,
      ),
    });
    expect(rows).toEqual([1, 1]); // the first attempt, then the retry
    c.socket.disconnect();
    await coordinator.close();
  });
});
