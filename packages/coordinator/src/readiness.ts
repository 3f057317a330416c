import type { ServedBackbone } from './backbone-server.js';
import type { Store } from './store/store.js';

/** One readiness check: whether it passed, and a line that says what was found. */
export interface ReadinessCheck {
  ok: boolean;
  message: string;
}

/** The answer of `/readyz`: each check named, and the sites the server has now. */
export interface Readiness {
  status: 'ready' | 'unavailable';
  /** The names of the checks that failed, so a probe's log says which at a glance. */
  failing: Array<keyof Readiness['checks']>;
  checks: { database: ReadinessCheck; backbone: ReadinessCheck };
  /** Sites connected now, and ready for the active run. Counts only: the probe needs no token, so it names no site. */
  clients: { connected: number; ready: number };
}

/** What readiness looks at. */
export interface ReadinessSource {
  store: Store | undefined;
  backbone: ServedBackbone | undefined;
  connectedClients(): number;
  readyClients(): number;
}

/**
 * Whether the coordinator can do its work now: its database takes a real write (`Store.probeWrite`, so a
 * closed, read-only, full or locked database fails), and its backbone is loaded and can be served. The
 * database check's message leaves the file's path out (the probe needs no token); the caller logs the
 * full detail.
 */
export function checkReadiness(source: ReadinessSource): { readiness: Readiness; detail?: string } {
  let database: ReadinessCheck = { ok: true, message: 'no database: this coordinator keeps its state in memory' };
  let detail: string | undefined;
  if (source.store) {
    try {
      source.store.probeWrite();
      database = { ok: true, message: 'writable' };
    } catch (err) {
      detail = (err as Error).message;
      // "store <path>: writing the readiness probe failed: <cause>": the cause, without the path.
      const cause = /failed: (.*)$/.exec(detail)?.[1] ?? 'unknown cause';
      database = { ok: false, message: `the database did not take a write (${cause}); see the coordinator's log (readiness-failed)` };
    }
  }
  const bb = source.backbone;
  const backbone: ReadinessCheck =
    bb && bb.files.length > 0 && bb.sha256.length === 64
      ? { ok: true, message: `loaded (sha256 ${bb.sha256.slice(0, 12)}…, ${bb.files.length} files)` }
      : { ok: false, message: 'no backbone is loaded' };
  const checks = { database, backbone };
  const failing = (Object.keys(checks) as Array<keyof typeof checks>).filter((k) => !checks[k].ok);
  return {
    readiness: {
      status: failing.length === 0 ? 'ready' : 'unavailable',
      failing,
      checks,
      clients: { connected: source.connectedClients(), ready: source.readyClients() },
    },
    ...(detail !== undefined ? { detail } : {}),
  };
}
