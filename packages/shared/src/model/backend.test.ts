import * as tf from '@tensorflow/tfjs';
import { afterEach, describe, expect, test } from 'vitest';
import { createLogger } from '../log.js';
import { defaultLoaders, initBackend, parseBackendName, type BackendLoader, type BackendName } from './backend.js';

const real = (tfName: string, load = async () => {}): BackendLoader => ({ tfName, load });
const missing = (why: string): BackendLoader => ({
  tfName: 'nope',
  load: async () => {
    throw new Error(why);
  },
});

function loaders(over: Partial<Record<BackendName, BackendLoader>>): Record<BackendName, BackendLoader> {
  return {
    node: missing("Cannot find module '@tensorflow/tfjs-node'"),
    wasm: real('wasm', async () => {
      await import('@tensorflow/tfjs-backend-wasm');
    }),
    cpu: real('cpu'),
    ...over,
  };
}

describe('backend selection', () => {
  const saved = process.env['FTL_BACKEND'];
  afterEach(() => {
    if (saved === undefined) delete process.env['FTL_BACKEND'];
    else process.env['FTL_BACKEND'] = saved;
  });

  test('falls back from a missing tfjs-node to wasm, and logs the choice once', async () => {
    delete process.env['FTL_BACKEND'];
    const lines: string[] = [];
    const log = createLogger('test', { level: 'info', write: (l) => lines.push(l) });
    await expect(initBackend({ loaders: loaders({}), log })).resolves.toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(lines.filter((l) => l.includes(' backend '))).toEqual(['ftl test info backend backend=wasm tf=wasm']);
  });

  test('falls back to cpu when wasm cannot load either', async () => {
    delete process.env['FTL_BACKEND'];
    await expect(initBackend({ loaders: loaders({ wasm: missing('no wasm binary') }) })).resolves.toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
  });

  test('the real wasm loader adds the convolution gradient kernels stock wasm lacks', async () => {
    delete process.env['FTL_BACKEND'];
    await expect(initBackend({ loaders: { ...defaultLoaders, node: missing('not installed') } })).resolves.toBe('wasm');
    for (const k of ['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput']) {
      expect(tf.getKernel(k, 'wasm'), k).toBeDefined();
    }
  });

  test('FTL_BACKEND forces a backend', async () => {
    process.env['FTL_BACKEND'] = 'cpu';
    await expect(initBackend({ loaders: loaders({}) })).resolves.toBe('cpu');
    process.env['FTL_BACKEND'] = 'wasm';
    await expect(initBackend({ loaders: loaders({}) })).resolves.toBe('wasm');
  });

  test('FTL_BACKEND=node fails clearly where tfjs-node is not installed (the real loader)', async () => {
    process.env['FTL_BACKEND'] = 'node';
    await expect(initBackend()).rejects.toThrow(/FTL_BACKEND=node is not available here \(.*tfjs-node.*\)\. Unset FTL_BACKEND/);
  });

  test('concurrent callers are served one at a time, never interleaving backend set-up', async () => {
    delete process.env['FTL_BACKEND'];
    let active = 0;
    let most = 0;
    const slow: BackendLoader = {
      tfName: 'cpu',
      load: async () => {
        most = Math.max(most, ++active);
        await new Promise((r) => setTimeout(r, 20));
        active--;
      },
    };
    const results = await Promise.all([1, 2, 3].map(() => initBackend({ loaders: loaders({ wasm: missing('no'), cpu: slow }) })));
    expect(results).toEqual(['cpu', 'cpu', 'cpu']);
    expect(most).toBe(1);
  });

  test.each([['gpu'], ['WASM'], ['node ']])('rejects FTL_BACKEND=%j', (value) => {
    expect(() => parseBackendName(value)).toThrow(`FTL_BACKEND must be one of node, wasm, cpu or auto (got "${value}")`);
  });

  test('auto and empty mean choose automatically', () => {
    expect(parseBackendName('auto')).toBeUndefined();
    expect(parseBackendName('')).toBeUndefined();
  });
});
