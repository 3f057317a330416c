import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));

// Tests run on the TypeScript sources; the packages' `exports` point at `dist` for node at run time.
export default defineConfig({
  resolve: {
    alias: {
      '@ftl/shared': src('shared'),
      '@ftl/coordinator': src('coordinator'),
      '@ftl/client': src('client'),
    },
  },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'simulations/src/**/*.test.ts'],
    pool: 'forks',
    env: { FTL_LOG: process.env['FTL_LOG'] ?? 'warn' },
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
