import { useMemo, useState } from 'preact/hooks';
import { post } from './api';
import { RoundChart } from './chart';
import { droppedIn, LEFT_STATES } from './fates';
import { bytes, fixed, percent, when } from './format';
import type { ConsoleMode, RunView, SiteEvent } from './types';

/** The status and, when the run recorded one, why it is there. */
export function StatusLine({ run }: { run: Pick<RunView, 'status' | 'reason' | 'live'> }) {
  return (
    <p class="status-line">
      <span class={`status status-${run.status}`} data-status={run.status}>
        {run.status}
      </span>
      {run.reason && (
        <span class="reason">
          {' '}
          {run.reason.message}
          <span class="muted">
            {' '}
            ({run.reason.phase}
            {run.reason.round > 0 ? `, round ${run.reason.round}` : ''}
            {run.reason.code ? `, ${run.reason.code}` : ''})
          </span>
        </span>
      )}
    </p>
  );
}

const ACTIONS = [
  { action: 'start', label: 'Start', when: ['created'] },
  { action: 'pause', label: 'Pause', when: ['running'] },
  { action: 'resume', label: 'Resume', when: ['paused'] },
  { action: 'stop', label: 'Stop', when: ['created', 'running', 'paused'] },
] as const;

/** One run: progress, actions, charts over rounds, every round's sites, per-site ε, exclusions. */
export function RunPage({ run, mode, events }: { run: RunView; mode: ConsoleMode; events: SiteEvent[] }) {
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const total = run.config?.rounds ?? run.live?.rounds ?? run.rounds.length;
  const done = run.rounds.filter((r) => r.status !== 'no-quorum').length;
  const xs = useMemo(() => run.rounds.map((r) => r.round), [run.rounds]);
  const loss = useMemo(
    () => [
      { label: 'train loss', values: run.rounds.map((r) => r.trainLoss), color: '#1f5f8b' },
      { label: 'val loss', values: run.rounds.map((r) => r.valLoss), color: '#c05621', dash: [6, 4] },
    ],
    [run.rounds],
  );
  const accuracy = useMemo(() => [{ label: 'val accuracy', values: run.rounds.map((r) => r.valAccuracy), color: '#2f855a' }], [run.rounds]);
  const sitesOf = new Map((run.roundSites ?? []).map((r) => [r.round, r]));

  const act = async (action: string) => {
    setBusy(true);
    setError(undefined);
    try {
      await post(`/api/runs/${encodeURIComponent(run.id)}/${action}`);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <article class="run" aria-labelledby="run-title">
      <header>
        <h1 id="run-title">Run {run.id}</h1>
        <StatusLine run={run} />
        <p class="progress-line">
          <label for="run-progress">
            Round <span data-testid="rounds-done">{done}</span> of {total}
          </label>{' '}
          <progress id="run-progress" max={total || 1} value={done} />
          {run.live && (
            <span class="muted">
              {' '}
              now: {run.live.phase}
              {run.live.round > 0 ? ` of round ${run.live.round}` : ''}
              {run.live.expected > 0 ? ` (${run.live.received}/${run.live.expected} answers)` : ''}, {run.live.readyClients} sites ready (need{' '}
              {run.live.minClients})
            </span>
          )}
        </p>
        <p class="muted">
          {run.config?.strategy?.name ?? ''} · created {when(run.createdAt)} · updated {when(run.updatedAt)}
        </p>
        {mode === 'operator' && (
          <section class="actions" aria-label="Run actions">
            {ACTIONS.filter((a) => (a.when as readonly string[]).includes(run.status)).map((a) => (
              <button type="button" key={a.action} disabled={busy} onClick={() => act(a.action)}>
                {a.label}
              </button>
            ))}
            {done > 0 && (
              <a class="button" href={`/api/runs/${encodeURIComponent(run.id)}/model`} download>
                Download model
              </a>
            )}
          </section>
        )}
        {error && (
          <p role="alert" class="error">
            {error}
          </p>
        )}
      </header>

      {run.rounds.length > 0 && (
        <section class="charts" aria-label="Charts over rounds">
          <RoundChart title="Loss" rounds={xs} lines={loss} />
          <RoundChart title="Validation accuracy" rounds={xs} lines={accuracy} percent />
        </section>
      )}

      <section aria-labelledby="rounds-title">
        <h2 id="rounds-title">Rounds</h2>
        {run.rounds.length === 0 ? (
          <p>No round recorded yet.</p>
        ) : (
          <table class="rounds">
            <thead>
              <tr>
                <th scope="col">Round</th>
                <th scope="col">Result</th>
                <th scope="col">Accepted / selected</th>
                <th scope="col">Train loss</th>
                <th scope="col">Val loss</th>
                <th scope="col">Val acc</th>
                <th scope="col">Bytes in / out</th>
                <th scope="col">Seconds</th>
                {run.rounds.some((r) => r.epsilon !== undefined) && <th scope="col">max ε</th>}
                <th scope="col">Sites</th>
              </tr>
            </thead>
            <tbody>
              {run.rounds.map((r) => {
                const s = sitesOf.get(r.round);
                const dropped = droppedIn(run, r.round, events);
                return (
                  <tr key={`${r.round}-${r.status}`} data-round={r.round}>
                    <th scope="row">{r.round}</th>
                    <td>{r.status}</td>
                    <td>
                      {r.accepted}/{r.selected}
                      {r.rejected > 0 ? `, ${r.rejected} rejected` : ''}
                      {r.failed > 0 ? `, ${r.failed} dropped` : ''}
                      {r.excluded ? `, ${r.excluded} excluded` : ''}
                    </td>
                    <td>{fixed(r.trainLoss)}</td>
                    <td>{fixed(r.valLoss)}</td>
                    <td>{percent(r.valAccuracy)}</td>
                    <td>
                      {bytes(r.bytesIn)} / {bytes(r.bytesOut)}
                    </td>
                    <td>{r.seconds.toFixed(1)}</td>
                    {run.rounds.some((x) => x.epsilon !== undefined) && <td>{fixed(r.epsilon, 2)}</td>}
                    <td class="round-sites">
                      {s && s.participants.length > 0 && <span class="ok">took part: {s.participants.join(', ')}</span>}
                      {s?.rejected.map((x) => (
                        <span class="bad" key={x.clientId}>
                          rejected {x.clientId}: {x.reason} ({x.message})
                        </span>
                      ))}
                      {dropped.map((d) => (
                        <span class="bad dropped" key={d.client} data-dropped={d.client}>
                          dropped {d.client}: {d.why}
                        </span>
                      ))}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
      </section>

      {run.sites && run.sites.length > 0 && (
        <section aria-labelledby="run-sites-title">
          <h2 id="run-sites-title">Sites in this run</h2>
          <table class="run-sites">
            <thead>
              <tr>
                <th scope="col">Site</th>
                <th scope="col">State</th>
                <th scope="col">Round</th>
                <th scope="col">Why</th>
                <th scope="col">Since</th>
              </tr>
            </thead>
            <tbody>
              {run.sites.map((s) => (
                <tr key={s.client} data-site={s.client} data-state={s.state} class={LEFT_STATES.has(s.state) ? 'left' : ''}>
                  <th scope="row">{s.client}</th>
                  <td>{s.state}</td>
                  <td>{s.round ?? '–'}</td>
                  <td>{s.message ?? ''}</td>
                  <td>{when(s.at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}

      {run.privacy && (
        <section aria-labelledby="privacy-title">
          <h2 id="privacy-title">Privacy after round {run.privacy.round}</h2>
          <table>
            <thead>
              <tr>
                <th scope="col">Site</th>
                <th scope="col">ε spent</th>
                <th scope="col">δ</th>
                <th scope="col">Budget</th>
              </tr>
            </thead>
            <tbody>
              {run.privacy.sites.map((p) => (
                <tr key={p.client}>
                  <th scope="row">{p.client}</th>
                  <td>{fixed(p.epsilon, 2)}</td>
                  <td>{p.delta}</td>
                  <td>{p.budget ?? '–'}</td>
                </tr>
              ))}
              {run.privacy.refused.map((p) => (
                <tr key={p.client} class="left">
                  <th scope="row">{p.client}</th>
                  <td colSpan={3}>refused the round: {p.message}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}

      {run.exclusions && run.exclusions.length > 0 && (
        <section aria-labelledby="exclusions-title">
          <h2 id="exclusions-title">Left out by the trust policy</h2>
          <ul>
            {run.exclusions.map((x) => (
              <li key={`${x.type}-${x.round}-${x.client}`}>
                round {x.round}, {x.client}: {x.type} ({x.reason}) {x.message}
              </li>
            ))}
          </ul>
        </section>
      )}
    </article>
  );
}
