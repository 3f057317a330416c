import { siteFates } from './fates';
import { when } from './format';
import { StatusLine } from './run-page';
import type { ClientView, ConsoleMode, RunListItem, RunView, SiteEvent } from './types';

/** Every run, newest first, with its status and why. */
export function RunsPage({ runs, mode }: { runs: RunListItem[]; mode: ConsoleMode }) {
  return (
    <section aria-labelledby="runs-title">
      <h1 id="runs-title">Runs</h1>
      {mode === 'operator' && (
        <p>
          <a class="button" href="#/new">
            New run
          </a>
        </p>
      )}
      {runs.length === 0 ? (
        <p>No run yet.</p>
      ) : (
        <table class="runs">
          <thead>
            <tr>
              <th scope="col">Run</th>
              <th scope="col">Status and reason</th>
              <th scope="col">Rounds</th>
              <th scope="col">Now</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {runs.map((r) => (
              <tr key={r.id} data-run={r.id}>
                <th scope="row">
                  <a href={`#/runs/${encodeURIComponent(r.id)}`}>{r.id}</a>
                </th>
                <td>
                  <StatusLine run={r} />
                </td>
                <td>
                  {r.roundsDone}/{r.rounds}
                </td>
                <td>{r.live ? `${r.live.phase}${r.live.round > 0 ? `, round ${r.live.round}` : ''}` : ''}</td>
                <td>{when(r.updatedAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** Every site: connection, samples, its state in the latest run and what became of its last update. */
export function SitesPage({ clients, latest, events }: { clients: ClientView[]; latest: RunView | undefined; events: SiteEvent[] }) {
  const fates = siteFates(latest, events);
  const states = new Map((latest?.sites ?? []).map((s) => [s.client, s]));
  return (
    <section aria-labelledby="sites-title">
      <h1 id="sites-title">Sites</h1>
      {latest && <p class="muted">States and updates in run {latest.id}.</p>}
      {clients.length === 0 ? (
        <p>No site registered or connected.</p>
      ) : (
        <table class="sites">
          <thead>
            <tr>
              <th scope="col">Site</th>
              <th scope="col">Connection</th>
              <th scope="col">State in run</th>
              <th scope="col">Last seen</th>
              <th scope="col">Samples (train / val)</th>
              <th scope="col">Last update</th>
            </tr>
          </thead>
          <tbody>
            {clients.map((c) => {
              const fate = fates.get(c.name);
              const state = states.get(c.name);
              return (
                <tr key={c.name} data-site={c.name}>
                  <th scope="row">{c.name}</th>
                  <td>{c.revoked ? 'revoked' : c.connected ? (c.ready ? `ready for ${c.ready.runId}` : 'connected') : 'offline'}</td>
                  <td>{state ? `${state.state}${state.round ? ` (round ${state.round})` : ''}${state.message ? `: ${state.message}` : ''}` : '–'}</td>
                  <td>{c.connected ? 'now' : when(c.lastSeen)}</td>
                  <td>{c.ready ? `${c.ready.numTrain} / ${c.ready.numVal}` : '–'}</td>
                  <td data-fate={fate?.outcome}>{fate ? `round ${fate.round}: ${fate.outcome}${fate.why ? ` (${fate.why})` : ''}` : '–'}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** The connection events this page has seen, newest first. */
export function SiteLog({ events }: { events: SiteEvent[] }) {
  if (events.length === 0) return null;
  return (
    <aside class="site-log" aria-labelledby="site-log-title">
      <h2 id="site-log-title">Site connections</h2>
      <ol>
        {events
          .slice(-12)
          .reverse()
          .map((e) => (
            <li key={`${e.at}-${e.client}-${e.kind}`}>
              <time dateTime={e.at}>{new Date(e.at).toLocaleTimeString()}</time> {e.client} {e.kind}
              {e.reason ? ` (${e.reason})` : ''}
              {e.runId ? ` during ${e.phase ?? ''} round ${e.round ?? 0} of ${e.runId}` : ''}
            </li>
          ))}
      </ol>
    </aside>
  );
}
