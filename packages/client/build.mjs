// Build @nerve-rt/client into dist/: index.js, one ES module with the
// protocol parts the SDK uses bundled in (no runtime dependency), whitespace
// and syntax minified but every name kept, so a stack trace still names the
// SDK's functions (it nearly halves the gzipped bundle; mangling names would
// save only 2.5 kB more); and the .d.ts files index.d.ts reaches, the
// protocol's under dist/protocol/. Fails if anything server-side (zod, ws,
// node built-ins, the protocol's schemas) slips into the bundle, or if a
// declaration names the DOM lib or an outside module: the types must work in
// a project with `lib: ["ES2022"]`.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const dist = join(here, 'dist');
const typesTmp = join(dist, '.types');
const FORBIDDEN = [/node_modules\/ws\//, /node_modules\/zod\//, /^node:/, /protocol\/src\/schema\.ts$/, /protocol\/src\/codec\.ts$/];

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });

const result = await build({
  absWorkingDir: here,
  entryPoints: ['src/index.ts'],
  outfile: 'dist/index.js',
  bundle: true,
  format: 'esm',
  // neutral: no Node or browser assumptions; the SDK looks its globals up itself.
  platform: 'neutral',
  target: ['es2022'],
  minifyWhitespace: true,
  minifySyntax: true,
  keepNames: true,
  sourcemap: false,
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
});
const inputs = Object.keys(result.metafile.inputs);
const leaked = inputs.filter((input) => FORBIDDEN.some((pattern) => pattern.test(input)));
if (leaked.length > 0) throw new Error(`client build: server-only modules in the bundle: ${leaked.join(', ')}`);

// tsc from the workspace root's node_modules (npm hoists it there).
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', join(here, 'tsconfig.json')], { stdio: 'inherit' });

// .types/client/src/*.d.ts -> dist/*.d.ts; .types/protocol/src/*.d.ts -> dist/protocol/*.d.ts
await cp(join(typesTmp, 'protocol', 'src'), join(dist, 'protocol'), { recursive: true });
for (const name of await readdir(join(typesTmp, 'client', 'src'))) {
  const text = await readFile(join(typesTmp, 'client', 'src', name), 'utf8');
  await writeFile(join(dist, name), text.replaceAll("'../../protocol/src/", "'./protocol/"));
}
await rm(typesTmp, { recursive: true, force: true });

// Ship only the declarations index.d.ts reaches: the SDK's inner parts (connection, requests, rooms) are not API.
const reached = new Set();
const pending = ['index.d.ts'];
while (pending.length > 0) {
  const name = pending.pop();
  if (reached.has(name)) continue;
  reached.add(name);
  const text = await readFile(join(dist, name), 'utf8');
  for (const [, specifier] of text.matchAll(/(?:from |import\()['"](\.\/[^'"]+)\.js['"]/g)) {
    pending.push(posix.join(posix.dirname(name), `${specifier}.d.ts`));
  }
}
for (const name of [...(await readdir(dist)), ...(await readdir(join(dist, 'protocol'))).map((file) => `protocol/${file}`)]) {
  if (name.endsWith('.d.ts') && !reached.has(name)) await rm(join(dist, name));
}

const declarations = [
  ...(await readdir(dist)).filter((name) => name.endsWith('.d.ts')),
  ...(await readdir(join(dist, 'protocol'))).map((name) => `protocol/${name}`),
];
for (const name of declarations) {
  const text = await readFile(join(dist, name), 'utf8');
  if (/reference lib=|reference types=/.test(text)) throw new Error(`client build: ${name} references a lib or @types package`);
  for (const [, specifier] of text.matchAll(/from '([^']+)'/g)) {
    if (!specifier.startsWith('./') && !specifier.startsWith('../')) throw new Error(`client build: ${name} imports '${specifier}'`);
  }
}
const bytes = result.metafile.outputs['dist/index.js']?.bytes ?? 0;
// stderr: `npm pack --json` prints its answer on stdout, and prepack runs this.
console.error(`client build: dist/index.js ${(bytes / 1024).toFixed(1)} KiB from ${inputs.length} modules, ${declarations.length} declaration files`);
