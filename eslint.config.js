// ESLint flat config: typescript-eslint's type-checked rules over every
// TypeScript file in tsconfig.json, the plain JS rules over the few .js/.mjs
// files (build scripts, the healthcheck, the browser pages). Formatting is
// Prettier's job, so no stylistic rules here.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['**/dist/', 'node_modules/', 'bench/results/', 'test-artifacts/', 'packages/client/api-docs/', 'packages/react/api-docs/'] },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // tsc's noUnusedLocals/noUnusedParameters already fail the typecheck;
      // this one only adds the `_name` convention for deliberate leftovers.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // Template literals with numbers (ports, counts, ms) are everywhere and
      // harmless; objects and undefined in a template are still refused.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      // `void promise` is how this code base says "fire and forget on purpose";
      // node:test's describe/it/test return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { ignoreVoid: true, allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] }] },
      ],
      // Memory lanes and fakes implement async seams (Bus, History, Presence)
      // with `async` methods that have nothing to await; the rule would turn
      // each into a Promise.resolve() wrapper for no gain.
      '@typescript-eslint/require-await': 'off',
      // ws hands a text frame over as RawData (Buffer | ArrayBuffer | Buffer[]);
      // with ws's default binaryType it is a Buffer, so `data.toString()` is the
      // text. Objects that print as [object Object] are still refused.
      '@typescript-eslint/no-base-to-string': ['error', { ignoredTypeNames: ['ArrayBuffer', 'Error', 'RegExp', 'URL', 'URLSearchParams'] }],
      // Handlers given to ws/http/EventEmitter may be async: they catch their
      // own errors. Only a promise where a boolean is tested is a bug.
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: globals.node },
  },
  {
    files: ['web/**/*.js'],
    languageOptions: { sourceType: 'script', globals: { ...globals.browser, Nerve: 'readonly' } },
  },
);
