// Bundle the browser SDK (packages/client/src/browser.ts) into one IIFE that defines the
// global `Nerve`, written to dist/web/nerve-client.js (+ .map). The node serves
// it at /nerve-client.js. The build fails if anything server-side slips in:
// the bundle must stay free of `ws`, zod and node built-ins.
import { build } from 'esbuild';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outfile = 'dist/web/nerve-client.js';
const FORBIDDEN = [/node_modules\/ws\//, /node_modules\/zod\//, /^node:/, /protocol\/src\/schema\.ts$/, /protocol\/src\/codec\.ts$/];

await mkdir(new URL('../dist/web/', import.meta.url), { recursive: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: ['packages/client/src/browser.ts'],
  outfile,
  bundle: true,
  format: 'iife',
  globalName: 'Nerve',
  platform: 'browser',
  target: ['es2022'],
  minify: true,
  sourcemap: true,
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
});

const inputs = Object.keys(result.metafile.inputs);
const leaked = inputs.filter((input) => FORBIDDEN.some((pattern) => pattern.test(input)));
if (leaked.length > 0) {
  console.error(`bundle-client: server-only modules in the browser bundle: ${leaked.join(', ')}`);
  process.exit(1);
}
const bytes = result.metafile.outputs[outfile]?.bytes ?? 0;
console.log(`bundle-client: ${outfile} ${(bytes / 1024).toFixed(1)} KiB from ${inputs.length} modules`);
