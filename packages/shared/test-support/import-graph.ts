import { readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

// Reading a package's import graph from its sources, for the tests that hold the design's boundaries.

/** Every .ts file under `dir` (not .d.ts), test files only when `tests` is set. */
export function sources(dir: string, tests = false): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' || e.name === 'dist' ? [] : sources(path, tests);
    if (!e.name.endsWith('.ts') || e.name.endsWith('.d.ts')) return [];
    return tests || !e.name.endsWith('.test.ts') ? [path] : [];
  });
}

/**
 * The module specifiers one file imports: static imports, re-exports, side-effect imports and dynamic
 * imports of a literal, type-only ones included (a knot of types is still a knot). Comments are skipped.
 */
export function specifiersOf(text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const found = [
    ...code.matchAll(/^\s*(?:import|export)\b[^'"]*?\bfrom\s*['"]([^'"]+)['"]/gm),
    ...code.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm),
    ...code.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g),
  ];
  return [...new Set(found.map((m) => m[1]!))];
}

/** A relative specifier of `from` as the .ts file it names (`./x.js` → `./x.ts`), or undefined for a package. */
export function resolveRelative(from: string, specifier: string): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  return resolve(dirname(from), specifier.replace(/\.js$/, '.ts'));
}

/** The first cycle in an import graph (file → the files it imports), as the files around it, or undefined. */
export function findCycle(graph: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (f: string): string[] | undefined => {
    if (state.get(f) === 'done') return undefined;
    if (state.get(f) === 'open') return [...stack.slice(stack.indexOf(f)), f];
    state.set(f, 'open');
    stack.push(f);
    for (const next of graph.get(f) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    stack.pop();
    state.set(f, 'done');
    return undefined;
  };
  for (const f of graph.keys()) {
    const cycle = visit(f);
    if (cycle) return cycle;
  }
  return undefined;
}
