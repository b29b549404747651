/** Locations of files shipped with the package, from source (tsx) or from dist/. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findPackageRoot(start: string): string {
  let dir = start;
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`package.json not found above ${start}`);
    dir = parent;
  }
}

export const PACKAGE_ROOT = findPackageRoot(dirname(fileURLToPath(import.meta.url)));
/** Demo page and other static files. */
export const WEB_ROOT = join(PACKAGE_ROOT, 'web');
/** The browser bundle of the SDK, built by `npm run build`. */
export const CLIENT_BUNDLE = join(PACKAGE_ROOT, 'dist', 'web', 'nerve-client.js');
