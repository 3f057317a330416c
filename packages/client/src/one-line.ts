/**
 * `text` as one log field: whitespace runs (newlines too) become one space, and a long text is cut with
 * its length noted, so a peer's message can neither break a log line nor flood it.
 */
export function oneLine(text: string, max = 300): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max)}… (${line.length} characters)` : line;
}
