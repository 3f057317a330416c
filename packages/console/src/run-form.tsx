import { useState } from 'preact/hooks';
import { ApiError, post } from './api';
import type { RunView } from './types';

/** A field of the form: its path in the run configuration, its label, and how its text is sent. */
interface Field {
  path: string;
  label: string;
  kind: 'text' | 'number' | 'strategy';
  hint: string;
}

const FIELDS: Field[] = [
  { path: 'runId', label: 'Run id', kind: 'text', hint: 'letters, digits, ".", "_" or "-"; empty: run-<time>' },
  { path: 'rounds', label: 'Rounds', kind: 'number', hint: 'default 5' },
  { path: 'minClients', label: 'Sites to wait for', kind: 'number', hint: 'ready sites before round 1; default 2' },
  { path: 'minFitClients', label: 'Updates needed per round', kind: 'number', hint: 'default 1' },
  { path: 'fractionFit', label: 'Share of sites per round', kind: 'number', hint: '(0, 1]; default 1' },
  { path: 'roundDeadlineSeconds', label: 'Round deadline (s)', kind: 'number', hint: 'default 60' },
  { path: 'waitTimeoutSeconds', label: 'Wait for sites (s)', kind: 'number', hint: 'default 120' },
  { path: 'fit.epochs', label: 'Local epochs', kind: 'number', hint: 'default 5' },
  { path: 'fit.batchSize', label: 'Batch size', kind: 'number', hint: 'default 32' },
  { path: 'fit.learningRate', label: 'Learning rate', kind: 'number', hint: 'default 0.001' },
  { path: 'strategy.name', label: 'Strategy', kind: 'strategy', hint: 'default fedavg' },
  { path: 'seed', label: 'Seed', kind: 'number', hint: 'default 1' },
];

/** Suggestions only: the coordinator's schema decides what is valid and says so. */
const STRATEGIES = [
  'fedavg',
  'fedprox',
  'fedavgm',
  'fedadam',
  'fedyogi',
  'fedadagrad',
  'fedmedian',
  'fedtrimmedavg',
  'krum',
  'multikrum',
  'normbounded',
];

/** The run configuration of the filled fields (empty ones take the defaults); text that is no number goes as text, for the schema to name. */
export function configOf(values: Record<string, string>): Record<string, unknown> {
  const config: Record<string, unknown> = {};
  for (const f of FIELDS) {
    const text = (values[f.path] ?? '').trim();
    if (text === '') continue;
    const value = f.kind === 'number' && text !== '' && Number.isFinite(Number(text)) ? Number(text) : text;
    const parts = f.path.split('.');
    let at = config;
    for (const p of parts.slice(0, -1)) at = (at[p] ??= {}) as Record<string, unknown>;
    at[parts.at(-1)!] = value;
  }
  return config;
}

/**
 * The API's one-line refusal split into its problems, each put beside the field it names
 * (`run config: rounds must be …; fit.epochs must be …`); problems of no field go above the form.
 */
export function fieldErrors(message: string): { byField: Record<string, string>; other: string[] } {
  const problems = message.replace(/^run config: /, '').split('; ');
  const byField: Record<string, string> = {};
  const other: string[] = [];
  for (const problem of problems) {
    const field = [...FIELDS]
      .sort((a, b) => b.path.length - a.path.length)
      .find((f) => problem.startsWith(`${f.path} `) || problem.startsWith(`${f.path}:`));
    if (field) byField[field.path] = byField[field.path] ? `${byField[field.path]}; ${problem}` : problem;
    else other.push(problem);
  }
  return { byField, other };
}

/** The form that creates a run: posted to the API, whose schema validates it (the same as for every API call). */
export function RunForm({ onCreated }: { onCreated: (id: string) => void }) {
  const [values, setValues] = useState<Record<string, string>>({});
  const [errors, setErrors] = useState<{ byField: Record<string, string>; other: string[] }>({ byField: {}, other: [] });
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    try {
      const run = await post<RunView>('/api/runs', configOf(values));
      setErrors({ byField: {}, other: [] });
      onCreated(run.id);
    } catch (err) {
      setErrors(
        err instanceof ApiError && err.code === 'INVALID_CONFIG' ? fieldErrors(err.message) : { byField: {}, other: [(err as Error).message] },
      );
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="new-run">
      <h1 id="new-run">New run</h1>
      <p>Empty fields take their defaults (docs/run-config.md). The coordinator checks the whole configuration.</p>
      {errors.other.length > 0 && (
        <div role="alert" class="error">
          {errors.other.map((o) => (
            <p key={o}>{o}</p>
          ))}
        </div>
      )}
      <form class="run-form" onSubmit={submit} noValidate>
        <datalist id="strategies">
          {STRATEGIES.map((s) => (
            <option key={s} value={s} />
          ))}
        </datalist>
        {FIELDS.map((f) => {
          const id = `f-${f.path.replace('.', '-')}`;
          const error = errors.byField[f.path];
          return (
            <div class="field" key={f.path}>
              <label for={id}>{f.label}</label>
              <input
                id={id}
                name={f.path}
                inputMode={f.kind === 'number' ? 'decimal' : 'text'}
                list={f.kind === 'strategy' ? 'strategies' : undefined}
                value={values[f.path] ?? ''}
                placeholder={f.hint}
                aria-invalid={error ? 'true' : undefined}
                aria-describedby={error ? `${id}-error` : undefined}
                onInput={(e) => setValues({ ...values, [f.path]: (e.target as HTMLInputElement).value })}
              />
              {error && (
                <p id={`${id}-error`} class="field-error" role="alert">
                  {error}
                </p>
              )}
            </div>
          );
        })}
        <div class="actions">
          <button type="submit" disabled={busy}>
            Create run
          </button>
        </div>
      </form>
    </section>
  );
}
