import type BetterSqlite3 from 'better-sqlite3';
import { ErrorCode, FtlError } from '@ftl/shared';

/**
 * The store's schema as an ordered list of migrations: entry `i` brings the schema from version `i` to
 * version `i + 1`. Append new entries, never edit old ones, so every existing database can be brought
 * forward from wherever it stands.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: clients, runs, rounds, checkpoints, events.
  `
  CREATE TABLE clients (
    name TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen TEXT,
    revoked INTEGER NOT NULL DEFAULT 0
  );
  CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );
  CREATE TABLE rounds (
    run_id TEXT NOT NULL REFERENCES runs(id),
    round INTEGER NOT NULL,
    status TEXT NOT NULL,
    record TEXT NOT NULL,
    participants TEXT NOT NULL,
    rejected TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (run_id, round)
  );
  CREATE TABLE checkpoints (
    run_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    model_version INTEGER NOT NULL,
    specs TEXT NOT NULL,
    weights BLOB NOT NULL,
    strategy_state BLOB NOT NULL,
    sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (run_id, round),
    FOREIGN KEY (run_id, round) REFERENCES rounds(run_id, round) ON DELETE CASCADE
  );
  CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT REFERENCES runs(id),
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    at TEXT NOT NULL
  );
  CREATE INDEX events_by_run ON events(run_id, id);
  `,
  // 2: why a run left running (its reason), each site's last state per run, and the row readiness
  // probes write. run_sites has no foreign key: a one-run coordinator sees sites connect before it has
  // stored its run.
  `
  ALTER TABLE runs ADD COLUMN reason_message TEXT;
  ALTER TABLE runs ADD COLUMN reason_phase TEXT;
  ALTER TABLE runs ADD COLUMN reason_round INTEGER;
  ALTER TABLE runs ADD COLUMN reason_code TEXT;
  CREATE TABLE run_sites (
    run_id TEXT NOT NULL,
    client TEXT NOT NULL,
    state TEXT NOT NULL,
    round INTEGER,
    message TEXT,
    at TEXT NOT NULL,
    PRIMARY KEY (run_id, client)
  );
  CREATE TABLE health_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at TEXT NOT NULL
  );
  `,
];

/**
 * Brings `db` to the newest schema version and returns that version. Pending migrations run in one
 * immediate transaction, so a crash or a concurrent opener never leaves a half-migrated schema, and
 * running it again on an up-to-date database changes nothing. A database written by a newer ftl (a
 * version beyond {@link MIGRATIONS}) is refused rather than used with a schema this code does not know.
 */
export function migrate(db: BetterSqlite3.Database, path: string, migrations: readonly string[] = MIGRATIONS): number {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)');
  const apply = db.transaction(() => {
    const row = db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null };
    const current = row.v ?? 0;
    if (current > migrations.length) {
      throw new FtlError(
        ErrorCode.InvalidConfig,
        `store ${path} has schema version ${current} but this ftl knows only up to ${migrations.length}; upgrade ftl or open another --db file`,
      );
    }
    const record = db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)');
    for (let version = current + 1; version <= migrations.length; version++) {
      db.exec(migrations[version - 1]!);
      record.run(version, new Date().toISOString());
    }
    return migrations.length;
  });
  return apply.immediate();
}
