import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { flagOptions, ErrorCode, FtlError, numberFlag, parseFlags, stringFlag, type RawFlags } from '@ftl/shared';
import { ApiClient, type ApiTarget } from './api-client.js';
import type { ClientView } from './client-registry.js';
import type { RunListItem, RunView } from './run-lifecycle.js';
import type { RunReason } from './run-states.js';
import type { RunProgress } from './run-summary.js';
import type { SiteState } from './site-state.js';
import { formatRoundRow, roundTableHeader } from './round-table.js';
import { writeSecretFile } from './secret-file.js';

/** Where `serve` writes the operator token by default, and where the operator CLI looks for it. */
export const DEFAULT_OPERATOR_TOKEN_FILE = '.ftl/operator-token';

/** Help text of the operator commands. */
export const OPERATOR_HELP = `ftl-coordinator clients add NAME [--save FILE] | revoke NAME | list
ftl-coordinator runs create [--config FILE] [--run-id ID]
ftl-coordinator runs start|resume ID [--watch]
ftl-coordinator runs pause|stop ID
ftl-coordinator runs status ID [--watch]
ftl-coordinator runs list
ftl-coordinator runs export ID [--out DIR]
Operator commands over the REST API of a running "ftl-coordinator serve" (docs/api.md).
  --url URL          the coordinator (default $FTL_COORDINATOR_URL or http://127.0.0.1:8080)
  --token-file FILE  operator token (default $FTL_OPERATOR_TOKEN, else operator-token beside --db, else
                     ${DEFAULT_OPERATOR_TOKEN_FILE}); serve prints where it wrote it
  --db FILE          the database serve was started with: read the operator token beside it ("runs" only;
                     "clients … --db" edits that database directly)
  --ca-file FILE     CA certificate (PEM) to trust for an https coordinator: the one that signed its
                     certificate, or a self-signed certificate itself
  --wait S           seconds to keep retrying while nothing listens yet (a serve still starting; default 15)
  --watch            follow the run with a live progress line until it ends or pauses; exits 1 with
                     the run's reason on stderr when it fails
  --interval S       seconds between polls while watching (default 1)
  --save FILE        "clients add": write the new token to FILE (mode 0600) instead of printing it
  --out DIR          where "runs export" unpacks the model (default ./<run id>-model)
"clients add|revoke|list --db FILE" works on the database directly, without a running server.`;

function readFlagFile(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new FtlError(ErrorCode.InvalidConfig, `${flag}: cannot read ${path} (${(err as Error).message})`, { cause: err });
  }
}

/** Where `runs` and `clients` (without --db) find the operator token, in order, and how messages name it. */
function tokenSource(values: RawFlags): { token: ApiTarget['token']; from: string } {
  const tokenFile = stringFlag(values, 'token-file');
  if (tokenFile !== undefined) return { token: readFlagFile(tokenFile, '--token-file').toString('utf8').trim(), from: `--token-file ${tokenFile}` };
  const env = process.env['FTL_OPERATOR_TOKEN'];
  if (env) return { token: env, from: 'FTL_OPERATOR_TOKEN' };
  // serve writes the token beside its database unless told otherwise.
  const db = stringFlag(values, 'db');
  const file = resolve(db !== undefined ? join(dirname(db), 'operator-token') : DEFAULT_OPERATOR_TOKEN_FILE);
  const from = db !== undefined ? `${file} (beside --db ${db})` : `${file} (the default)`;
  // Read lazily: a `serve` started a moment ago may not have written it yet.
  const token = () => {
    try {
      return readFileSync(file, 'utf8').trim() || undefined;
    } catch {
      return undefined;
    }
  };
  return { token, from };
}

function apiTarget(values: RawFlags): ApiTarget {
  const url = stringFlag(values, 'url', process.env['FTL_COORDINATOR_URL'] ?? 'http://127.0.0.1:8080');
  if (!/^https?:\/\/[^/]+/.test(url))
    throw new FtlError(ErrorCode.InvalidConfig, `--url must be an http(s) URL like http://127.0.0.1:8080 (got "${url}")`);
  const { token, from } = tokenSource(values);
  const caFile = stringFlag(values, 'ca-file');
  const waitMs = 1000 * numberFlag(values, 'wait', { default: 15, min: 0 });
  if (caFile === undefined) return { url, token, tokenFrom: from, waitMs };
  const ca = readFlagFile(caFile, '--ca-file');
  // node ignores a CA that is not PEM and then reports every certificate as untrusted: say it here.
  if (!ca.toString('latin1').includes('-----BEGIN CERTIFICATE-----')) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `--ca-file ${caFile} is not a PEM certificate (no "-----BEGIN CERTIFICATE-----" block); give the CA certificate, or serve's --tls-cert when it is self-signed`,
    );
  }
  return { url, token, tokenFrom: from, waitMs, ca, caFile };
}

const pct = (x: number | undefined) => (x !== undefined && Number.isFinite(x) ? `${(x * 100).toFixed(2)}%` : '-');

/** One line saying where a run stands, for the live display. */
export function progressLine(run: Pick<RunView, 'id' | 'status' | 'rounds'> & { live?: RunProgress }, elapsedSeconds: number): string {
  const last = run.rounds.at(-1);
  const parts = [`run ${run.id}`, run.status];
  const live = run.live;
  if (live) {
    const phase = {
      'waiting-for-clients': `waiting for clients ${live.readyClients}/${live.minClients} ready`,
      'class-means': `class sums for the head ${live.received}/${live.expected}`,
      fit: `round ${live.round}/${live.rounds} training ${live.received}/${live.expected} updates`,
      evaluate: `round ${live.round}/${live.rounds} evaluating ${live.received}/${live.expected}`,
      personalize: `personalizing ${live.received}/${live.expected}`,
      finishing: 'exporting the model',
      idle: 'idle',
    }[live.phase];
    parts.push(phase);
    if (live.phase !== 'waiting-for-clients') parts.push(`${live.readyClients} clients ready`);
  }
  if (last) parts.push(`last val acc ${pct(last.valAccuracy)} (round ${last.round})`);
  const m = Math.floor(elapsedSeconds / 60);
  parts.push(`${m}:${String(Math.floor(elapsedSeconds % 60)).padStart(2, '0')}`);
  return parts.join(' · ');
}

/**
 * Follows a run until it leaves `running`: prints each new round as a table row and keeps a progress line
 * below (rewritten in place on a terminal, printed on change otherwise).
 */
async function watch(api: ApiClient, id: string, intervalMs: number, out: NodeJS.WriteStream): Promise<RunView> {
  const t0 = performance.now();
  const tty = out.isTTY === true;
  let printed = 0;
  let lastLine = '';
  let headerShown = false;
  for (;;) {
    const run = await api.call<RunView>('GET', `/api/runs/${encodeURIComponent(id)}`);
    const fresh = run.rounds.slice(printed);
    if (fresh.length > 0) {
      if (tty && lastLine) out.write('\r\x1b[2K');
      if (!headerShown) out.write(`${roundTableHeader({ privacy: ['record', 'client'].includes(run.config.privacy?.mode ?? 'none') })}\n`);
      headerShown = true;
      for (const r of fresh)
        out.write(`${formatRoundRow(r, run.config.rounds, { privacy: ['record', 'client'].includes(run.config.privacy?.mode ?? 'none') })}\n`);
      printed = run.rounds.length;
      lastLine = '';
    }
    const line = progressLine(run, (performance.now() - t0) / 1000);
    const settled = run.status !== 'running' || (run.live === undefined && run.status === 'running' && printed >= run.config.rounds);
    if (tty) out.write(`\r\x1b[2K${line}`);
    else if (line.replace(/ · \d+:\d\d$/, '') !== lastLine.replace(/ · \d+:\d\d$/, '')) out.write(`${line}\n`);
    lastLine = line;
    if (settled) {
      if (tty) out.write('\n');
      return run;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Exclusions listed one per line, at most this many (the rest are counted). */
const EXCLUSIONS_SHOWN = 10;

/**
 * A run's reason in one line: the message, then the code of a failure and where the run stood.
 *
 * @example
 * describeReason({ message: 'only 0 of the 1 clients needed were ready after 1 s; …', phase: 'waiting-for-clients', round: 0, code: 'TIMEOUT' });
 * // 'only 0 of the 1 clients needed were ready after 1 s; … (TIMEOUT; in phase waiting-for-clients, before round 1)'
 */
export function describeReason(reason: RunReason): string {
  const where = reason.round === 0 ? `in phase ${reason.phase}, before round 1` : `in phase ${reason.phase} of round ${reason.round}`;
  return `${oneLineText(reason.message)} (${reason.code ? `${reason.code}; ` : ''}${where})`;
}

/** Text from the server on one line: whatever it holds, a status line stays one line. */
function oneLineText(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ');
}

/** A site's last state in a few words: `training round 3`, `failed in round 2: <its error>`. */
export function siteLine(site: SiteState): string {
  const round = site.round !== undefined && site.round > 0 ? ` round ${site.round}` : '';
  const inRound = round ? ` in${round}` : '';
  const why = site.message !== undefined ? `: ${oneLineText(site.message)}` : '';
  switch (site.state) {
    case 'training':
    case 'evaluating':
      return `${site.state}${round}`;
    case 'failed':
    case 'refused':
    case 'disconnected':
    case 'dropped':
      return `${site.state}${inRound}${why}`;
    default:
      return `${site.state}${why}`;
  }
}

/** Sites listed one per line, at most this many (the rest are counted). */
const SITES_SHOWN = 20;

/** What `runs status` prints after the table: where the run stands and why, its sites, what the trust policy left out, and the model. */
export function summary(run: Pick<RunView, 'id' | 'status' | 'config' | 'rounds' | 'exclusions' | 'privacy' | 'reason' | 'sites'>): string {
  const last = run.rounds.at(-1);
  // A model exists once some round changed it; a run stopped or failed before that has none to offer.
  const trained = run.rounds.some((r) => r.modelVersion > 0);
  const finished = run.status === 'completed' || run.status === 'stopped' || run.status === 'failed';
  const exclusions = run.exclusions ?? [];
  const excluded =
    exclusions.length === 0
      ? ''
      : [
          `\n${exclusions.length} contribution${exclusions.length === 1 ? '' : 's'} left out by the trust policy:`,
          ...exclusions.slice(0, EXCLUSIONS_SHOWN).map((e) => `\n  round ${e.round} ${e.client}: ${e.reason}: ${e.message}`),
          ...(exclusions.length > EXCLUSIONS_SHOWN ? [`\n  … and ${exclusions.length - EXCLUSIONS_SHOWN} more (GET /api/runs/${run.id})`] : []),
        ].join('');
  const sites = run.sites ?? [];
  const siteLines =
    sites.length === 0
      ? ''
      : [
          `\nsites (${sites.length}):`,
          ...sites.slice(0, SITES_SHOWN).map((s) => `\n  ${s.client}: ${siteLine(s)}`),
          ...(sites.length > SITES_SHOWN ? [`\n  … and ${sites.length - SITES_SHOWN} more (GET /api/runs/${run.id}/sites)`] : []),
        ].join('');
  return (
    `run ${run.id} is ${run.status} after ${run.rounds.length}/${run.config.rounds} rounds; last federated val acc ${pct(last?.valAccuracy)}` +
    (run.reason ? `\nwhy ${run.status}: ${describeReason(run.reason)}` : '') +
    siteLines +
    privacyLines(run.privacy) +
    excluded +
    (finished && trained
      ? `\ndownload the model with: ftl-coordinator runs export ${run.id}`
      : finished
        ? '\nno round trained the model, so there is none to download'
        : '')
  );
}

/** The latest round's privacy, one site per line: its ε at δ (of its budget), or why it refused the round. */
function privacyLines(privacy: RunView['privacy']): string {
  if (!privacy) return '';
  const sites = [
    ...privacy.sites.map(
      (s) => `\n  ${s.client}: ε ${s.epsilon.toFixed(2)} at δ ${s.delta.toExponential()}${s.budget !== undefined ? ` (budget ${s.budget})` : ''}`,
    ),
    ...privacy.refused.map((r) => `\n  ${r.client}: refused the round: ${r.message}`),
  ];
  const shown = sites.slice(0, EXCLUSIONS_SHOWN);
  const more = sites.length > shown.length ? [`\n  … and ${sites.length - shown.length} more`] : [];
  return [`\nprivacy spent by each site after round ${privacy.round}:`, ...shown, ...more].join('');
}

/**
 * A watched run that failed ends the command as an error: exit status 1 and one line on stderr with the
 * run's reason (runMain prints it), so a script that watches a run learns that it failed and why.
 */
function failedRun(run: Pick<RunView, 'id' | 'status' | 'reason'>): void {
  if (run.status !== 'failed') return;
  const code =
    run.reason?.code !== undefined && (Object.values(ErrorCode) as string[]).includes(run.reason.code) ? run.reason.code : ErrorCode.Quorum;
  throw new FtlError(code as ErrorCode, `run ${run.id} failed: ${run.reason ? describeReason(run.reason) : 'the coordinator recorded no reason'}`);
}

/** `ftl-coordinator clients …` and `ftl-coordinator runs …` over the REST API. */
export async function operatorCommand(group: 'clients' | 'runs', argv: string[], out: NodeJS.WriteStream = process.stdout): Promise<void> {
  const { values, positionals } = parseFlags(
    argv,
    flagOptions(['url', 'token-file', 'ca-file', 'db', 'wait', 'config', 'run-id', 'out', 'interval', 'save'], ['watch', 'help']),
    { positionals: true },
  );
  const [action, id] = positionals;
  if (values['help'] || action === undefined) {
    out.write(`${OPERATOR_HELP}\n`);
    return;
  }
  const api = new ApiClient(apiTarget(values));
  const need = (what: string) => {
    if (id === undefined) throw new FtlError(ErrorCode.InvalidConfig, `usage: ftl-coordinator ${group} ${action} ${what}`);
    return encodeURIComponent(id);
  };
  const intervalMs = 1000 * numberFlag(values, 'interval', { default: 1, min: 0.1 });

  if (group === 'clients') {
    if (action === 'add') {
      const added = await api.call<{ name: string; token: string }>('POST', '/api/clients', { name: id ?? need('NAME') });
      const save = stringFlag(values, 'save');
      if (save !== undefined) {
        try {
          writeSecretFile(save, added.token, '--save');
        } catch (err) {
          // The server has registered the site already; without the file nobody has its token.
          throw new FtlError(
            ErrorCode.InvalidConfig,
            `client ${added.name} was added, but ${(err as Error).message}; ` +
              `revoke it (ftl-coordinator clients revoke ${added.name}) and add it again under another name with a writable --save`,
            { cause: err },
          );
        }
        out.write(`client ${added.name} added; its token is in ${save} (give it to the site for --token-file)\n`);
      } else {
        out.write(`client ${added.name} added. Its token (shown once; give it to the site, e.g. as FTL_TOKEN):\n${added.token}\n`);
      }
    } else if (action === 'revoke') {
      await api.call('POST', `/api/clients/${need('NAME')}/revoke`);
      out.write(`client ${id} revoked; it was disconnected and is refused from now on\n`);
    } else if (action === 'list') {
      const { clients } = await api.call<{ clients: ClientView[] }>('GET', '/api/clients');
      out.write('name\tstate\tconnected\tready for\tlast seen\n');
      for (const c of clients) {
        const state = !c.registered ? 'unregistered' : c.revoked ? 'revoked' : 'active';
        out.write(`${c.name}\t${state}\t${c.connected ? 'yes' : 'no'}\t${c.ready?.runId ?? '-'}\t${c.lastSeen ?? 'never'}\n`);
      }
    } else {
      throw new FtlError(ErrorCode.InvalidConfig, `unknown clients command "${action}"; use add, revoke or list`);
    }
    return;
  }

  switch (action) {
    case 'create': {
      const file = stringFlag(values, 'config');
      let body: Record<string, unknown> = {};
      if (file !== undefined) {
        try {
          body = JSON.parse(readFlagFile(file, '--config').toString('utf8')) as Record<string, unknown>;
        } catch (err) {
          if (err instanceof FtlError) throw err;
          throw new FtlError(ErrorCode.InvalidConfig, `--config ${file} is not valid JSON (${(err as Error).message})`);
        }
      }
      const runId = stringFlag(values, 'run-id');
      if (runId !== undefined) body = { ...body, runId };
      const run = await api.call<RunView>('POST', '/api/runs', body);
      out.write(
        `run ${run.id} created (${run.config.rounds} rounds, ${run.config.strategy.name}); start it with: ftl-coordinator runs start ${run.id}\n`,
      );
      return;
    }
    case 'start':
    case 'resume':
    case 'pause':
    case 'stop': {
      const run = await api.call<RunView>('POST', `/api/runs/${need('ID')}/${action}`);
      const note = action === 'pause' || action === 'stop' ? ' (takes effect after the current round)' : '';
      out.write(`run ${run.id}: ${action} requested${note}\n`);
      if (values['watch']) {
        const run = await watch(api, id!, intervalMs, out);
        out.write(`${summary(run)}\n`);
        failedRun(run);
      }
      return;
    }
    case 'status': {
      const run = values['watch'] ? await watch(api, need('ID'), intervalMs, out) : await api.call<RunView>('GET', `/api/runs/${need('ID')}`);
      if (!values['watch']) {
        const table = { privacy: ['record', 'client'].includes(run.config.privacy?.mode ?? 'none') };
        out.write(`${roundTableHeader(table)}\n`);
        for (const r of run.rounds) out.write(`${formatRoundRow(r, run.config.rounds, table)}\n`);
        if (run.live) out.write(`${progressLine(run, 0).replace(/ · \d+:\d\d$/, '')}\n`);
      }
      out.write(`${summary(run)}\n`);
      if (values['watch']) failedRun(run);
      return;
    }
    case 'list': {
      const { runs } = await api.call<{ runs: RunListItem[] }>('GET', '/api/runs');
      out.write('id\tstatus\trounds\tcreated\twhy\n');
      for (const r of runs) {
        out.write(`${r.id}\t${r.status}\t${r.roundsDone}/${r.rounds}\t${r.createdAt}\t${r.reason ? describeReason(r.reason) : '-'}\n`);
      }
      return;
    }
    case 'export': {
      const dir = stringFlag(values, 'out', `${id ?? 'run'}-model`);
      need('ID');
      const files = await api.downloadModel(id!, dir);
      out.write(`model of run ${id} written to ${dir} (${files.join(', ')})\n`);
      return;
    }
    default:
      throw new FtlError(ErrorCode.InvalidConfig, `unknown runs command "${action}"; use create, start, pause, resume, stop, status, list or export`);
  }
}
