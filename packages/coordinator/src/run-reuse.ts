import { isDeepStrictEqual } from 'node:util';
import { ErrorCode, FtlError } from '@ftl/shared';
import { toRunConfig, type CoordinatorConfig } from './config.js';
import { parseRunConfig, type RunConfig } from './run-config.js';
import type { Store } from './store/store.js';

/**
 * Settings that may change when a run is resumed: they say how long to wait and for whom, not what is
 * trained, so a restart after a crash may loosen them without making the run another run.
 */
const RESUMABLE_CHANGES: ReadonlySet<string> = new Set([
  'runId',
  'minClients',
  'waitTimeoutSeconds',
  'minFitClients',
  'roundDeadlineSeconds',
  'quorumRetries',
]);

/** The event a one-run coordinator appends when it has written a run's model, so a later start can say where it is. */
export const MODEL_EXPORTED_EVENT = 'model-exported';

/** `{a: {b: 1}, c: [2]}` → `[['a.b', 1], ['c', [2]]]`: arrays are values, objects are folders. */
function leaves(value: unknown, prefix = ''): Array<[string, unknown]> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return [[prefix, value]];
  return Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .flatMap(([k, v]) => leaves(v, prefix ? `${prefix}.${k}` : k));
}

function show(value: unknown): string {
  if (value === undefined) return 'unset';
  if (Array.isArray(value)) return `[${value.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))).join(', ')}]`;
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/**
 * The settings in which `now` differs from `before`, as `name old (now new)`, in the order of `before`'s
 * fields; the settings a resume may change are left out.
 */
export function runConfigChanges(before: RunConfig, now: RunConfig): string[] {
  const a = new Map(leaves(before));
  const b = new Map(leaves(now));
  const names = [...new Set([...a.keys(), ...b.keys()])];
  return names
    .filter((name) => !RESUMABLE_CHANGES.has(name.split('.')[0]!) && !isDeepStrictEqual(a.get(name), b.get(name)))
    .map((name) => `${name} ${show(a.get(name))} (now ${show(b.get(name))})`);
}

/**
 * Checks, before anything is loaded, that a one-run coordinator may run `config` on `store`: a new run
 * id, or a run that can resume (created, running, paused) with the settings it was created with. A
 * finished run (completed, stopped, failed) or a run id reused with other settings is refused with
 * FtlError(CONFLICT) saying what the stored run is, instead of waiting for clients or failing deep in
 * round 1 on weights of another shape.
 */
export function checkRunReuse(store: Store, config: CoordinatorConfig): void {
  const stored = store.getRun(config.runId);
  if (!stored) return;
  const id = config.runId;
  const rounds = store.lastCommittedRound(id);
  const events = store.listEvents(id);
  const exported = events.filter((e) => e.type === MODEL_EXPORTED_EVENT).at(-1)?.data as { dir?: unknown } | undefined;
  const model =
    typeof exported?.dir === 'string'
      ? `its model is in ${exported.dir}`
      : rounds === 0
        ? 'it trained no round, so it has no model'
        : 'its model went to the --out it ran with';
  const other = 'use another --run-id';
  switch (stored.status) {
    case 'completed':
      throw new FtlError(ErrorCode.Conflict, `run ${id} already completed ${rounds} rounds in ${store.path}; ${model}; ${other}`);
    case 'stopped':
      // Stopped before any round trained (Ctrl-C while waiting for sites): nothing happened, so it may start again.
      if (rounds === 0) break;
      throw new FtlError(ErrorCode.Conflict, `run ${id} was stopped after ${rounds} rounds in ${store.path}; ${model}; ${other}`);
    case 'failed': {
      const why = events.filter((e) => e.type === 'run-failed').at(-1)?.data as { message?: unknown } | undefined;
      const reason = typeof why?.message === 'string' ? ` (${why.message.split('\n')[0]})` : '';
      throw new FtlError(ErrorCode.Conflict, `run ${id} failed after ${rounds} rounds in ${store.path}${reason}; ${other}`);
    }
    default:
      break;
  }
  let before: RunConfig;
  try {
    before = parseRunConfig(stored.config, `stored config of run ${id}`);
  } catch (err) {
    throw new FtlError(ErrorCode.Conflict, `run ${id} in ${store.path} has a config this version cannot read (${(err as Error).message}); ${other}`, {
      cause: err,
    });
  }
  const changes = runConfigChanges(before, parseRunConfig(toRunConfig(config), 'command line'));
  if (changes.length > 0) {
    throw new FtlError(
      ErrorCode.Conflict,
      `run ${id} already exists in ${store.path} with ${changes.join(', ')}; ${other}, or give its settings again to resume it`,
    );
  }
}
