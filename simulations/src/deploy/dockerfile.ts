/**
 * A parser for the instruction lines of a Dockerfile (the grammar of docs.docker.com/reference/dockerfile):
 * parser directives, comments, line continuations, the instructions and the shape of each one's arguments,
 * and stages. It checks what Docker would refuse when it reads the file, so the deploy files can be checked
 * where Docker does not run; it does not build anything. Heredocs are refused as not handled.
 */

/** Every instruction keyword Docker knows. */
export const DOCKERFILE_INSTRUCTIONS = [
  'ADD',
  'ARG',
  'CMD',
  'COPY',
  'ENTRYPOINT',
  'ENV',
  'EXPOSE',
  'FROM',
  'HEALTHCHECK',
  'LABEL',
  'MAINTAINER',
  'ONBUILD',
  'RUN',
  'SHELL',
  'STOPSIGNAL',
  'USER',
  'VOLUME',
  'WORKDIR',
] as const;
export type DockerfileKeyword = (typeof DOCKERFILE_INSTRUCTIONS)[number];

/** One instruction: its keyword, its `--flag=value` options, and its arguments (JSON form or split on spaces). */
export interface DockerInstruction {
  keyword: DockerfileKeyword;
  /** The line the instruction starts on (1-based). */
  line: number;
  flags: Record<string, string>;
  /** The arguments after the flags, as written (continuations joined with a space). */
  text: string;
  /** The JSON (exec) form's array, or the text split on whitespace. */
  args: string[];
  json: boolean;
}

/** One build stage: its `FROM`, its name (`AS name`) and its instructions. */
export interface DockerStage {
  name?: string;
  base: string;
  index: number;
  instructions: DockerInstruction[];
}

/** A parsed Dockerfile: instructions before the first FROM (only ARG) and the stages. */
export interface Dockerfile {
  directives: Record<string, string>;
  globalArgs: DockerInstruction[];
  stages: DockerStage[];
}

/** A Dockerfile Docker would refuse: the line and what is wrong. */
export class DockerfileError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
  }
}

const FLAGS: Partial<Record<DockerfileKeyword, readonly string[]>> = {
  FROM: ['platform'],
  COPY: ['from', 'chown', 'chmod', 'link', 'parents', 'exclude'],
  ADD: ['chown', 'chmod', 'link', 'keep-git-dir', 'checksum', 'exclude'],
  RUN: ['mount', 'network', 'security'],
  HEALTHCHECK: ['interval', 'timeout', 'start-period', 'start-interval', 'retries'],
};
const JSON_FORMS = new Set<DockerfileKeyword>(['CMD', 'ENTRYPOINT', 'RUN', 'SHELL', 'VOLUME', 'COPY', 'ADD']);
const DURATION = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/;

/** Logical lines: continuations joined, comments and blank lines dropped, each with its first line number. */
function logicalLines(text: string, escapeChar: string, firstLine: number): { line: number; text: string }[] {
  const raw = text.split(/\r?\n/);
  const out: { line: number; text: string }[] = [];
  let current: { line: number; parts: string[] } | undefined;
  for (let i = firstLine; i < raw.length; i++) {
    const line = raw[i]!;
    const trimmed = line.trim();
    // Comment lines are removed before continuations are handled, also inside a continued instruction.
    if (trimmed.startsWith('#')) continue;
    if (trimmed === '' && current === undefined) continue;
    const continued = line.trimEnd().endsWith(escapeChar);
    const body = continued ? line.trimEnd().slice(0, -escapeChar.length) : line;
    if (current === undefined) current = { line: i + 1, parts: [] };
    if (body.trim() !== '') current.parts.push(body.trim());
    if (!continued) {
      out.push({ line: current.line, text: current.parts.join(' ') });
      current = undefined;
    }
  }
  if (current !== undefined)
    throw new DockerfileError(current.line, `the instruction ends in a line continuation ("${escapeChar}") with nothing after it`);
  return out;
}

/** `--name=value` (or `--name` alone) options at the start of an instruction's arguments. */
function takeFlags(keyword: DockerfileKeyword, rest: string, line: number): { flags: Record<string, string>; rest: string } {
  const flags: Record<string, string> = {};
  let text = rest;
  for (let m = /^--([a-z-]+)(=(\S*))?\s*/.exec(text); m; m = /^--([a-z-]+)(=(\S*))?\s*/.exec(text)) {
    const allowed = FLAGS[keyword] ?? [];
    if (!allowed.includes(m[1]!))
      throw new DockerfileError(
        line,
        `${keyword} has no option --${m[1]}${allowed.length ? ` (it takes ${allowed.map((f) => `--${f}`).join(', ')})` : ''}`,
      );
    flags[m[1]!] = m[3] ?? 'true';
    text = text.slice(m[0].length);
  }
  return { flags, rest: text };
}

/**
 * The exec (JSON) form's words, or undefined for the shell form. Text that only looks like JSON runs in the
 * shell form, as Docker does, unless `strict` (SHELL, which has no shell form).
 */
function parseJsonArgs(what: string, text: string, line: number, strict = false): string[] | undefined {
  if (!text.startsWith('[')) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    if (strict) throw new DockerfileError(line, `${what} takes a JSON array of strings`);
    return undefined;
  }
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string'))
    throw new DockerfileError(line, `${what}'s JSON form must be an array of strings`);
  return value;
}

function checkInstruction(ins: DockerInstruction): void {
  const { keyword, args, line, text, flags } = ins;
  const need = (ok: boolean, what: string) => {
    if (!ok) throw new DockerfileError(line, `${keyword} ${what} (got "${text}")`);
  };
  if (text.trim() === '' && keyword !== 'CMD' && keyword !== 'ENTRYPOINT') throw new DockerfileError(line, `${keyword} needs arguments`);
  if (/<<-?["']?[A-Za-z_]+["']?/.test(text) && (keyword === 'RUN' || keyword === 'COPY' || keyword === 'ADD'))
    throw new DockerfileError(line, 'heredocs are not handled by this parser');
  switch (keyword) {
    case 'FROM':
      need(
        args.length === 1 || (args.length === 3 && args[1]!.toUpperCase() === 'AS' && /^[a-z][a-z0-9_.-]*$/.test(args[2]!)),
        'takes an image and optionally "AS name" (lower case)',
      );
      break;
    case 'COPY':
    case 'ADD':
      need(args.length >= 2, 'needs at least one source and a destination');
      break;
    case 'USER':
      need(args.length === 1 && /^[A-Za-z0-9_.$-]+(:[A-Za-z0-9_.$-]+)?$/.test(args[0]!), 'takes one user[:group]');
      break;
    case 'WORKDIR':
    case 'STOPSIGNAL':
    case 'MAINTAINER':
      need(args.length >= 1, 'takes one value');
      break;
    case 'EXPOSE':
      need(
        args.every((a) => /^(\d+(-\d+)?|\$\{?\w+\}?)(\/(tcp|udp))?$/.test(a)),
        'takes ports, each PORT[/tcp|udp]',
      );
      break;
    case 'ENV':
    case 'LABEL':
      need(/^[^=\s]+=/.test(text) || (keyword === 'ENV' && args.length >= 2), 'takes key=value pairs');
      if (/^[^=\s]+=/.test(text))
        need(
          splitPairs(text).every((p) => /^[^=\s]+=/.test(p)),
          'takes key=value pairs',
        );
      break;
    case 'ARG':
      need(args.length === 1 && /^[A-Za-z_][A-Za-z0-9_]*(=.*)?$/.test(args[0]!), 'takes one NAME[=default]');
      break;
    case 'HEALTHCHECK': {
      if (args[0]?.toUpperCase() === 'NONE') {
        need(args.length === 1 && Object.keys(flags).length === 0, 'NONE takes nothing else');
        break;
      }
      need(args[0]?.toUpperCase() === 'CMD' && args.length >= 2, 'takes options then CMD and a command, or NONE');
      const command = text.replace(/^CMD\s+/i, '');
      parseJsonArgs('HEALTHCHECK CMD', command, line);
      for (const f of ['interval', 'timeout', 'start-period', 'start-interval'])
        if (flags[f] !== undefined) need(DURATION.test(flags[f]!), `--${f} must be a duration such as 30s`);
      if (flags['retries'] !== undefined) need(/^\d+$/.test(flags['retries']), '--retries must be a whole number');
      break;
    }
    case 'ONBUILD':
      need(
        args.length >= 1 && !['ONBUILD', 'FROM', 'MAINTAINER'].includes(args[0]!.toUpperCase()),
        'takes another instruction (not ONBUILD, FROM or MAINTAINER)',
      );
      break;
    default:
      break;
  }
}

/** key=value pairs of ENV and LABEL, values possibly quoted. */
function splitPairs(text: string): string[] {
  return text.match(/[^\s=]+=("([^"\\]|\\.)*"|'[^']*'|\S*)/g) ?? [];
}

/**
 * Parses a Dockerfile's text.
 *
 * @throws DockerfileError naming the line, for an unknown instruction, an instruction whose arguments
 * Docker would refuse, an instruction other than ARG before the first FROM, or no FROM at all.
 * @example
 * const { stages } = parseDockerfile(readFileSync('deploy/client.Dockerfile', 'utf8'));
 */
export function parseDockerfile(text: string): Dockerfile {
  const lines = text.split(/\r?\n/);
  // Parser directives: `# key=value` lines at the very top, before any other comment, blank line or instruction.
  const directives: Record<string, string> = {};
  let first = 0;
  for (; first < lines.length; first++) {
    const m = /^#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*$/.exec(lines[first]!);
    if (!m || !['syntax', 'escape', 'check'].includes(m[1]!.toLowerCase())) break;
    directives[m[1]!.toLowerCase()] = m[2]!;
  }
  const escapeChar = directives['escape'] ?? '\\';
  if (escapeChar !== '\\' && escapeChar !== '`') throw new DockerfileError(1, `the escape directive takes \\ or \` (got "${escapeChar}")`);
  const file: Dockerfile = { directives, globalArgs: [], stages: [] };
  for (const { line, text: l } of logicalLines(text, escapeChar, first)) {
    const m = /^([A-Za-z]+)(\s+([\s\S]*))?$/.exec(l);
    const keyword = m?.[1]?.toUpperCase();
    if (!m || !(DOCKERFILE_INSTRUCTIONS as readonly string[]).includes(keyword!)) {
      throw new DockerfileError(line, `unknown instruction "${l.split(/\s/)[0]}"`);
    }
    const kw = keyword as DockerfileKeyword;
    const { flags, rest } = takeFlags(kw, (m[3] ?? '').trim(), line);
    const json = JSON_FORMS.has(kw) ? parseJsonArgs(kw, rest, line, kw === 'SHELL') : undefined;
    const ins: DockerInstruction = {
      keyword: kw,
      line,
      flags,
      text: rest,
      args: json ?? (rest === '' ? [] : rest.split(/\s+/)),
      json: json !== undefined,
    };
    checkInstruction(ins);
    if (kw === 'FROM') {
      file.stages.push({ base: ins.args[0]!, ...(ins.args[2] ? { name: ins.args[2] } : {}), index: file.stages.length, instructions: [] });
    } else if (file.stages.length === 0) {
      if (kw !== 'ARG') throw new DockerfileError(line, `${kw} before the first FROM (only ARG may come before it)`);
      file.globalArgs.push(ins);
    } else {
      file.stages.at(-1)!.instructions.push(ins);
    }
  }
  if (file.stages.length === 0) throw new DockerfileError(lines.length, 'no FROM: a Dockerfile needs at least one stage');
  for (const stage of file.stages) {
    for (const ins of stage.instructions) {
      const from = ins.keyword === 'COPY' ? ins.flags['from'] : undefined;
      if (from !== undefined && /^\d+$/.test(from) && Number(from) >= stage.index)
        throw new DockerfileError(ins.line, `COPY --from=${from} names a stage that is not before this one`);
    }
  }
  return file;
}

/** The stage a `COPY --from=` names, by name or index; undefined for an image reference. */
export function stageOf(file: Dockerfile, ref: string): DockerStage | undefined {
  return /^\d+$/.test(ref) ? file.stages[Number(ref)] : file.stages.find((s) => s.name === ref);
}
