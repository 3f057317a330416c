import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

// Everything the page needs is bundled into dist/: it works inside a network with no way out. The
// socket.io parser is the project's own (msgpackr), taken from its source file so the bundle holds only it.
export default defineConfig({
  root: here('.'),
  base: '/',
  publicDir: here('public'),
  resolve: {
    alias: { 'ftl-msgpack-parser': here('../shared/src/codec/socketio-parser.ts') },
  },
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: { outDir: here('dist'), emptyOutDir: true, assetsDir: 'assets', target: 'es2022', chunkSizeWarningLimit: 400 },
  logLevel: 'warn',
});
