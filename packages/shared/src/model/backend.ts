import * as tf from '@tensorflow/tfjs';
import { ErrorCode, FtlError } from '../errors.js';
import type { Logger } from '../log.js';
import { registerWasmConvKernels } from './wasm-conv-kernels.js';
import { useWasmSpeedKernels } from './wasm-speed-kernels.js';

/** The compute backends ftl knows, fastest first. `node` is `@tensorflow/tfjs-node` (native TensorFlow). */
export const BACKENDS = ['node', 'wasm', 'cpu'] as const;
/** One of {@link BACKENDS}. */
export type BackendName = (typeof BACKENDS)[number];

/** How a backend is brought up: a loader that registers it, and the tfjs name it registers under. */
export interface BackendLoader {
  tfName: string;
  load(): Promise<void>;
}

/** The real loaders. Tests pass their own to exercise the fallback order. */
export const defaultLoaders: Record<BackendName, BackendLoader> = {
  node: {
    tfName: 'tensorflow',
    // Optional dependency: absent where its install script could not download libtensorflow.
    load: async () => {
      const name = '@tensorflow/tfjs-node';
      await import(name);
    },
  },
  wasm: {
    tfName: 'wasm',
    load: async () => {
      await import('@tensorflow/tfjs-backend-wasm');
      // Stock wasm cannot train convolutions; ftl's own gradient kernels fill the gap.
      registerWasmConvKernels();
      // and its transposed matrix products and slices are slow on dense-layer training shapes.
      useWasmSpeedKernels(true);
    },
  },
  cpu: { tfName: 'cpu', load: async () => {} },
};

let chosen: BackendName | undefined;

/** Parses `FTL_BACKEND`; undefined means choose automatically. */
export function parseBackendName(value: string | undefined): BackendName | undefined {
  if (value === undefined || value === '' || value === 'auto') return undefined;
  if ((BACKENDS as readonly string[]).includes(value)) return value as BackendName;
  throw new FtlError(ErrorCode.InvalidConfig, `FTL_BACKEND must be one of ${BACKENDS.join(', ')} or auto (got "${value}")`);
}

async function tryBackend(_name: BackendName, loader: BackendLoader): Promise<string | undefined> {
  try {
    await loader.load();
    if (!(await tf.setBackend(loader.tfName))) return `tf.setBackend('${loader.tfName}') returned false`;
    await tf.ready();
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message.split('\n')[0] : String(err);
  }
}

async function selectBackend(
  options: { force?: BackendName; log?: Logger; loaders?: Record<BackendName, BackendLoader> } = {},
): Promise<BackendName> {
  const loaders = options.loaders ?? defaultLoaders;
  const forced = options.force ?? parseBackendName(process.env['FTL_BACKEND']);
  if (chosen !== undefined && options.loaders === undefined && (forced === undefined || forced === chosen)) {
    return chosen;
  }
  if (forced !== undefined) {
    const failure = await tryBackend(forced, loaders[forced]);
    if (failure !== undefined) {
      throw new FtlError(
        ErrorCode.BackendUnavailable,
        `FTL_BACKEND=${forced} is not available here (${failure}). ` +
          `Unset FTL_BACKEND to choose automatically, or pick another of ${BACKENDS.join(', ')}.`,
      );
    }
    chosen = forced;
  } else {
    const skipped: string[] = [];
    for (const name of BACKENDS) {
      const failure = await tryBackend(name, loaders[name]);
      if (failure === undefined) {
        chosen = name;
        break;
      }
      skipped.push(`${name}: ${failure}`);
    }
    if (chosen === undefined) {
      throw new FtlError(ErrorCode.BackendUnavailable, `no compute backend loaded (${skipped.join('; ')})`);
    }
    if (skipped.length > 0) options.log?.debug('backend-skipped', { reasons: skipped.join('; ') });
  }
  options.log?.info('backend', { backend: chosen, tf: tf.getBackend() });
  return chosen;
}

// One selection at a time: concurrent callers (several in-process clients starting together) share it,
// since interleaved tf.setBackend calls leave tfjs with half-initialised backends.
let inFlight: Promise<BackendName> | undefined;

/**
 * Picks and activates the compute backend once per process: `FTL_BACKEND` (or `options.force`) when
 * set, which fails with a clear error if that backend cannot load; otherwise tfjs-node, then wasm,
 * then cpu. Logs the choice once.
 *
 * @example
 * const backend = await initBackend({ log }); // 'wasm' on a machine without tfjs-node
 */
export function initBackend(options: Parameters<typeof selectBackend>[0] = {}): Promise<BackendName> {
  const run = (): Promise<BackendName> => selectBackend(options);
  inFlight = (inFlight ?? Promise.resolve<unknown>(undefined)).then(run, run);
  return inFlight;
}
