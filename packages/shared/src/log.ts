/** Log levels, most to least verbose. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** Fields of one log event: run, round and client where they apply; never raw data or tokens. */
export type LogFields = Record<string, string | number | boolean | undefined>;

/**
 * A structured logger: one line per event on stderr, `key=value` pairs after the event name. Whatever a
 * peer sent can be logged safely: every event name, key and value goes through {@link formatLogValue}.
 */
export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every event. */
  child(fields: LogFields): Logger;
}

/** Longest logged value, event or key, in UTF-16 units; longer ones are cut and their length noted. */
export const MAX_LOG_VALUE_LENGTH = 1000;

// Characters that must never reach a terminal or a log file raw: C0 controls (newlines included, so a
// value cannot start a forged log line), DEL, C1 controls (ESC sequences and their 8-bit forms), the
// Unicode line and paragraph separators, and bidirectional overrides that reorder what a reader sees.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const NEEDS_QUOTES = /[\s="\\\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
const SHORT_ESCAPES: Record<string, string> = { '\b': '\\b', '\t': '\\t', '\n': '\\n', '\f': '\\f', '\r': '\\r' };

/**
 * One value as it appears in a log line: cut to {@link MAX_LOG_VALUE_LENGTH} with `…(+N chars)`, and
 * quoted as a JSON string (control characters escaped) when it holds whitespace, `=`, `"`, `\` or a
 * character that is unsafe on a terminal; plain otherwise.
 */
export function formatLogValue(value: unknown): string {
  let s = String(value);
  if (s.length > MAX_LOG_VALUE_LENGTH) s = `${s.slice(0, MAX_LOG_VALUE_LENGTH)}…(+${s.length - MAX_LOG_VALUE_LENGTH} chars)`;
  if (!NEEDS_QUOTES.test(s)) return s;
  // The escapes are JSON's, so a quoted value can be read back with JSON.parse.
  const body = s.replace(/["\\]/g, (c) => `\\${c}`).replace(UNSAFE, (c) => SHORT_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return `"${body}"`;
}

/**
 * Creates a logger. The level comes from `FTL_LOG` (debug|info|warn|error|silent), default `info`, which logs only
 * milestones (start, backend, connections, rounds); per-message detail is `debug`.
 *
 * @example
 * const log = createLogger('coordinator').child({ run: 'r1' });
 * log.info('round-start', { round: 1, clients: 5 });
 */
export function createLogger(component: string, options: { level?: LogLevel; write?: (line: string) => void; base?: LogFields } = {}): Logger {
  const envLevel = process.env['FTL_LOG'] as LogLevel | undefined;
  const level: LogLevel = options.level ?? (envLevel && envLevel in rank ? envLevel : 'info');
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const base = options.base ?? {};
  const emit = (lvl: LogLevel, event: string, fields: LogFields = {}) => {
    if (rank[lvl] < rank[level]) return;
    const all: LogFields = { ...base, ...fields };
    const parts = [`ftl ${component} ${lvl} ${formatLogValue(event)}`];
    for (const [k, v] of Object.entries(all)) if (v !== undefined) parts.push(`${formatLogValue(k)}=${formatLogValue(v)}`);
    write(parts.join(' '));
  };
  return {
    debug: (e, f) => emit('debug', e, f),
    info: (e, f) => emit('info', e, f),
    warn: (e, f) => emit('warn', e, f),
    error: (e, f) => emit('error', e, f),
    child: (fields) => createLogger(component, { level, write, base: { ...base, ...fields } }),
  };
}
