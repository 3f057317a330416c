/**
 * `text` as one log field: whitespace runs (newlines too) become one space, other control characters
 * (terminal escapes) a `?`, and a long text is cut with its length noted, so a peer's message can neither
 * break a log line, drive the terminal, nor flood the log.
 */
export function oneLine(text: string, max = 300): string {
  const line = text
    .replace(/\s+/g, ' ')
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, '?')
    .trim();
  return line.length > max ? `${line.slice(0, max)}… (${line.length} characters)` : line;
}
