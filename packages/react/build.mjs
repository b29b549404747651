// Build @nerve-rt/react into dist/: index.js, one ES module of the hooks,
// not minified; react and @nerve-rt/client stay imports (peer dependencies:
// the app's one copy of each), and the build fails if any other module
// slips into the bundle. Then the .d.ts files, which may name only react,
// @nerve-rt/client and each other.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const dist = join(here, 'dist');
const typesTmp = join(dist, '.types');
const PEERS = ['react', '@nerve-rt/client'];

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });

const result = await build({
  absWorkingDir: here,
  entryPoints: ['src/index.ts'],
  outfile: 'dist/index.js',
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  target: ['es2022'],
  external: PEERS,
  sourcemap: false,
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
});
const inputs = Object.keys(result.metafile.inputs);
const strays = inputs.filter((input) => !input.startsWith('src/'));
if (strays.length > 0) throw new Error(`react build: modules other than the hooks' own in the bundle: ${strays.join(', ')}`);

// tsc from the workspace root's node_modules (npm hoists it there).
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', join(here, 'tsconfig.json')], { stdio: 'inherit' });
const declarations = (await readdir(typesTmp)).filter((name) => name.endsWith('.d.ts'));
for (const name of declarations) {
  const text = await readFile(join(typesTmp, name), 'utf8');
  if (/reference lib=|reference types=/.test(text)) throw new Error(`react build: ${name} references a lib or @types package`);
  for (const [, specifier] of text.matchAll(/from '([^']+)'/g)) {
    if (!specifier.startsWith('./') && !PEERS.includes(specifier)) throw new Error(`react build: ${name} imports '${specifier}'`);
  }
  await rename(join(typesTmp, name), join(dist, name));
}
await rm(typesTmp, { recursive: true, force: true });

const bytes = result.metafile.outputs['dist/index.js']?.bytes ?? 0;
// stderr: `npm pack --json` prints its answer on stdout, and prepack runs this.
console.error(`react build: dist/index.js ${(bytes / 1024).toFixed(1)} KiB from ${inputs.length} modules, ${declarations.length} declaration files`);
