import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { ErrorCode, FtlError, specsSize, type WeightSpec } from '@ftl/shared';
import type { RoundRecord } from '../round-table.js';
import { checkpointDigest, decodeStrategyState, encodeStrategyState, float32Bytes, float32FromBytes } from './checkpoint-bytes.js';
import { fromLosslessJson, toLosslessJson } from './lossless-json.js';
import { migrate } from './migrations.js';
import { checkRunTransition, RUN_STATUSES, type RunReason, type RunStatus } from '../run-states.js';
import { MAX_SITE_MESSAGE, type SiteState, type SiteStateKind } from '../site-state.js';

export { RUN_STATUSES, type RunStatus } from '../run-states.js';

/** A run as stored: its configuration is kept so a restarted coordinator can resume it as it was. */
export interface StoredRun {
  id: string;
  config: unknown;
  status: RunStatus;
  /** ISO 8601. */
  createdAt: string;
  /** ISO 8601; changes with the status and with every recorded round. */
  updatedAt: string;
  /** Why the run is where it is, as its latest move recorded it (see {@link RunReason}); absent when it gave none. */
  reason?: RunReason;
}

/** An update the coordinator refused in a round, kept to explain the round afterwards. */
export interface RejectedUpdate {
  clientId: string;
  reason: string;
  message: string;
}

/** What a finished round leaves behind, with or without a checkpoint. */
export interface RoundOutcome {
  record: RoundRecord;
  /** Clients whose updates were accepted. */
  participants: string[];
  rejected: RejectedUpdate[];
}

/** A recorded round of a run. */
export interface StoredRound extends RoundOutcome {
  runId: string;
  round: number;
  /** ISO 8601. */
  createdAt: string;
}

/** What a checkpoint holds: everything the coordinator needs to continue after its round. */
export interface CheckpointData {
  modelVersion: number;
  specs: WeightSpec[];
  values: Float32Array;
  /** Server-side strategy state, e.g. FedAdam's moments, from `Strategy.state()`. */
  strategyState: Record<string, Float32Array>;
}

/** A checkpoint read back and verified against its digest. */
export interface Checkpoint extends CheckpointData {
  runId: string;
  round: number;
  /** Hex SHA-256 over specs JSON, weight bytes and strategy state, as recorded at commit. */
  sha256: string;
}

/** A client allowed to join, identified by name, authenticated by a token of which only a hash is kept. */
export interface StoredClient {
  name: string;
  tokenHash: string;
  /** ISO 8601. */
  createdAt: string;
  /** ISO 8601 of the last {@link Store.touchClient}, null if never seen. */
  lastSeen: string | null;
  revoked: boolean;
}

/** One entry of the append-only event log. */
export interface StoredEvent {
  id: number;
  runId: string | null;
  type: string;
  data: unknown;
  /** ISO 8601. */
  at: string;
}

interface RunRow {
  id: string;
  config: string;
  status: string;
  created_at: string;
  updated_at: string;
  reason_message: string | null;
  reason_phase: string | null;
  reason_round: number | null;
  reason_code: string | null;
}
interface SiteRow {
  client: string;
  state: string;
  round: number | null;
  message: string | null;
  at: string;
}
interface RoundRow {
  run_id: string;
  round: number;
  record: string;
  participants: string;
  rejected: string;
  created_at: string;
}
interface CheckpointRow {
  run_id: string;
  round: number;
  model_version: number;
  specs: unknown;
  weights: unknown;
  strategy_state: unknown;
  sha256: unknown;
}
interface ClientRow {
  name: string;
  token_hash: string;
  created_at: string;
  last_seen: string | null;
  revoked: number;
}
interface EventRow {
  id: number;
  run_id: string | null;
  type: string;
  data: string;
  at: string;
}

const now = () => new Date().toISOString();

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function toRun(row: RunRow): StoredRun {
  const reason: RunReason | undefined =
    row.reason_message === null
      ? undefined
      : {
          message: row.reason_message,
          phase: (row.reason_phase ?? 'idle') as RunReason['phase'],
          round: row.reason_round ?? 0,
          ...(row.reason_code !== null ? { code: row.reason_code } : {}),
        };
  return {
    id: row.id,
    config: fromLosslessJson(row.config),
    status: row.status as RunStatus,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    ...(reason ? { reason } : {}),
  };
}

function toSiteState(row: SiteRow): SiteState {
  return {
    client: row.client,
    state: row.state as SiteStateKind,
    ...(row.round !== null ? { round: row.round } : {}),
    ...(row.message !== null ? { message: row.message } : {}),
    at: row.at,
  };
}

function toClient(row: ClientRow): StoredClient {
  return { name: row.name, tokenHash: row.token_hash, createdAt: row.created_at, lastSeen: row.last_seen, revoked: row.revoked !== 0 };
}

function nonEmpty(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new FtlError(ErrorCode.InvalidConfig, `${what} must be a non-empty string (got ${JSON.stringify(value)})`);
  }
  return value;
}

/**
 * The coordinator's persistent state in one SQLite file: runs, their rounds and checkpoints, registered
 * clients and an event log. It is what lets a coordinator restart and continue a run from its last
 * checkpoint without aggregating any round twice. Synchronous (better-sqlite3): every call is a short
 * local transaction, and the coordinator must not move on before a round is durably committed.
 *
 * @example
 * const store = Store.open('runs/ftl.db');
 * store.createRun('r1', config);
 * const sha = store.commitRound('r1', { record, participants, rejected }, { modelVersion, specs, values, strategyState });
 * const resumeFrom = store.latestCheckpoint('r1');
 */
export class Store {
  private readonly changeListeners = new Set<(runId: string | null) => void>();

  private constructor(
    private readonly db: Database.Database,
    /** The database file as given to {@link Store.open}; error messages name it. */
    readonly path: string,
    /** Schema version after migrations. */
    readonly schemaVersion: number,
  ) {}

  /**
   * Opens the database at `path`, creating its folder and the file if needed, and migrates it to the
   * current schema. WAL mode (readers do not block the writer), foreign keys on. `':memory:'` gives a
   * throwaway store. Throws FtlError(InvalidConfig) naming the path when the folder cannot be created
   * or the file is not a usable SQLite database.
   */
  static open(path: string): Store {
    if (path !== ':memory:') {
      const dir = dirname(resolve(path));
      try {
        mkdirSync(dir, { recursive: true });
      } catch (err) {
        throw new FtlError(
          ErrorCode.InvalidConfig,
          `cannot create the folder ${dir} for the store ${path}: ${errorMessage(err)}; choose a database path in a writable folder`,
          { cause: err },
        );
      }
    }
    let db: Database.Database | undefined;
    try {
      db = new Database(path);
      db.pragma('journal_mode = WAL');
      db.pragma('foreign_keys = ON');
      const version = migrate(db, path);
      return new Store(db, path, version);
    } catch (err) {
      db?.close();
      if (err instanceof FtlError) throw err;
      throw new FtlError(
        ErrorCode.InvalidConfig,
        `cannot open the store ${path}: ${errorMessage(err)}; the path must be a SQLite database written by ftl, or a new file in a writable folder`,
        { cause: err },
      );
    }
  }

  /** Closes the database; further calls on this store throw FtlError(StorageError). Closing twice is harmless. */
  close(): void {
    if (this.db.open) this.db.close();
  }

  /**
   * Calls `listener` after every write that changes what an operator sees (a run created or moved, a
   * round recorded, an event appended, a site's state), with the run's id (null for events outside
   * runs), so a live view is pushed when the data change instead of being polled. A listener's error is
   * its own: the write has already happened. Returns the unsubscribe function.
   */
  onChange(listener: (runId: string | null) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  private changed(runId: string | null): void {
    for (const listener of [...this.changeListeners]) {
      try {
        listener(runId);
      } catch {
        // A watcher's fault never undoes or fails the write it was told of.
      }
    }
  }

  /** Creates a run in status `created`. Throws FtlError(Conflict) if a run with this id exists. */
  createRun(id: string, config: unknown): StoredRun {
    nonEmpty(id, 'a run id');
    return this.guard(`creating run ${id}`, () => {
      const at = now();
      const configJson = toLosslessJson(config);
      this.db
        .transaction(() => {
          if (this.getRun(id)) {
            throw new FtlError(ErrorCode.Conflict, `run ${id} already exists in ${this.path}; resume it or choose another run id`);
          }
          this.db
            .prepare('INSERT INTO runs (id, config, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?)')
            .run(id, configJson, 'created', at, at);
        })
        .immediate();
      this.changed(id);
      return { id, config: fromLosslessJson(configJson), status: 'created', createdAt: at, updatedAt: at };
    });
  }

  /** The run with this id, or undefined. */
  getRun(id: string): StoredRun | undefined {
    return this.guard(`reading run ${id}`, () => {
      const row = this.db.prepare('SELECT * FROM runs WHERE id = ?').get(id) as RunRow | undefined;
      return row && toRun(row);
    });
  }

  /** Every run, newest first. */
  listRuns(): StoredRun[] {
    return this.guard('listing runs', () =>
      (this.db.prepare('SELECT * FROM runs ORDER BY created_at DESC, rowid DESC').all() as RunRow[]).map(toRun),
    );
  }

  /**
   * Moves a run to `to` along the lifecycle table (run-states.ts), reading its status and writing the new
   * one with `reason` (why it moved; none clears the previous one) in one transaction; returns the status
   * it left. Throws FtlError(NotFound) for an unknown run and FtlError(InternalError) naming both statuses
   * for a move the table does not have. Every status change the coordinator makes goes through here.
   *
   * @example
   * store.moveRun('r1', 'failed', { message: 'only 0 of the 2 clients needed were ready after 60 s; …', phase: 'waiting-for-clients', round: 0, code: 'TIMEOUT' });
   */
  moveRun(id: string, to: RunStatus, reason?: RunReason): RunStatus {
    const left = this.guard(`setting the status of run ${id}`, () =>
      this.db
        .transaction(() => {
          const row = this.db.prepare('SELECT status FROM runs WHERE id = ?').get(id) as { status: RunStatus } | undefined;
          if (!row) throw this.unknownRun(id);
          checkRunTransition(id, row.status, to);
          this.db
            .prepare(
              'UPDATE runs SET status = ?, updated_at = ?, reason_message = ?, reason_phase = ?, reason_round = ?, reason_code = ? WHERE id = ?',
            )
            .run(to, now(), reason?.message ?? null, reason?.phase ?? null, reason?.round ?? null, reason?.code ?? null, id);
          return row.status;
        })
        .immediate(),
    );
    this.changed(id);
    return left;
  }

  /**
   * Records `state` as the site's last state in run `runId`, replacing the one before (its message cut
   * to {@link MAX_SITE_MESSAGE}). The run need not be stored yet: a one-run coordinator sees sites
   * connect before it stores its run.
   */
  recordSiteState(runId: string, state: SiteState): void {
    nonEmpty(runId, 'a run id');
    nonEmpty(state.client, 'a client name');
    this.guard(`recording the state of site ${state.client} in run ${runId}`, () => {
      this.db
        .prepare(
          `INSERT INTO run_sites (run_id, client, state, round, message, at) VALUES (?, ?, ?, ?, ?, ?)
          ON CONFLICT (run_id, client) DO UPDATE SET state = excluded.state, round = excluded.round, message = excluded.message, at = excluded.at`,
        )
        .run(runId, state.client, state.state, state.round ?? null, state.message?.slice(0, MAX_SITE_MESSAGE) ?? null, state.at);
    });
    this.changed(runId);
  }

  /** Each site's last state in run `runId`, by name; empty when none was recorded. */
  listSiteStates(runId: string): SiteState[] {
    return this.guard(`listing the sites of run ${runId}`, () =>
      (this.db.prepare('SELECT client, state, round, message, at FROM run_sites WHERE run_id = ? ORDER BY client').all(runId) as SiteRow[]).map(
        toSiteState,
      ),
    );
  }

  /**
   * Proves the database takes a write now: one committed write of a single row, waiting at most
   * `waitMs` for another program's lock instead of SQLite's usual 5 s (a readiness probe must answer
   * quickly). Throws FtlError(StorageError) naming the file and the cause when it cannot: closed, read-only,
   * full, removed, or locked by another program.
   */
  probeWrite(waitMs = 250): void {
    this.guard('writing the readiness probe', () => {
      const before = this.db.pragma('busy_timeout', { simple: true }) as number;
      this.db.pragma(`busy_timeout = ${Math.max(0, Math.round(waitMs))}`);
      try {
        this.db.prepare('INSERT INTO health_probe (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at').run(now());
      } finally {
        this.db.pragma(`busy_timeout = ${before}`);
      }
    });
  }

  /**
   * Sets a run's status as given, without the lifecycle check of {@link moveRun}: for setting up a
   * database in tests and repairing one by hand; the coordinator never calls it. Throws FtlError(NotFound)
   * for an unknown run, FtlError(InvalidConfig) for an unknown status.
   */
  setRunStatus(id: string, status: RunStatus): void {
    if (!RUN_STATUSES.includes(status)) {
      throw new FtlError(ErrorCode.InvalidConfig, `run status must be one of ${RUN_STATUSES.join(', ')} (got ${JSON.stringify(status)})`);
    }
    this.guard(`setting the status of run ${id}`, () => {
      const { changes } = this.db.prepare('UPDATE runs SET status = ?, updated_at = ? WHERE id = ?').run(status, now(), id);
      if (changes === 0) throw this.unknownRun(id);
    });
  }

  /**
   * Records a completed round AND its checkpoint atomically (one transaction): either both are stored or
   * neither. A round number already recorded for the run is refused with FtlError(Conflict, 'round N
   * of run X is already committed'): this is what guarantees no round is aggregated twice. Values that
   * do not match their specs are refused (FtlError WeightsMismatch) before anything is written.
   * Returns the checkpoint's hex SHA-256 over specs JSON + weight bytes + strategy state (sorted keys).
   */
  commitRound(runId: string, round: RoundOutcome, checkpoint: CheckpointData): string {
    const n = this.checkRound(runId, round);
    const expected = specsSize(checkpoint.specs);
    if (!(checkpoint.values instanceof Float32Array) || checkpoint.values.length !== expected) {
      throw new FtlError(
        ErrorCode.WeightsMismatch,
        `the checkpoint of round ${n} of run ${runId} holds ${checkpoint.values?.length} values but its specs describe ${expected}; nothing was stored`,
      );
    }
    if (!Number.isSafeInteger(checkpoint.modelVersion) || checkpoint.modelVersion < 0) {
      throw new FtlError(ErrorCode.InvalidConfig, `a checkpoint's model version must be a non-negative integer (got ${checkpoint.modelVersion})`);
    }
    const specs = JSON.stringify(checkpoint.specs);
    const weights = float32Bytes(checkpoint.values);
    const state = encodeStrategyState(checkpoint.strategyState);
    const sha256 = checkpointDigest(specs, weights, state);
    this.guard(`committing round ${n} of run ${runId}`, () => {
      this.db
        .transaction(() => {
          const at = this.insertRound(runId, n, round);
          this.db
            .prepare(`INSERT INTO checkpoints (run_id, round, model_version, specs, weights, strategy_state, sha256, created_at)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
            .run(runId, n, checkpoint.modelVersion, specs, weights, state, sha256, at);
        })
        .immediate();
    });
    this.changed(runId);
    return sha256;
  }

  /** Records a failed round (e.g. no quorum) without a checkpoint; refused like {@link commitRound} if already recorded. */
  recordFailedRound(runId: string, round: RoundOutcome): void {
    const n = this.checkRound(runId, round);
    this.guard(`recording failed round ${n} of run ${runId}`, () => {
      this.db.transaction(() => this.insertRound(runId, n, round)).immediate();
    });
    this.changed(runId);
  }

  /** The run's recorded rounds, committed and failed, ascending. */
  listRounds(runId: string): StoredRound[] {
    return this.guard(`listing the rounds of run ${runId}`, () =>
      (this.db.prepare('SELECT * FROM rounds WHERE run_id = ? ORDER BY round').all(runId) as RoundRow[]).map((row) => ({
        runId: row.run_id,
        round: row.round,
        record: fromLosslessJson(row.record) as RoundRecord,
        participants: fromLosslessJson(row.participants) as string[],
        rejected: fromLosslessJson(row.rejected) as RejectedUpdate[],
        createdAt: row.created_at,
      })),
    );
  }

  /** Highest round number recorded for the run (committed or failed: either way it is done), 0 if none. */
  lastCommittedRound(runId: string): number {
    return this.guard(
      `reading the last round of run ${runId}`,
      () => (this.db.prepare('SELECT MAX(round) AS n FROM rounds WHERE run_id = ?').get(runId) as { n: number | null }).n ?? 0,
    );
  }

  /**
   * Deletes the run's rounds (and their checkpoints) after `round`, in one transaction, and returns how
   * many rounds went. For resuming from an older checkpoint when newer ones are damaged: the rounds
   * after it must be run again, and {@link commitRound} would refuse their numbers otherwise.
   */
  discardRoundsAfter(runId: string, round: number): number {
    return this.guard(`discarding the rounds of run ${runId} after round ${round}`, () =>
      this.db
        .transaction(() => {
          this.db.prepare('DELETE FROM checkpoints WHERE run_id = ? AND round > ?').run(runId, round);
          return this.db.prepare('DELETE FROM rounds WHERE run_id = ? AND round > ?').run(runId, round).changes;
        })
        .immediate(),
    );
  }

  /**
   * The newest checkpoint whose stored bytes still hash to its recorded sha256; corrupt or truncated ones
   * are skipped (each skip calls onCorrupt(round, reason)), so a damaged latest checkpoint falls back to the
   * previous one. undefined if none is valid.
   */
  latestCheckpoint(runId: string, onCorrupt?: (round: number, reason: string) => void): Checkpoint | undefined {
    // Round numbers first, rows one at a time: no blob is read that is not needed, and no statement is
    // open while onCorrupt runs (it may write to this store).
    const rounds = this.guard(
      `listing the checkpoints of run ${runId}`,
      () => this.db.prepare('SELECT round FROM checkpoints WHERE run_id = ? ORDER BY round DESC').pluck().all(runId) as number[],
    );
    for (const round of rounds) {
      const row = this.guard(
        `reading the checkpoint of round ${round} of run ${runId}`,
        () => this.db.prepare('SELECT * FROM checkpoints WHERE run_id = ? AND round = ?').get(runId, round) as CheckpointRow | undefined,
      );
      if (!row) continue;
      const verified = verifyCheckpoint(row);
      if (typeof verified !== 'string') return verified;
      onCorrupt?.(round, verified);
    }
    return undefined;
  }

  /** Registers a client. Throws FtlError(Conflict) if the name is taken. */
  addClient(name: string, tokenHash: string): StoredClient {
    nonEmpty(name, 'a client name');
    nonEmpty(tokenHash, 'a token hash');
    return this.guard(`adding client ${name}`, () => {
      const at = now();
      this.db
        .transaction(() => {
          if (this.getClient(name)) {
            throw new FtlError(ErrorCode.Conflict, `client ${name} is already registered in ${this.path}; choose another name or revoke it first`);
          }
          this.db
            .prepare('INSERT INTO clients (name, token_hash, created_at, last_seen, revoked) VALUES (?, ?, ?, NULL, 0)')
            .run(name, tokenHash, at);
        })
        .immediate();
      return { name, tokenHash, createdAt: at, lastSeen: null, revoked: false };
    });
  }

  /** The client with this name, or undefined. */
  getClient(name: string): StoredClient | undefined {
    return this.guard(`reading client ${name}`, () => {
      const row = this.db.prepare('SELECT * FROM clients WHERE name = ?').get(name) as ClientRow | undefined;
      return row && toClient(row);
    });
  }

  /** Every registered client (revoked ones too), by name. */
  listClients(): StoredClient[] {
    return this.guard('listing clients', () => (this.db.prepare('SELECT * FROM clients ORDER BY name').all() as ClientRow[]).map(toClient));
  }

  /** Revokes a client's token; revoking twice is harmless. Throws FtlError(NotFound) for an unknown client. */
  revokeClient(name: string): void {
    this.guard(`revoking client ${name}`, () => {
      if (this.db.prepare('UPDATE clients SET revoked = 1 WHERE name = ?').run(name).changes === 0) throw this.unknownClient(name);
    });
  }

  /** Sets the client's lastSeen to now. Throws FtlError(NotFound) for an unknown client. */
  touchClient(name: string): void {
    this.guard(`touching client ${name}`, () => {
      if (this.db.prepare('UPDATE clients SET last_seen = ? WHERE name = ?').run(now(), name).changes === 0) throw this.unknownClient(name);
    });
  }

  /**
   * Appends to the event log (never updated or deleted), for auditing what happened to a run. `runId`
   * null for events outside any run; otherwise the run must exist.
   */
  appendEvent(runId: string | null, type: string, data: unknown): void {
    nonEmpty(type, 'an event type');
    this.guard(`appending a ${type} event`, () => {
      try {
        this.db.prepare('INSERT INTO events (run_id, type, data, at) VALUES (?, ?, ?, ?)').run(runId, type, toLosslessJson(data), now());
      } catch (err) {
        // The foreign key on events.run_id is the check: no extra read on this frequent write.
        if (runId !== null && (err as { code?: unknown }).code === 'SQLITE_CONSTRAINT_FOREIGNKEY') throw this.unknownRun(runId);
        throw err;
      }
    });
    this.changed(runId);
  }

  /** Events in the order appended; only the run's when `runId` is given. */
  listEvents(runId?: string): StoredEvent[] {
    return this.guard('listing events', () => {
      const rows = (
        runId === undefined
          ? this.db.prepare('SELECT * FROM events ORDER BY id').all()
          : this.db.prepare('SELECT * FROM events WHERE run_id = ? ORDER BY id').all(runId)
      ) as EventRow[];
      return rows.map((r) => ({ id: r.id, runId: r.run_id, type: r.type, data: fromLosslessJson(r.data), at: r.at }));
    });
  }

  /** Validates a round outcome and the run it belongs to; returns the round number. */
  private checkRound(runId: string, round: RoundOutcome): number {
    const n = round.record?.round;
    if (!Number.isSafeInteger(n) || n < 1) {
      throw new FtlError(ErrorCode.InvalidConfig, `a round record's round must be a positive integer (got ${n}); nothing was stored`);
    }
    if (!Array.isArray(round.participants) || !Array.isArray(round.rejected)) {
      throw new FtlError(ErrorCode.InvalidConfig, `round ${n} of run ${runId} needs participants and rejected arrays; nothing was stored`);
    }
    if (!this.getRun(runId)) throw this.unknownRun(runId);
    return n;
  }

  /** Inserts the round row inside the caller's transaction, refusing a number already recorded. */
  private insertRound(runId: string, n: number, round: RoundOutcome): string {
    const exists = this.db.prepare('SELECT 1 FROM rounds WHERE run_id = ? AND round = ?').get(runId, n);
    if (exists) {
      throw new FtlError(
        ErrorCode.Conflict,
        `round ${n} of run ${runId} is already committed; a round is never aggregated twice, so resume with round ${this.lastCommittedRound(runId) + 1}`,
      );
    }
    const at = now();
    this.db
      .prepare(`INSERT INTO rounds (run_id, round, status, record, participants, rejected, created_at)
      VALUES (?, ?, ?, ?, ?, ?, ?)`)
      .run(runId, n, round.record.status, toLosslessJson(round.record), toLosslessJson(round.participants), toLosslessJson(round.rejected), at);
    this.db.prepare('UPDATE runs SET updated_at = ? WHERE id = ?').run(at, runId);
    return at;
  }

  private unknownRun(id: string): FtlError {
    return new FtlError(ErrorCode.NotFound, `run ${id} does not exist in ${this.path}; create it first`);
  }

  private unknownClient(name: string): FtlError {
    return new FtlError(ErrorCode.NotFound, `client ${name} is not registered in ${this.path}; add it first (ftl-coordinator clients add ${name})`);
  }

  /**
   * Runs `fn`, turning SQLite and other unexpected errors (a full disk, a file removed or locked, a closed
   * store) into FtlError(StorageError) that names the file: the fault is the server's, not the caller's.
   */
  private guard<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof FtlError) throw err;
      throw new FtlError(ErrorCode.StorageError, `store ${this.path}: ${what} failed: ${errorMessage(err)}`, { cause: err });
    }
  }
}

/** The checkpoint in `row` if its bytes match its digest and decode cleanly, else why not. */
function verifyCheckpoint(row: CheckpointRow): Checkpoint | string {
  const { specs, weights, strategy_state: state, sha256 } = row;
  if (typeof specs !== 'string') return 'specs are not JSON text';
  if (!Buffer.isBuffer(weights)) return 'weights are not a blob';
  if (!Buffer.isBuffer(state)) return 'strategy state is not a blob';
  if (typeof sha256 !== 'string') return 'the recorded sha256 is missing';
  const actual = checkpointDigest(specs, weights, state);
  if (actual !== sha256) {
    let detail = '';
    try {
      const expected = specsSize(JSON.parse(specs) as WeightSpec[]) * 4;
      if (expected !== weights.byteLength)
        detail = ` (weights are ${weights.byteLength} bytes where the specs describe ${expected}: truncated or overwritten)`;
    } catch {
      detail = ' (specs are not valid JSON)';
    }
    return `stored bytes hash to ${actual} but the checkpoint recorded ${sha256}${detail}`;
  }
  try {
    const parsed = JSON.parse(specs) as WeightSpec[];
    const values = float32FromBytes(weights, 'weights');
    if (values.length !== specsSize(parsed)) return `weights hold ${values.length} values but the specs describe ${specsSize(parsed)}`;
    return {
      runId: row.run_id,
      round: row.round,
      modelVersion: row.model_version,
      specs: parsed,
      values,
      strategyState: decodeStrategyState(state),
      sha256,
    };
  } catch (err) {
    return `checkpoint does not decode: ${errorMessage(err)}`;
  }
}
