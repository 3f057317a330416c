import { describe, expect, test } from 'vitest';
import { createLogger, formatLogValue, MAX_LOG_VALUE_LENGTH } from './log.js';

/** A logger at debug level whose lines are collected. */
function collect() {
  const lines: string[] = [];
  return { lines, log: createLogger('coordinator', { level: 'debug', write: (l) => lines.push(l) }) };
}

// What no log line may carry raw: C0 controls (newline included), DEL, C1 controls, line separators, bidi overrides.
const RAW_UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

describe('logger', () => {
  test('plain values stay unquoted, values with spaces, = or quotes are JSON-quoted as before', () => {
    const { lines, log } = collect();
    log.info('round-start', { round: 3, clients: 'a,b', ok: true, note: 'two words', eq: 'a=b', q: 'say "hi"' });
    expect(lines).toEqual(['ftl coordinator info round-start round=3 clients=a,b ok=true note="two words" eq="a=b" q="say \\"hi\\""']);
  });

  test('a value carrying a terminal escape sequence is escaped, so the terminal never sees ESC', () => {
    const { lines, log } = collect();
    log.warn('failure', { client: 'c1', message: 'boom\x1b[2J\x1b]0;owned\x07' });
    expect(lines).toEqual(['ftl coordinator warn failure client=c1 message="boom\\u001b[2J\\u001b]0;owned\\u0007"']);
    expect(lines[0]).not.toMatch(RAW_UNSAFE);
  });

  test('a value cannot start a forged log line', () => {
    const { lines, log } = collect();
    log.info('failure', { message: 'x\nftl coordinator info forged round=9\r\n' });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toBe('ftl coordinator info failure message="x\\nftl coordinator info forged round=9\\r\\n"');
  });

  test('event names and keys are escaped too', () => {
    const { lines, log } = collect();
    log.info('evt\nftl coordinator info forged', { 'k\u001b[31m': 'v', 'a b': 1 });
    expect(lines).toEqual(['ftl coordinator info "evt\\nftl coordinator info forged" "k\\u001b[31m"=v "a b"=1']);
  });

  test.each([
    ['DEL', '\x7f'],
    ['C1 CSI', '\x9b2J'],
    ['NEL', '\x85'],
    ['a line separator', '\u2028'],
    ['a bidi override', 'abc\u202edef'],
    ['NUL', '\0'],
    ['tab', '\t'],
  ])('%s is escaped and the value reads back with JSON.parse', (_, value) => {
    const out = formatLogValue(`v${value}`);
    expect(out).not.toMatch(RAW_UNSAFE);
    expect(JSON.parse(out)).toBe(`v${value}`);
  });

  test('a 100 kB value is cut with its length noted, and the line stays short', () => {
    const { lines, log } = collect();
    log.info('failure', { message: 'x'.repeat(100_000), after: 'kept' });
    expect(lines[0]).toBe(
      `ftl coordinator info failure message="${'x'.repeat(MAX_LOG_VALUE_LENGTH)}…(+${100_000 - MAX_LOG_VALUE_LENGTH} chars)" after=kept`,
    );
  });

  test('cutting happens before escaping: a long run of controls is bounded too', () => {
    const out = formatLogValue('\x1b'.repeat(100_000));
    expect(out).toBe(`"${'\\u001b'.repeat(MAX_LOG_VALUE_LENGTH)}…(+${100_000 - MAX_LOG_VALUE_LENGTH} chars)"`);
  });
});
