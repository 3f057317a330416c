import { readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findCycle, resolveRelative, sources, specifiersOf } from '@ftl/shared/testing';
import { describe, expect, test } from 'vitest';

const SRC = dirname(fileURLToPath(import.meta.url));

/** The relative imports of one file (type-only ones too: a cycle of types is still a knot), as absolute .ts paths. */
function importsOf(file: string): string[] {
  return specifiersOf(readFileSync(file, 'utf8')).flatMap((s) => resolveRelative(file, s) ?? []);
}

describe("the coordinator's modules", () => {
  test('import each other without a cycle', () => {
    const files = sources(SRC);
    expect(files.length).toBeGreaterThan(20);
    const cycle = findCycle(new Map(files.map((f) => [f, importsOf(f)])));
    expect(cycle?.map((p) => relative(SRC, p))).toBeUndefined();
  });

  test('reads relative imports, type-only ones included', () => {
    expect(importsOf(join(SRC, 'coordinator-server.ts'))).toContain(join(SRC, 'operator-api.ts'));
    expect(importsOf(join(SRC, 'coordinator.ts'))).toContain(join(SRC, 'federated-run.ts'));
  });
});
