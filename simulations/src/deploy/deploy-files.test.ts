import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLIENT_HELP } from '@ftl/client';
import { describe, expect, test } from 'vitest';
import { DockerfileError, parseDockerfile, stageOf, type Dockerfile, type DockerStage } from './dockerfile.js';
import { parseUnitFile, splitExecLine, UnitFileError } from './unit-file.js';

// Docker and systemd do not run where the tests run: these check the deploy files as their readers would
// parse them, and what each must say (an unprivileged user, production dependencies only, state on volumes,
// the program the package installs).
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const binOf = (pkg: string) => (JSON.parse(read(`${pkg}/package.json`)) as { bin: Record<string, string> }).bin;

const IMAGES = [
  { file: 'deploy/coordinator.Dockerfile', pkg: 'packages/coordinator', bin: 'ftl-coordinator', volumes: ['/var/lib/ftl', '/backbones'] },
  { file: 'deploy/client.Dockerfile', pkg: 'packages/client', bin: 'ftl-client', volumes: ['/var/lib/ftl'] },
];

/** The final stage and the stages it copies files from: what the image is made of. */
function imageStages(file: Dockerfile): DockerStage[] {
  const final = file.stages.at(-1)!;
  const sources = final.instructions
    .filter((i) => i.keyword === 'COPY' && i.flags['from'] !== undefined)
    .map((i) => stageOf(file, i.flags['from']!))
    .filter((s) => s !== undefined);
  return [final, ...sources];
}

const npmInstalls = (stage: DockerStage) =>
  stage.instructions
    .filter((i) => i.keyword === 'RUN')
    .flatMap((i) => i.text.split(/&&|;|\|\|/).filter((c) => /\bnpm\s+(ci|install|i|add)\b/.test(c)));

describe.each(IMAGES)('$file', ({ file, pkg, bin, volumes }) => {
  const parsed = parseDockerfile(read(file));
  const final = parsed.stages.at(-1)!;
  const of = (keyword: string) => final.instructions.filter((i) => i.keyword === keyword);

  test('parses as a multi-stage build on a Node 20 image', () => {
    expect(parsed.stages.length).toBeGreaterThanOrEqual(2);
    // The stages' base is the NODE_IMAGE argument, as its default says.
    const arg = parsed.globalArgs.find((a) => a.args[0]!.startsWith('NODE_IMAGE='));
    const base = arg ? arg.args[0]!.split('=')[1]! : '';
    for (const stage of parsed.stages) expect(stage.base.replace(/^\$\{NODE_IMAGE\}$/, base)).toMatch(/^node:20(-|$)/);
  });

  test('runs as a user that is not root', () => {
    const user = of('USER').at(-1);
    expect(user, 'the final stage sets no USER').toBeDefined();
    expect(user!.args[0]!.split(':')[0]).not.toMatch(/^(root|0)$/);
  });

  test('installs no dev dependencies into the image, and installs the packed tarballs', () => {
    const installs = imageStages(parsed).flatMap(npmInstalls);
    expect(installs.length).toBeGreaterThan(0);
    for (const command of installs) {
      expect(command, command).toMatch(/--omit=dev\b/);
      expect(command, command).not.toMatch(/--include=dev|--save-dev|\s-D\b|--production=false/);
    }
    expect(installs.some((c) => /\.tgz\b/.test(c))).toBe(true);
    // The workspace with its dev tools is never copied into the final image, only the installed folder.
    const copied = final.instructions.filter((i) => i.keyword === 'COPY').map((i) => i.flags['from']);
    expect(copied.every((from) => from !== undefined)).toBe(true);
  });

  test('declares its state folders as volumes', () => {
    const declared = of('VOLUME').flatMap((v) => v.args);
    expect(declared).toEqual(expect.arrayContaining(volumes));
    // The state is written where the program runs: the work folder is a volume.
    expect(volumes).toContain(of('WORKDIR').at(-1)?.args[0]);
  });

  test("starts the package's own program from the installed node_modules/.bin", () => {
    expect(Object.keys(binOf(pkg))).toContain(bin);
    expect(of('ENTRYPOINT').at(-1)?.args[0]).toBe(bin);
    const path = of('ENV')
      .flatMap((e) => e.args)
      .find((a) => a.startsWith('PATH='));
    expect(path).toMatch(/^PATH=\/opt\/ftl\/node_modules\/\.bin:/);
    const installed = imageStages(parsed).flatMap((s) => s.instructions.filter((i) => i.keyword === 'WORKDIR').map((i) => i.args[0]));
    expect(installed).toContain('/opt/ftl');
  });
});

describe('deploy/coordinator.Dockerfile health check', () => {
  test('probes a path the coordinator answers', () => {
    const final = parseDockerfile(read('deploy/coordinator.Dockerfile')).stages.at(-1)!;
    const check = final.instructions.find((i) => i.keyword === 'HEALTHCHECK');
    expect(check, 'no HEALTHCHECK').toBeDefined();
    const url = final.instructions
      .filter((i) => i.keyword === 'ENV')
      .flatMap((i) => i.args)
      .find((a) => a.startsWith('FTL_HEALTH_URL='))!;
    const path = new URL(url.split('=')[1]!).pathname;
    expect(check!.text).toContain('FTL_HEALTH_URL');
    const sources = readdirSync(join(ROOT, 'packages/coordinator/src'))
      .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
      .map((f) => read(`packages/coordinator/src/${f}`));
    expect(
      sources.some((s) => s.includes(`'${path}'`)),
      `the coordinator's sources never name ${path}`,
    ).toBe(true);
  });
});

describe('deploy/ftl-client.service', () => {
  const unit = parseUnitFile(read('deploy/ftl-client.service'));
  const service = unit.get('Service')!;
  const one = (key: string) => service.get(key)?.at(-1);
  const exec = splitExecLine(one('ExecStart') ?? '');

  test('has the sections and keys of a service that starts at boot', () => {
    expect([...unit.keys()]).toEqual(['Unit', 'Service', 'Install']);
    expect(unit.get('Unit')!.get('Description')).toBeDefined();
    expect(unit.get('Install')!.get('WantedBy')).toEqual(['multi-user.target']);
    expect(one('Restart')).toMatch(/^(on-failure|always)$/);
  });

  test('runs ftl-client as installed by the package, with flags it knows', () => {
    expect(exec[0]).toMatch(/^\/.*\/node_modules\/\.bin\/[^/]+$/);
    expect(Object.keys(binOf('packages/client'))).toContain(exec[0]!.split('/').at(-1));
    const flags = exec.filter((w) => w.startsWith('--'));
    expect(flags.length).toBeGreaterThan(0);
    for (const flag of flags) expect(CLIENT_HELP, `${flag} is not an ftl-client flag`).toMatch(new RegExp(`^\\s+${flag}\\b`, 'm'));
  });

  test('runs as a dedicated user, hardened, writing only its cache folder', () => {
    expect(one('User')).toBeDefined();
    expect(one('User')).not.toMatch(/^(root|0)$/);
    expect(one('NoNewPrivileges')).toBe('yes');
    expect(one('ProtectSystem')).toBe('strict');
    const writable = (service.get('ReadWritePaths') ?? []).flatMap((v) => v.split(/\s+/));
    const cacheDir = exec[exec.indexOf('--cache-dir') + 1];
    expect(exec).toContain('--cache-dir');
    expect(writable.some((w) => cacheDir === w || cacheDir!.startsWith(`${w}/`))).toBe(true);
  });
});

describe('the Dockerfile parser', () => {
  test.each<[string, string, RegExp]>([
    ['an unknown instruction', 'FROM node:20\nRUNN echo', /line 2: unknown instruction "RUNN"/],
    ['an instruction before FROM', 'RUN echo\nFROM node:20', /line 1: RUN before the first FROM/],
    ['no FROM', 'ARG X=1', /no FROM/],
    ['a bad stage name', 'FROM node:20 AS Build', /FROM takes an image/],
    ['COPY with one argument', 'FROM node:20\nCOPY a', /COPY needs at least one source/],
    ['an unknown option', 'FROM node:20\nCOPY --own=1 a b', /COPY has no option --own/],
    ['a bad health check interval', 'FROM node:20\nHEALTHCHECK --interval=soon CMD true', /--interval must be a duration/],
    ['a health check exec form that is not JSON strings', 'FROM node:20\nHEALTHCHECK CMD ["a", 1]', /array of strings/],
    ['a continuation at the end', 'FROM node:20\nRUN echo \\', /line continuation/],
    ['a user with spaces', 'FROM node:20\nUSER a b', /USER takes one user/],
    ['COPY --from a later stage', 'FROM node:20\nCOPY --from=1 /a /b\nFROM node:20', /not before this one/],
  ])('refuses %s', (_, text, message) => {
    expect(() => parseDockerfile(text)).toThrow(DockerfileError);
    expect(() => parseDockerfile(text)).toThrow(message);
  });

  test('joins continuations, skips comments inside them and reads directives, stages and JSON forms', () => {
    const f = parseDockerfile(
      '# syntax=docker/dockerfile:1\nFROM node:20 AS a\nRUN echo 1 \\\n# note\n  && echo 2\nFROM node:20\nCOPY --from=a /x /y\nCMD ["node", "x.js"]',
    );
    expect(f.directives).toEqual({ syntax: 'docker/dockerfile:1' });
    expect(f.stages.map((s) => s.name)).toEqual(['a', undefined]);
    expect(f.stages[0]!.instructions[0]!.text).toBe('echo 1 && echo 2');
    expect(f.stages[1]!.instructions[1]).toMatchObject({ keyword: 'CMD', json: true, args: ['node', 'x.js'] });
    expect(stageOf(f, 'a')).toBe(f.stages[0]);
  });
});

describe('the unit file parser', () => {
  test.each<[string, string, RegExp]>([
    ['a key outside a section', 'User=ftl', /outside any \[Section\]/],
    ['a line that is not Key=Value', '[Service]\nUser ftl', /expected Key=Value/],
    ['an unclosed header', '[Service', /section header/],
  ])('refuses %s', (_, text, message) => {
    expect(() => parseUnitFile(text)).toThrow(UnitFileError);
    expect(() => parseUnitFile(text)).toThrow(message);
  });

  test('joins continued values and keeps repeated keys in order', () => {
    const u = parseUnitFile('[Service]\nExecStart=/bin/a \\\n  --x 1\nEnvironment=A=1\nEnvironment=B=2');
    expect(u.get('Service')!.get('ExecStart')).toEqual(['/bin/a --x 1']);
    expect(u.get('Service')!.get('Environment')).toEqual(['A=1', 'B=2']);
    expect(splitExecLine('-/bin/a "b c" d')).toEqual(['/bin/a', 'b c', 'd']);
  });
});
