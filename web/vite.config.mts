import { resolve } from 'node:path';
import { defineConfig } from 'vite';

/**
 * The chat page: built to web/dist, which the server serves under /app (src/app.module.ts). Every
 * asset is served by the app itself (no other host), and no inline script, so helmet's CSP stays on.
 */
export default defineConfig({
  root: import.meta.dirname,
  base: '/app/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: resolve(import.meta.dirname, 'dist'),
    emptyOutDir: true,
    // The module-preload polyfill is an inline-free script too, but every browser we target has it.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    reportCompressedSize: true,
  },
});
