import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const path = (p: string) => fileURLToPath(new URL(`./${p}`, import.meta.url));

// Tests run on the TypeScript sources; the packages' `exports` point at `dist` for node at run time.
// Each alias matches one specifier exactly: a plain string would also catch `@ftl/shared/<subpath>`.
export default defineConfig({
  resolve: {
    alias: [
      { find: /^@ftl\/shared$/, replacement: path('packages/shared/src/index.ts') },
      { find: /^@ftl\/shared\/(protocol|fl|ml|data|secagg)$/, replacement: path('packages/shared/src/$1.ts') },
      { find: /^@ftl\/shared\/testing$/, replacement: path('packages/shared/test-support/index.ts') },
      { find: /^@ftl\/coordinator$/, replacement: path('packages/coordinator/src/index.ts') },
      { find: /^@ftl\/client$/, replacement: path('packages/client/src/index.ts') },
    ],
  },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'simulations/src/**/*.test.ts'],
    pool: 'forks',
    env: { FTL_LOG: process.env['FTL_LOG'] ?? 'warn' },
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
