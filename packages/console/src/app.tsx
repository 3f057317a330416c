import { useEffect, useRef, useState } from 'preact/hooks';
import { logout } from './api';
import { RunsPage, SiteLog, SitesPage } from './lists';
import { Live } from './live';
import { RunForm } from './run-form';
import { RunPage } from './run-page';
import type { ClientView, ConsoleMode, RunListItem, RunView, SiteEvent } from './types';

/** Where the page is: `#/runs`, `#/runs/<id>`, `#/new`, `#/sites`. */
type Route = { page: 'runs' } | { page: 'run'; id: string } | { page: 'new' } | { page: 'sites' };

function route(): Route {
  const hash = location.hash.replace(/^#\/?/, '');
  if (hash.startsWith('runs/')) return { page: 'run', id: decodeURIComponent(hash.slice(5)) };
  if (hash === 'new') return { page: 'new' };
  if (hash === 'sites') return { page: 'sites' };
  return { page: 'runs' };
}

/** The console: navigation, and the page of the route, all fed by the live channel. */
export function App({ mode }: { mode: ConsoleMode }) {
  const [where, setWhere] = useState<Route>(route());
  const [runs, setRuns] = useState<RunListItem[]>([]);
  const [clients, setClients] = useState<ClientView[]>([]);
  const [run, setRun] = useState<RunView>();
  const [events, setEvents] = useState<SiteEvent[]>([]);
  const [connection, setConnection] = useState<{ up: boolean; why?: string }>({ up: false });
  const [watchError, setWatchError] = useState<string>();
  const live = useRef<Live | undefined>(undefined);
  const main = useRef<HTMLElement>(null);

  useEffect(() => {
    const onHash = () => setWhere(route());
    window.addEventListener('hashchange', onHash);
    live.current = new Live({
      state: (s) => {
        setRuns(s.runs);
        setClients(s.clients);
      },
      runs: setRuns,
      clients: setClients,
      run: (r) => setRun((current) => (current === undefined || current.id === r.id ? r : current)),
      site: (e) => setEvents((all) => [...all.slice(-199), e]),
      connection: (up, why) => setConnection({ up, ...(why ? { why } : {}) }),
    });
    return () => {
      window.removeEventListener('hashchange', onHash);
      live.current?.close();
    };
  }, []);

  // The run on screen: the route's, or on the sites page the newest run.
  const watchedId = where.page === 'run' ? where.id : where.page === 'sites' ? runs[0]?.id : undefined;
  useEffect(() => {
    setWatchError(undefined);
    if (watchedId === undefined) {
      setRun(undefined);
      void live.current?.watch(null).catch(() => {});
      return;
    }
    if (run?.id !== watchedId) setRun(undefined);
    live.current
      ?.watch(watchedId)
      .then((r) => r && setRun(r))
      .catch((err: Error) => setWatchError(err.message));
  }, [watchedId, connection.up]);

  // A new page takes the focus, so keyboard and screen-reader users start at its heading.
  useEffect(() => main.current?.focus(), [where.page]);

  const nav = (page: Route['page'], label: string, href: string) => (
    <li>
      <a href={href} aria-current={where.page === page ? 'page' : undefined}>
        {label}
      </a>
    </li>
  );

  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <p class="brand">ftl console{mode === 'read-only' ? ' (read-only)' : ''}</p>
        <nav aria-label="Main">
          <ul>
            {nav('runs', 'Runs', '#/runs')}
            {nav('sites', 'Sites', '#/sites')}
            {mode === 'operator' && nav('new', 'New run', '#/new')}
          </ul>
        </nav>
        <p class={`connection ${connection.up ? 'up' : 'down'}`} role="status">
          {connection.up ? 'live' : `not connected${connection.why ? ` (${connection.why})` : ''}`}
        </p>
        {mode === 'operator' && (
          <button type="button" class="logout" onClick={() => void logout()}>
            Log out
          </button>
        )}
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        {where.page === 'runs' && <RunsPage runs={runs} mode={mode} />}
        {where.page === 'new' && mode === 'operator' && <RunForm onCreated={(id) => location.assign(`#/runs/${encodeURIComponent(id)}`)} />}
        {where.page === 'sites' && <SitesPage clients={clients} latest={run} events={events} />}
        {where.page === 'run' &&
          (run ? <RunPage run={run} mode={mode} events={events} /> : <p role="status">{watchError ?? `Loading run ${where.id}…`}</p>)}
        <SiteLog events={events} />
      </main>
    </>
  );
}
