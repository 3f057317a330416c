/** Log levels, most to least verbose. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** Fields of one log event: run, round and client where they apply; never raw data or tokens. */
export type LogFields = Record<string, string | number | boolean | undefined>;

/** A structured logger: one line per event on stderr, `key=value` pairs after the event name. */
export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every event. */
  child(fields: LogFields): Logger;
}

function format(value: string | number | boolean): string {
  const s = String(value);
  return /[\s="]/.test(s) ? JSON.stringify(s) : s;
}

/**
 * Creates a logger. The level comes from `FTL_LOG` (debug|info|warn|error|silent), default `info`, which logs only
 * milestones (start, backend, connections, rounds); per-message detail is `debug`.
 *
 * @example
 * const log = createLogger('coordinator').child({ run: 'r1' });
 * log.info('round-start', { round: 1, clients: 5 });
 */
export function createLogger(
  component: string,
  options: { level?: LogLevel; write?: (line: string) => void; base?: LogFields } = {},
): Logger {
  const envLevel = process.env['FTL_LOG'] as LogLevel | undefined;
  const level: LogLevel = options.level ?? (envLevel && envLevel in rank ? envLevel : 'info');
  const write = options.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const base = options.base ?? {};
  const emit = (lvl: LogLevel, event: string, fields: LogFields = {}) => {
    if (rank[lvl] < rank[level]) return;
    const all: LogFields = { ...base, ...fields };
    const parts = [`ftl ${component} ${lvl} ${event}`];
    for (const [k, v] of Object.entries(all)) if (v !== undefined) parts.push(`${k}=${format(v)}`);
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
