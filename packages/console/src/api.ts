/** The operator API as the console calls it: the session cookie goes along, state changes carry the CSRF token. */

let csrf = '';

/** What the console learns about its session (GET /console/session). */
export async function loadSession(): Promise<{ mode: 'operator' | 'read-only'; csrf?: string } | undefined> {
  const res = await fetch('/console/session', { credentials: 'same-origin' });
  if (res.status === 401) return undefined;
  const body = (await res.json()) as { mode: 'operator' | 'read-only'; csrf?: string };
  csrf = body.csrf ?? '';
  return body;
}

/** An API error: its code and its one-line message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** POSTs `body` (JSON) to an API path; resolves with the answer's JSON or rejects with an {@link ApiError}. */
export async function post<T>(path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json', 'x-ftl-csrf': csrf },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = (await res.json().catch(() => ({}))) as { error?: { code: string; message: string } };
  if (!res.ok) {
    if (res.status === 401) location.assign('/');
    throw new ApiError(res.status, json.error?.code ?? String(res.status), json.error?.message ?? res.statusText);
  }
  return json as T;
}

/** Ends the session and goes back to the login form. */
export async function logout(): Promise<void> {
  await fetch('/console/logout', { method: 'POST', credentials: 'same-origin', headers: { 'x-ftl-csrf': csrf } });
  location.assign('/');
}
