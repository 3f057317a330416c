#!/usr/bin/env node
// Dependency floors for CI: refuse a lock file that resolves a known-vulnerable socket.io stack, and refuse
// production dependencies that `npm audit` rates high or critical.
//
//   node .ci/dependency-floors.mjs [--lock path/to/package-lock.json] [--no-audit | --audit-report file.json]
//
// --audit-report reads a saved `npm audit --json` report instead of asking the advisory service (for tests).
//
// Every resolved copy counts, nested ones included (node_modules/a/node_modules/ws), because any copy can be
// the one a transport loads. When the audit endpoint cannot be reached the script says so and does not fail:
// the floors above still hold, and CI on a machine without the advisory service must not go red for it.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** Lowest acceptable version of each package, by package name. */
const FLOORS = {
  'socket.io-parser': '4.2.6',
  'engine.io': '6.4.2',
  ws: '8.21.0',
};

const AUDIT_FAILS_ON = ['high', 'critical'];

function parseArgs(argv) {
  const options = { lock: 'package-lock.json', audit: true, auditReport: undefined };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--lock') options.lock = argv[++i];
    else if (arg === '--no-audit') options.audit = false;
    else if (arg === '--audit-report') options.auditReport = argv[++i];
    else if (arg === '--help' || arg === '-h') {
      console.log('usage: node .ci/dependency-floors.mjs [--lock package-lock.json] [--no-audit | --audit-report report.json]');
      process.exit(0);
    } else {
      console.error(`dependency-floors: unknown argument ${arg}; see --help`);
      process.exit(2);
    }
  }
  return options;
}

/** [major, minor, patch, isRelease]; a pre-release sorts below its release, as in semver. */
function parseVersion(text) {
  const match = /^(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.-]+)?/.exec(text);
  if (match === null) return null;
  return [Number(match[1]), Number(match[2]), Number(match[3]), match[4] === undefined ? 1 : 0];
}

function below(version, floor) {
  const a = parseVersion(version);
  const b = parseVersion(floor);
  if (a === null) return true; // an unparseable version cannot be shown to be safe
  for (let i = 0; i < 4; i++) {
    if (a[i] !== b[i]) return a[i] < b[i];
  }
  return false;
}

/** Every (location, name, version) the lock resolves: lockfile v2/v3 `packages`, else v1 `dependencies`. */
function resolvedCopies(lock) {
  const copies = [];
  if (lock.packages !== undefined) {
    for (const [location, entry] of Object.entries(lock.packages)) {
      const index = location.lastIndexOf('node_modules/');
      if (index < 0 || entry.link === true) continue;
      const name = entry.name ?? location.slice(index + 'node_modules/'.length);
      copies.push({ location, name, version: entry.version });
    }
    return copies;
  }
  const walk = (dependencies, prefix) => {
    for (const [name, entry] of Object.entries(dependencies ?? {})) {
      const location = `${prefix}node_modules/${name}`;
      copies.push({ location, name, version: entry.version });
      walk(entry.dependencies, `${location}/`);
    }
  };
  walk(lock.dependencies, '');
  return copies;
}

function checkFloors(lockPath) {
  const lock = JSON.parse(readFileSync(lockPath, 'utf8'));
  const copies = resolvedCopies(lock);
  const failures = [];
  let checked = 0;
  for (const copy of copies) {
    const floor = FLOORS[copy.name];
    if (floor === undefined) continue;
    checked++;
    const version = String(copy.version ?? 'unknown');
    if (below(version, floor)) failures.push(`${copy.location} resolves ${version}, below the floor ${floor}`);
    else console.log(`dependency-floors: ${copy.location} ${version} >= ${floor}`);
  }
  for (const name of Object.keys(FLOORS)) {
    if (!copies.some((c) => c.name === name)) {
      console.log(`dependency-floors: ${name} is not in the lock file`);
    }
  }
  return { failures, checked };
}

/** Runs `npm audit --omit=dev --json` beside the lock; null when the advisory service gave no report. */
function audit(lockPath, savedReport) {
  let output;
  if (savedReport !== undefined) {
    output = readFileSync(savedReport, 'utf8');
  } else {
    try {
      output = execFileSync('npm', ['audit', '--omit=dev', '--json'], {
        cwd: dirname(resolve(lockPath)),
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 120_000,
      });
    } catch (error) {
      // npm audit exits non-zero both when it finds anything and when it cannot reach the service.
      output = typeof error.stdout === 'string' ? error.stdout : '';
      if (output.trim() === '') return { report: null, reason: String(error.message).split('\n')[0] };
    }
  }
  let report;
  try {
    report = JSON.parse(output);
  } catch {
    return { report: null, reason: 'npm audit printed no JSON report' };
  }
  if (report?.metadata?.vulnerabilities === undefined) {
    const reason = report?.message ?? report?.error?.summary ?? report?.error?.code ?? 'no vulnerability counts';
    return { report: null, reason: String(reason) };
  }
  return { report, reason: '' };
}

const options = parseArgs(process.argv.slice(2));
const { failures, checked } = checkFloors(options.lock);
if (checked === 0) console.log('dependency-floors: none of the floored packages is resolved');

if (options.audit) {
  const { report, reason } = audit(options.lock, options.auditReport);
  if (report === null) {
    console.log(`dependency-floors: npm audit unavailable (${reason}); skipping the advisory check`);
  } else {
    const counts = report.metadata.vulnerabilities;
    console.log(
      `dependency-floors: npm audit --omit=dev: ${AUDIT_FAILS_ON.map((s) => `${counts[s] ?? 0} ${s}`).join(', ')}` + ` (of ${counts.total ?? 0})`,
    );
    for (const [name, entry] of Object.entries(report.vulnerabilities ?? {})) {
      if (AUDIT_FAILS_ON.includes(entry.severity)) {
        failures.push(`npm audit rates ${name} ${entry.severity} (${entry.range ?? 'range unknown'})`);
      }
    }
    if (failures.length === 0 && AUDIT_FAILS_ON.some((s) => (counts[s] ?? 0) > 0)) {
      failures.push('npm audit reports high or critical vulnerabilities; run npm audit --omit=dev');
    }
  }
}

if (failures.length > 0) {
  for (const failure of failures) console.error(`dependency-floors: FAIL ${failure}`);
  console.error('dependency-floors: raise these with npm install <name>@latest or an "overrides" entry');
  process.exit(1);
}
console.log('dependency-floors: ok');
