import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { ErrorCode, isFtlError, type WeightSpec } from '@ftl/shared';
import { expectFtlError, thrownBy } from '@ftl/shared/testing';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { RoundRecord } from '../round-table.js';
import { migrate, MIGRATIONS } from './migrations.js';
import { Store, type CheckpointData, type RoundOutcome } from './store.js';

let dir: string;
let dbPath: string;
const open: Store[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ftl-store-'));
  dbPath = join(dir, 'nested', 'ftl.db');
});
afterEach(() => {
  open.splice(0).forEach((s) => s.close());
  rmSync(dir, { recursive: true, force: true });
});

function openStore(path = dbPath): Store {
  const s = Store.open(path);
  open.push(s);
  return s;
}

/** A second, raw connection to the same file: the way a crash or a disk fault changes bytes behind the store. */
function raw<T>(fn: (db: Database.Database) => T): T {
  const db = new Database(dbPath);
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

const specs: WeightSpec[] = [
  { name: 'dense/kernel', shape: [3, 2], dtype: 'float32' },
  { name: 'dense/bias', shape: [2], dtype: 'float32' },
];

function record(round: number, over: Partial<RoundRecord> = {}): RoundRecord {
  return {
    round,
    status: 'aggregated',
    selected: 3,
    accepted: 2,
    rejected: 1,
    failed: 0,
    trainLoss: 0.5,
    valLoss: 0.4,
    valAccuracy: 0.9,
    evalClients: 2,
    bytesIn: 1000,
    bytesOut: 2000,
    seconds: 1.5,
    modelVersion: round,
    ...over,
  };
}

function outcome(round: number, over: Partial<RoundRecord> = {}): RoundOutcome {
  return {
    record: record(round, over),
    participants: ['alice', 'bob'],
    rejected: [{ clientId: 'mallory', reason: 'non-finite', message: 'value 3 of the update is NaN' }],
  };
}

/** Values that exercise every bit pattern class: signed zero, subnormals, extremes, NaN payloads. */
function checkpoint(seed: number): CheckpointData {
  const values = new Float32Array(8);
  const bits = new Uint32Array(values.buffer);
  bits.set([0x80000000, 0x00000001, 0x7f7fffff, 0x7fc00001, 0xff800000, 0x3f800000 + seed, 0x12345678, 0xdeadbeef >>> 0]);
  return {
    modelVersion: seed,
    specs,
    values,
    strategyState: { v: Float32Array.from([seed, 2e-30, -0]), m: Float32Array.from([0.1, seed * 0.25]), empty: new Float32Array(0) },
  };
}

function bitsOf(a: Float32Array): number[] {
  return [...new Uint32Array(a.buffer, a.byteOffset, a.length)];
}

describe('opening and migrations', () => {
  test('creates the folder and file, runs the migrations once, and a reopened store keeps its data and schema version', () => {
    const first = openStore();
    expect(first.schemaVersion).toBe(MIGRATIONS.length);
    first.createRun('r1', { rounds: 3 });
    first.close();
    const appliedBefore = raw((db) => db.prepare('SELECT version, applied_at FROM schema_migrations ORDER BY version').all());
    expect(appliedBefore).toHaveLength(MIGRATIONS.length);

    const second = openStore();
    expect(second.schemaVersion).toBe(MIGRATIONS.length);
    expect(second.getRun('r1')?.config).toEqual({ rounds: 3 });
    second.close();
    // Same rows with the same timestamps: nothing was applied again.
    expect(raw((db) => db.prepare('SELECT version, applied_at FROM schema_migrations ORDER BY version').all())).toEqual(appliedBefore);
  });

  test('uses WAL journaling, so a reader on another connection does not block the writer', () => {
    openStore().close();
    expect(raw((db) => db.pragma('journal_mode', { simple: true }))).toBe('wal');
  });

  test('refuses a database written with a newer schema than this code knows', () => {
    openStore().close();
    raw((db) => db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(MIGRATIONS.length + 1, 'later'));
    expectFtlError(
      () => openStore(),
      ErrorCode.InvalidConfig,
      new RegExp(`schema version ${MIGRATIONS.length + 1} but this ftl knows only up to ${MIGRATIONS.length}`),
    );
  });

  test.each<[string, (dir: string) => string, RegExp]>([
    [
      'a folder that cannot be created (a file stands in its way)',
      (d) => {
        writeFileSync(join(d, 'blocker'), 'x');
        return join(d, 'blocker', 'sub', 'ftl.db');
      },
      /cannot create the folder .*blocker.* for the store .*blocker.*ftl\.db/,
    ],
    [
      'a file that is not a SQLite database',
      (d) => {
        const p = join(d, 'notes.txt');
        writeFileSync(p, 'these are my notes, not a database\n'.repeat(200));
        return p;
      },
      /cannot open the store .*notes\.txt: file is not a database/,
    ],
    ['a folder in place of the file', (d) => d, /cannot open the store .*ftl-store-/],
  ])('opening %s gives a clear FtlError naming the path', (_, makePath, message) => {
    const path = makePath(dir);
    const before = (() => {
      try {
        return readFileSync(path);
      } catch {
        return undefined;
      }
    })();
    expectFtlError(() => openStore(path), ErrorCode.InvalidConfig, message);
    // The user's file is left as it was.
    if (before) expect(readFileSync(path).equals(before)).toBe(true);
  });
});

describe('runs', () => {
  test('a run is created, read back with its config, moves through statuses, and is listed newest first', () => {
    const store = openStore();
    const created = store.createRun('r1', { rounds: 5, strategy: { name: 'fedavg' }, cap: Infinity });
    expect(created).toMatchObject({ id: 'r1', status: 'created' });
    expect(store.getRun('r1')).toEqual(created);
    expect(store.getRun('r1')?.config).toEqual({ rounds: 5, strategy: { name: 'fedavg' }, cap: Infinity });
    store.createRun('r2', null);
    store.createRun('r3', ['a']);

    store.setRunStatus('r1', 'running');
    store.setRunStatus('r1', 'completed');
    const r1 = store.getRun('r1')!;
    expect(r1.status).toBe('completed');
    expect(r1.createdAt).toBe(created.createdAt);
    expect(r1.updatedAt >= created.updatedAt).toBe(true);
    expect(store.listRuns().map((r) => r.id)).toEqual(['r3', 'r2', 'r1']);
    expect(store.getRun('nope')).toBeUndefined();
  });

  test.each<[string, (s: Store) => unknown, ErrorCode, RegExp]>([
    ['creating a run whose id exists', (s) => s.createRun('r1', {}), ErrorCode.Conflict, /run r1 already exists/],
    ['setting the status of an unknown run', (s) => s.setRunStatus('nope', 'running'), ErrorCode.NotFound, /run nope does not exist/],
    ['setting a status that is not one', (s) => s.setRunStatus('r1', 'exploded' as never), ErrorCode.InvalidConfig, /run status must be one of/],
    ['creating a run with an empty id', (s) => s.createRun('', {}), ErrorCode.InvalidConfig, /run id must be a non-empty string/],
  ])('%s is refused (%s) and changes nothing', (_, act, code, message) => {
    const store = openStore();
    store.createRun('r1', { keep: true });
    expectFtlError(() => act(store), code, message);
    expect(store.listRuns()).toHaveLength(1);
    expect(store.getRun('r1')).toMatchObject({ status: 'created', config: { keep: true } });
  });
});

describe('rounds and checkpoints', () => {
  test('commitRound stores the round and a checkpoint whose weights and strategy state come back bit for bit', () => {
    const store = openStore();
    store.createRun('r1', {});
    const cp = checkpoint(1);
    const sha = store.commitRound('r1', outcome(1, { valLoss: NaN, valAccuracy: NaN }), cp);
    expect(sha).toMatch(/^[0-9a-f]{64}$/);
    store.close();

    const reopened = openStore();
    const got = reopened.latestCheckpoint('r1')!;
    expect(got).toMatchObject({ runId: 'r1', round: 1, modelVersion: 1, specs, sha256: sha });
    expect(bitsOf(got.values)).toEqual(bitsOf(cp.values));
    expect(got.values.byteOffset % 4).toBe(0);
    expect(Object.keys(got.strategyState).sort()).toEqual(['empty', 'm', 'v']);
    for (const [k, v] of Object.entries(cp.strategyState)) expect(bitsOf(got.strategyState[k]!)).toEqual(bitsOf(v));

    const rounds = reopened.listRounds('r1');
    expect(rounds).toHaveLength(1);
    expect(rounds[0]).toMatchObject({ runId: 'r1', round: 1, participants: ['alice', 'bob'], rejected: outcome(1).rejected });
    // NaN losses (a round without evaluation) survive the JSON column.
    expect(rounds[0]!.record).toEqual(record(1, { valLoss: NaN, valAccuracy: NaN }));
    expect(reopened.lastCommittedRound('r1')).toBe(1);
  });

  test('the digest covers weights, specs and strategy state, and does not depend on key order', () => {
    const stores = [openStore(), openStore(join(dir, 'other.db'))];
    stores.forEach((s) => ['a', 'b', 'c', 'd', 'e'].forEach((id) => s.createRun(id, {})));
    const base = checkpoint(1);
    const [s] = stores as [Store, Store];
    const sha = s.commitRound('a', outcome(1), base);
    const reordered = { ...base, strategyState: { m: base.strategyState['m']!, empty: base.strategyState['empty']!, v: base.strategyState['v']! } };
    expect(s.commitRound('b', outcome(1), reordered)).toBe(sha);
    const flipped = Float32Array.from(base.values);
    flipped[5] = 2;
    expect(s.commitRound('c', outcome(1), { ...base, values: flipped })).not.toBe(sha);
    expect(s.commitRound('d', outcome(1), { ...base, strategyState: { ...base.strategyState, m: Float32Array.from([0.1, 0.5]) } })).not.toBe(sha);
    const renamed = specs.map((sp, i) => (i === 0 ? { ...sp, name: 'other/kernel' } : sp));
    expect(s.commitRound('e', outcome(1), { ...base, specs: renamed })).not.toBe(sha);
  });

  test('committing a round number twice is refused and leaves the first commit intact', () => {
    const store = openStore();
    store.createRun('r1', {});
    const first = checkpoint(1);
    const sha = store.commitRound('r1', outcome(1), first);
    expectFtlError(
      () => store.commitRound('r1', outcome(1, { trainLoss: 9 }), checkpoint(2)),
      ErrorCode.Conflict,
      /round 1 of run r1 is already committed/,
    );
    expectFtlError(
      () => store.recordFailedRound('r1', outcome(1, { status: 'no-quorum' })),
      ErrorCode.Conflict,
      /round 1 of run r1 is already committed/,
    );
    const rounds = store.listRounds('r1');
    expect(rounds).toHaveLength(1);
    expect(rounds[0]!.record.trainLoss).toBe(0.5);
    const got = store.latestCheckpoint('r1')!;
    expect(got.sha256).toBe(sha);
    expect(bitsOf(got.values)).toEqual(bitsOf(first.values));
  });

  test('weights that do not match their specs are refused before anything is written', () => {
    const store = openStore();
    store.createRun('r1', {});
    const bad = { ...checkpoint(1), values: new Float32Array(7) };
    expectFtlError(
      () => store.commitRound('r1', outcome(1), bad),
      ErrorCode.WeightsMismatch,
      /holds 7 values but its specs describe 8; nothing was stored/,
    );
    expect(store.listRounds('r1')).toEqual([]);
    expect(store.lastCommittedRound('r1')).toBe(0);
    expect(store.latestCheckpoint('r1')).toBeUndefined();
  });

  test('commitRound is atomic: when SQLite refuses the checkpoint row, the round row is rolled back with it', () => {
    const store = openStore();
    store.createRun('r1', {});
    // A trigger makes the checkpoint insert fail inside the transaction, after the round row was written.
    raw((db) => db.exec("CREATE TRIGGER fail_checkpoint BEFORE INSERT ON checkpoints BEGIN SELECT RAISE(ABORT, 'disk trouble'); END"));
    const err = thrownBy(() => store.commitRound('r1', outcome(1), checkpoint(1)));
    expect(isFtlError(err, ErrorCode.StorageError)).toBe(true);
    expect((err as Error).message).toMatch(/store .*ftl\.db: committing round 1 of run r1 failed: disk trouble/);
    expect(store.listRounds('r1')).toEqual([]);
    expect(store.lastCommittedRound('r1')).toBe(0);

    // Once the fault is gone the same round commits normally.
    raw((db) => db.exec('DROP TRIGGER fail_checkpoint'));
    store.commitRound('r1', outcome(1), checkpoint(1));
    expect(store.lastCommittedRound('r1')).toBe(1);
  });

  test('a failed round is recorded without a checkpoint and counts as done', () => {
    const store = openStore();
    store.createRun('r1', {});
    store.commitRound('r1', outcome(1), checkpoint(1));
    store.recordFailedRound('r1', outcome(2, { status: 'no-quorum', accepted: 0, trainLoss: NaN }));
    store.commitRound('r1', outcome(3), checkpoint(3));
    expect(store.listRounds('r1').map((r) => [r.round, r.record.status])).toEqual([
      [1, 'aggregated'],
      [2, 'no-quorum'],
      [3, 'aggregated'],
    ]);
    expect(Number.isNaN(store.listRounds('r1')[1]!.record.trainLoss)).toBe(true);
    expect(store.lastCommittedRound('r1')).toBe(3);
    expect(store.latestCheckpoint('r1')?.round).toBe(3);
    expect(raw((db) => db.prepare('SELECT round FROM checkpoints ORDER BY round').pluck().all())).toEqual([1, 3]);
  });

  test('rounds and checkpoints of one run do not leak into another', () => {
    const store = openStore();
    store.createRun('r1', {});
    store.createRun('r2', {});
    store.commitRound('r1', outcome(1), checkpoint(1));
    store.commitRound('r1', outcome(2), checkpoint(2));
    store.commitRound('r2', outcome(1), checkpoint(7));
    expect(store.lastCommittedRound('r2')).toBe(1);
    expect(store.latestCheckpoint('r2')?.modelVersion).toBe(7);
    expect(store.listRounds('r2')).toHaveLength(1);
    expect(store.lastCommittedRound('none')).toBe(0);
  });

  test('discardRoundsAfter removes later rounds and their checkpoints so those rounds can be committed again', () => {
    const store = openStore();
    store.createRun('r1', {});
    for (const n of [1, 2, 3]) store.commitRound('r1', outcome(n), checkpoint(n));
    expect(store.discardRoundsAfter('r1', 1)).toBe(2);
    expect(store.listRounds('r1').map((r) => r.round)).toEqual([1]);
    expect(store.latestCheckpoint('r1')?.round).toBe(1);
    store.commitRound('r1', outcome(2), checkpoint(5));
    expect(store.latestCheckpoint('r1')?.modelVersion).toBe(5);
  });

  const corruptions: Array<[string, (db: Database.Database) => void, RegExp]> = [
    [
      'truncated weights',
      (db) => db.prepare('UPDATE checkpoints SET weights = substr(weights, 1, length(weights) - 4) WHERE round = 2').run(),
      /weights are 28 bytes where the specs describe 32/,
    ],
    [
      'a flipped byte in the weights',
      (db) => {
        const w = db.prepare('SELECT weights FROM checkpoints WHERE round = 2').pluck().get() as Buffer;
        w[13] = w[13]! ^ 0x01;
        db.prepare('UPDATE checkpoints SET weights = ? WHERE round = 2').run(w);
      },
      /stored bytes hash to [0-9a-f]{64} but the checkpoint recorded [0-9a-f]{64}$/,
    ],
    [
      'a flipped byte in the strategy state',
      (db) => {
        const s = db.prepare('SELECT strategy_state FROM checkpoints WHERE round = 2').pluck().get() as Buffer;
        s[s.length - 1] = s[s.length - 1]! ^ 0x80;
        db.prepare('UPDATE checkpoints SET strategy_state = ? WHERE round = 2').run(s);
      },
      /stored bytes hash to/,
    ],
    [
      'edited specs',
      (db) => db.prepare("UPDATE checkpoints SET specs = replace(specs, 'dense/bias', 'dense/bias2') WHERE round = 2").run(),
      /stored bytes hash to/,
    ],
    [
      'weights overwritten with text',
      (db) => db.prepare("UPDATE checkpoints SET weights = 'garbage' WHERE round = 2").run(),
      /weights are not a blob/,
    ],
  ];

  test.each(corruptions)('latestCheckpoint skips a checkpoint with %s, reports it, and falls back to the previous one', (_, corrupt, reason) => {
    const store = openStore();
    store.createRun('r1', {});
    const sha1 = store.commitRound('r1', outcome(1), checkpoint(1));
    store.commitRound('r1', outcome(2), checkpoint(2));
    raw(corrupt);
    const skipped: Array<[number, string]> = [];
    const got = store.latestCheckpoint('r1', (round, why) => skipped.push([round, why]));
    expect(got?.round).toBe(1);
    expect(got?.sha256).toBe(sha1);
    expect(bitsOf(got!.values)).toEqual(bitsOf(checkpoint(1).values));
    expect(skipped).toHaveLength(1);
    expect(skipped[0]![0]).toBe(2);
    expect(skipped[0]![1]).toMatch(reason);
  });

  test('latestCheckpoint returns undefined when every checkpoint is damaged, reporting each newest first', () => {
    const store = openStore();
    store.createRun('r1', {});
    store.commitRound('r1', outcome(1), checkpoint(1));
    store.commitRound('r1', outcome(2), checkpoint(2));
    raw((db) => db.prepare("UPDATE checkpoints SET sha256 = 'not-the-digest'").run());
    const skipped: number[] = [];
    // onCorrupt may write to the store while the search goes on.
    expect(
      store.latestCheckpoint('r1', (round) => {
        skipped.push(round);
        store.appendEvent('r1', 'checkpoint-corrupt', { round });
      }),
    ).toBeUndefined();
    expect(skipped).toEqual([2, 1]);
    expect(store.listEvents('r1').map((e) => e.data)).toEqual([{ round: 2 }, { round: 1 }]);
  });
});

describe('clients', () => {
  test('clients are added, listed by name, touched and revoked, and survive a reopen', () => {
    const store = openStore();
    const bob = store.addClient('bob', 'hash-b');
    expect(bob).toMatchObject({ name: 'bob', tokenHash: 'hash-b', lastSeen: null, revoked: false });
    store.addClient('alice', 'hash-a');
    store.touchClient('alice');
    store.revokeClient('bob');
    store.revokeClient('bob');
    store.close();

    const reopened = openStore();
    const clients = reopened.listClients();
    expect(clients.map((c) => [c.name, c.revoked])).toEqual([
      ['alice', false],
      ['bob', true],
    ]);
    expect(clients[0]!.lastSeen).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(clients[1]!.lastSeen).toBeNull();
    expect(reopened.getClient('bob')).toEqual(clients[1]);
    expect(reopened.getClient('carol')).toBeUndefined();
  });

  test.each<[string, (s: Store) => unknown, ErrorCode, RegExp]>([
    ['adding a name that is taken', (s) => s.addClient('alice', 'other-hash'), ErrorCode.Conflict, /client alice is already registered/],
    ['revoking an unknown client', (s) => s.revokeClient('carol'), ErrorCode.NotFound, /client carol is not registered/],
    ['touching an unknown client', (s) => s.touchClient('carol'), ErrorCode.NotFound, /client carol is not registered/],
    ['adding a client without a token hash', (s) => s.addClient('dave', ''), ErrorCode.InvalidConfig, /token hash must be a non-empty string/],
  ])('%s is refused (%s) and leaves the registered clients as they were', (_, act, code, message) => {
    const store = openStore();
    store.addClient('alice', 'hash-a');
    expectFtlError(() => act(store), code, message);
    expect(store.listClients()).toEqual([expect.objectContaining({ name: 'alice', tokenHash: 'hash-a', revoked: false, lastSeen: null })]);
  });
});

describe('storage failures', () => {
  test.each<[string, (s: Store) => unknown, RegExp]>([
    ['reading a run', (s) => s.getRun('r1'), /reading run r1 failed: The database connection is not open/],
    ['listing runs', (s) => s.listRuns(), /listing runs failed/],
    ['creating a run', (s) => s.createRun('r2', {}), /creating run r2 failed/],
    ['registering a client', (s) => s.addClient('alice', 'hash-a'), /adding client alice failed/],
    ['appending an event', (s) => s.appendEvent(null, 'coordinator-start', {}), /appending a coordinator-start event failed/],
  ])("%s on a closed store is the storage's fault (STORAGE_ERROR naming the file), not the caller's", (_, act, message) => {
    const store = openStore();
    store.createRun('r1', {});
    store.close();
    expectFtlError(() => act(store), ErrorCode.StorageError, new RegExp(`^store .*ftl\\.db: ${message.source}`));
  });
});

describe('events', () => {
  test('events are appended in order, filtered by run, and keep their data', () => {
    const store = openStore();
    store.createRun('r1', {});
    store.createRun('r2', {});
    store.appendEvent(null, 'coordinator-start', { pid: 42 });
    store.appendEvent('r1', 'run-start', { rounds: 3 });
    store.appendEvent('r2', 'run-start', { rounds: 1 });
    store.appendEvent('r1', 'round-end', { loss: NaN });
    const all = store.listEvents();
    expect(all.map((e) => [e.runId, e.type])).toEqual([
      [null, 'coordinator-start'],
      ['r1', 'run-start'],
      ['r2', 'run-start'],
      ['r1', 'round-end'],
    ]);
    expect(all.map((e) => e.id)).toEqual([...all.map((e) => e.id)].sort((a, b) => a - b));
    expect(store.listEvents('r1').map((e) => e.data)).toEqual([{ rounds: 3 }, { loss: NaN }]);
    expect(all[0]!.at).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  test('an event for a run that does not exist is refused by the foreign key', () => {
    const store = openStore();
    expectFtlError(() => store.appendEvent('ghost', 'run-start', {}), ErrorCode.NotFound, /run ghost does not exist/);
    expect(store.listEvents()).toEqual([]);
  });
});

describe('reasons, site states and the readiness probe', () => {
  test('a move records why, a reopened store reads it back, and a move without a reason clears it', () => {
    const store = openStore();
    store.createRun('r1', {});
    store.moveRun('r1', 'running');
    const why = { message: 'only 0 of the 1 clients needed were ready after 1 s', phase: 'waiting-for-clients' as const, round: 0, code: 'TIMEOUT' };
    expect(store.moveRun('r1', 'failed', why)).toBe('running');
    store.close();
    const again = openStore();
    expect(again.getRun('r1')).toMatchObject({ status: 'failed', reason: why });
    expect(again.listRuns()[0]!.reason).toEqual(why);
    again.moveRun('r1', 'running');
    expect(again.getRun('r1')!.reason).toBeUndefined();
    again.moveRun('r1', 'paused', { message: 'paused by the operator after round 2', phase: 'evaluate', round: 2 });
    expect(again.getRun('r1')!.reason).toEqual({ message: 'paused by the operator after round 2', phase: 'evaluate', round: 2 });
  });

  test('a database of the first schema gains the new columns and tables, its runs without a reason', () => {
    mkdirSync(dirname(dbPath), { recursive: true });
    raw((db) => {
      migrate(db, dbPath, MIGRATIONS.slice(0, 1));
      db.prepare("INSERT INTO runs (id, config, status, created_at, updated_at) VALUES ('old', '{}', 'failed', 'a', 'b')").run();
    });
    const store = openStore();
    expect(store.schemaVersion).toBe(MIGRATIONS.length);
    expect(store.getRun('old')).toEqual({ id: 'old', config: {}, status: 'failed', createdAt: 'a', updatedAt: 'b' });
    expect(store.listSiteStates('old')).toEqual([]);
  });

  test('each site keeps its last state per run, recorded even before the run is stored, and runs do not share them', () => {
    const store = openStore();
    store.recordSiteState('r1', { client: 'bob', state: 'connected', at: 't1' });
    store.recordSiteState('r1', { client: 'alice', state: 'training', round: 3, at: 't2' });
    store.recordSiteState('r1', { client: 'alice', state: 'failed', round: 3, message: `out of memory ${'x'.repeat(3000)}`, at: 't3' });
    store.recordSiteState('r2', { client: 'alice', state: 'ready', at: 't4' });
    const sites = store.listSiteStates('r1');
    expect(sites.map((s) => [s.client, s.state, s.round, s.at])).toEqual([
      ['alice', 'failed', 3, 't3'],
      ['bob', 'connected', undefined, 't1'],
    ]);
    expect(sites[0]!.message).toHaveLength(2000);
    expect(sites[1]).not.toHaveProperty('message');
    expect(store.listSiteStates('r2')).toEqual([{ client: 'alice', state: 'ready', at: 't4' }]);
  });

  test('the readiness probe writes, and fails as STORAGE_ERROR on a closed store or one another program has locked', () => {
    const store = openStore();
    store.probeWrite();
    expect(raw((db) => db.prepare('SELECT COUNT(*) AS n FROM health_probe').get())).toEqual({ n: 1 });
    const locker = new Database(dbPath);
    try {
      locker.exec('BEGIN EXCLUSIVE');
      expectFtlError(() => store.probeWrite(50), ErrorCode.StorageError, /writing the readiness probe failed: database is locked/);
      locker.exec('COMMIT');
    } finally {
      locker.close();
    }
    store.probeWrite();
    store.close();
    expectFtlError(() => store.probeWrite(), ErrorCode.StorageError, /writing the readiness probe failed: The database connection is not open/);
  });
});
