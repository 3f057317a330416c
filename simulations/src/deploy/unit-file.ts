/**
 * A parser for systemd unit files (systemd.syntax(7)): `[Section]` headers, `Key=Value` lines, `#` and `;`
 * comments, and values continued on the next line by a trailing backslash. A key may repeat; its values
 * are kept in order.
 */

/** A unit file: each section's keys, each with its values in the order written. */
export type UnitFile = Map<string, Map<string, string[]>>;

/** A unit file systemd would not read: the line and what is wrong. */
export class UnitFileError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
  }
}

/**
 * Parses a unit file's text.
 *
 * @throws UnitFileError for a key outside any section, a line that is neither a header nor Key=Value, an
 * unclosed header, or a continuation at the end of the file.
 * @example
 * const unit = parseUnitFile(readFileSync('deploy/ftl-client.service', 'utf8'));
 * unit.get('Service')?.get('ExecStart'); // ['/opt/ftl/node_modules/.bin/ftl-client --server …']
 */
export function parseUnitFile(text: string): UnitFile {
  const unit: UnitFile = new Map();
  let section: Map<string, string[]> | undefined;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let line = lines[i]!.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    // A trailing backslash continues the value; comment lines inside a continuation are skipped.
    while (line.endsWith('\\')) {
      i++;
      if (i >= lines.length) throw new UnitFileError(start, 'the value ends in a line continuation with nothing after it');
      const next = lines[i]!.trim();
      line = `${line.slice(0, -1).trimEnd()}${next.startsWith('#') || next.startsWith(';') ? '\\' : ` ${next}`}`;
    }
    if (line.startsWith('[')) {
      const m = /^\[([^\][]+)\]$/.exec(line);
      if (!m) throw new UnitFileError(start, `a section header is [Name] (got ${line})`);
      section = unit.get(m[1]!) ?? new Map();
      unit.set(m[1]!, section);
      continue;
    }
    const m = /^([A-Za-z0-9_-]+)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new UnitFileError(start, `expected Key=Value (got ${line})`);
    if (!section) throw new UnitFileError(start, `${m[1]} is outside any [Section]`);
    section.set(m[1]!, [...(section.get(m[1]!) ?? []), m[2]!]);
  }
  return unit;
}

/** A command line of `ExecStart=` split into words, with systemd's double and single quotes. */
export function splitExecLine(value: string): string[] {
  const words: string[] = [];
  for (const m of value.matchAll(/"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g)) words.push(m[1] ?? m[2] ?? m[3]!);
  // A leading prefix such as "-" or "@" changes how systemd runs the command, not which program it runs.
  if (words[0]) words[0] = words[0].replace(/^[-@:+!]+/, '');
  return words;
}
