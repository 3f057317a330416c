import { existsSync, readFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { findCycle, resolveRelative, sources, specifiersOf } from '../test-support/import-graph.js';

// The package boundaries the design rests on, read from the sources: what `protocol` and `fl` may pull
// in, which package may import which, that built code leaves test tools and fixtures alone, and no cycles
// inside `shared`. Each failure is one line naming the chain of files that breaks the rule, so the fix
// starts from the right import.

const SHARED = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PACKAGES = dirname(SHARED);
const ROOT = dirname(PACKAGES);
const SRC = join(SHARED, 'src');

/** Subpaths of `@ftl/shared` whose files import no tfjs and do no I/O. */
const PURE_SUBPATHS = ['protocol', 'fl'];

const show = (file: string) => relative(ROOT, file).split(sep).join('/');

/** Each file's specifiers, read once; undefined for a file that does not exist. */
function importGraph(): (file: string) => string[] | undefined {
  const cache = new Map<string, string[] | undefined>();
  return (file) => {
    if (!cache.has(file)) cache.set(file, existsSync(file) ? specifiersOf(readFileSync(file, 'utf8')) : undefined);
    return cache.get(file);
  };
}

/**
 * Walks relative imports from `entry` and returns, for each forbidden package import reached, the chain
 * of files that leads to it as one line (`a.ts → b.ts → @tensorflow/tfjs`). A relative import of a file
 * that does not exist is reported too, so a renamed file cannot hide a chain.
 */
function forbiddenChains(entry: string, forbidden: (specifier: string) => boolean, importsOf: (file: string) => string[] | undefined): string[] {
  const chains: string[] = [];
  const seen = new Set<string>();
  const walk = (file: string, path: string[]): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const here = [...path, show(file)];
    const specifiers = importsOf(file);
    if (!specifiers) {
      chains.push(`${here.join(' → ')} (no such file)`);
      return;
    }
    for (const s of specifiers) {
      const next = resolveRelative(file, s);
      if (next) walk(next, here);
      else if (forbidden(s)) chains.push([...here, s].join(' → '));
    }
  };
  walk(entry, []);
  return chains;
}

/** The source file behind a subpath export of @ftl/shared (`./dist/x.js` → `src/x.ts`). */
function entryOf(name: string): string {
  const subpath = `./${name}`;
  const exports = JSON.parse(readFileSync(join(SHARED, 'package.json'), 'utf8')).exports as Record<string, { default: string }>;
  const target = exports[subpath]?.default;
  if (!target) throw new Error(`@ftl/shared has no "${subpath}" export; packages/shared/package.json must declare it`);
  return join(SRC, target.replace(/^\.\/dist\//, '').replace(/\.js$/, '.ts'));
}

const tfjsOrIo = (s: string) => s.startsWith('@tensorflow/') || isBuiltin(s);

describe('package boundaries', () => {
  test.each(PURE_SUBPATHS)('@ftl/shared/%s reaches no tfjs and no Node I/O module', (subpath) => {
    const entry = entryOf(subpath);
    expect(existsSync(entry), `${show(entry)} is missing`).toBe(true);
    const chains = forbiddenChains(entry, tfjsOrIo, importGraph());
    expect(chains, chains.join('\n')).toEqual([]);
  });

  test.each([
    ['coordinator', 'client'],
    ['client', 'coordinator'],
  ])('packages/%s imports nothing from packages/%s', (pkg, other) => {
    const src = join(PACKAGES, pkg, 'src');
    const files = sources(src, true);
    expect(files.length).toBeGreaterThan(10);
    const otherDir = join(PACKAGES, other) + sep;
    const offending = files.flatMap((f) =>
      specifiersOf(readFileSync(f, 'utf8'))
        .filter((s) => s === `@ftl/${other}` || s.startsWith(`@ftl/${other}/`) || (resolveRelative(f, s) ?? '').startsWith(otherDir))
        .map((s) => `${show(f)} → ${s}`),
    );
    expect(offending, offending.join('\n')).toEqual([]);
  });

  test('code that is built imports no test tool and no test fixture', () => {
    const built = [...['shared', 'coordinator', 'client'].map((p) => join(PACKAGES, p, 'src')), join(ROOT, 'simulations', 'src')].flatMap((d) =>
      sources(d),
    );
    const testSupport = join(SHARED, 'test-support') + sep;
    const offending = built.flatMap((f) =>
      specifiersOf(readFileSync(f, 'utf8'))
        .filter(
          (s) => s === 'vitest' || s.startsWith('vitest/') || s === '@ftl/shared/testing' || (resolveRelative(f, s) ?? '').startsWith(testSupport),
        )
        .map((s) => `${show(f)} → ${s}`),
    );
    expect(offending, offending.join('\n')).toEqual([]);
  });

  test('the files of packages/shared/src import each other without a cycle', () => {
    const files = sources(SRC);
    expect(files.length).toBeGreaterThan(40);
    const importsOf = importGraph();
    const graph = new Map(files.map((f) => [f, (importsOf(f) ?? []).flatMap((s) => resolveRelative(f, s) ?? [])]));
    const cycle = findCycle(graph);
    expect(cycle?.map(show).join(' → ')).toBeUndefined();
  });
});

describe('the boundary checks themselves', () => {
  test('read every kind of import, type-only and multi-line ones included, and skip comments', () => {
    const text = [
      "import * as tf from '@tensorflow/tfjs';",
      "import type { A } from './a.js';",
      "import {\n  b,\n  c,\n} from './b.js';",
      "export { d } from './d.js';",
      "export * from './e.js';",
      "import './side-effect.js';",
      "const m = await import('node:fs');",
      "// import { x } from './commented.js';",
      "/** @example import { y } from '@ftl/client'; */",
    ].join('\n');
    expect(specifiersOf(text).sort()).toEqual(['./a.js', './b.js', './d.js', './e.js', './side-effect.js', '@tensorflow/tfjs', 'node:fs'].sort());
  });

  test('name the whole chain to a forbidden import, one line each, and a missing file', () => {
    const graph: Record<string, string[]> = {
      [join(SRC, 'entry.ts')]: ['./protocol/a.js', 'zod', './gone.js'],
      [join(SRC, 'protocol/a.ts')]: ['../model/b.js', 'msgpackr'],
      [join(SRC, 'model/b.ts')]: ['@tensorflow/tfjs', '../protocol/a.js', 'node:fs'],
    };
    expect(forbiddenChains(join(SRC, 'entry.ts'), tfjsOrIo, (f) => graph[f])).toEqual([
      'packages/shared/src/entry.ts → packages/shared/src/protocol/a.ts → packages/shared/src/model/b.ts → @tensorflow/tfjs',
      'packages/shared/src/entry.ts → packages/shared/src/protocol/a.ts → packages/shared/src/model/b.ts → node:fs',
      'packages/shared/src/entry.ts → packages/shared/src/gone.ts (no such file)',
    ]);
  });

  test('the cycle finder finds a cycle, and none where imports go one way', () => {
    expect(
      findCycle(
        new Map([
          ['a', ['b']],
          ['b', ['c']],
          ['c', ['a']],
          ['d', ['a']],
        ]),
      ),
    ).toEqual(['a', 'b', 'c', 'a']);
    expect(
      findCycle(
        new Map([
          ['a', ['b', 'c']],
          ['b', ['c']],
          ['c', []],
        ]),
      ),
    ).toBeUndefined();
  });
});
