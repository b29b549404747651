/**
 * docs/sdk.md is a contract: every ```ts example in it (and in README.md's
 * SDK section) is type-checked
 * against the SDK's sources, each as its own module importing
 * `@nerve-rt/client` (mapped to packages/client/src/index.ts), with the DOM
 * lib as in a browser app; its ```tsx examples (the React section) import
 * `@nerve-rt/react` (packages/react/src/index.ts) and are checked as TSX.
 * The few functions that stand for the app's UI are declared here, as the
 * guide says. The examples live in memory next to the
 * guide, so nothing is written to disk.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const guidePath = join(root, 'docs', 'sdk.md');

/** The app functions the guide's examples call (named in its introduction). */
const APP = `
declare function render(messages: ReadonlyArray<{ from: string; data: unknown }>): void;
declare function renderOlder(messages: ReadonlyArray<{ from: string; data: unknown }>): void;
declare function showBanner(text: string): void;
declare function hideBanner(): void;
declare function showMembers(users: string[]): void;
declare function showTyping(user: string, typing: boolean): void;
declare function askUser(question: string): Promise<boolean>;
`;

interface Example {
  /** The file, from the repository root. */
  source: string;
  /** 1-based line of the file where the example's code starts. */
  line: number;
  code: string;
  /** A ```tsx block: checked as TSX. */
  tsx: boolean;
}

function examples(markdown: string): Example[] {
  const found: Example[] = [];
  const lines = markdown.split('\n');
  for (let index = 0; index < lines.length; index += 1) {
    const fence = lines[index]!.trim();
    if (fence !== '```ts' && fence !== '```tsx') continue;
    const start = index + 1;
    let end = start;
    while (end < lines.length && lines[end]!.trim() !== '```') end += 1;
    found.push({ source: 'docs/sdk.md', line: start + 1, code: lines.slice(start, end).join('\n'), tsx: fence === '```tsx' });
    index = end;
  }
  return found;
}

/** The examples of README.md's SDK section, with their lines in README.md. */
function readmeExamples(): Example[] {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## The SDK\n');
  const end = readme.indexOf('\n## ', start + 1);
  assert.ok(start >= 0 && end > start, 'README.md has a section "The SDK"');
  const offset = readme.slice(0, start + 1).split('\n').length - 1;
  return examples(readme.slice(start + 1, end)).map((example) => ({ ...example, line: example.line + offset, source: 'README.md' }));
}

test('every TypeScript example in docs/sdk.md and in the SDK section of README.md type-checks against the SDK', () => {
  const guide = examples(readFileSync(guidePath, 'utf8'));
  assert.ok(guide.length >= 10, `expected the guide's examples, found ${guide.length}`);
  const readme = readmeExamples();
  assert.ok(readme.length >= 2, `expected README's SDK examples, found ${readme.length}`);
  const found = [...guide, ...readme];
  for (const example of found) {
    assert.match(
      example.code,
      example.tsx ? /from '@nerve-rt\/react'/ : /from '@nerve-rt\/client'/,
      `example at ${example.source}:${example.line} imports the SDK`,
    );
  }

  const files = new Map<string, string>();
  const appFile = join(root, 'docs', 'sdk-guide-app.d.ts');
  files.set(appFile, APP);
  const names = found.map((example, index) => {
    const name = join(root, 'docs', `sdk-guide-example-${index + 1}.${example.tsx ? 'tsx' : 'ts'}`);
    files.set(name, example.code);
    return name;
  });

  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ['lib.es2022.d.ts', 'lib.dom.d.ts', 'lib.dom.iterable.d.ts'],
    strict: true,
    noUncheckedIndexedAccess: true,
    noEmit: true,
    skipLibCheck: true,
    isolatedModules: true,
    types: [],
    baseUrl: root,
    jsx: ts.JsxEmit.ReactJSX,
    paths: { '@nerve-rt/client': ['packages/client/src/index.ts'], '@nerve-rt/react': ['packages/react/src/index.ts'] },
  };
  const disk = ts.createCompilerHost(options);
  const host: ts.CompilerHost = {
    ...disk,
    fileExists: (name) => files.has(name) || disk.fileExists(name),
    readFile: (name) => files.get(name) ?? disk.readFile(name),
    getSourceFile: (name, language, onError, shouldCreate) => {
      const text = files.get(name);
      return text === undefined ? disk.getSourceFile(name, language, onError, shouldCreate) : ts.createSourceFile(name, text, language, true);
    },
  };
  const program = ts.createProgram([appFile, ...names], options, host);

  const problems: string[] = [];
  names.forEach((name, index) => {
    const source = program.getSourceFile(name)!;
    for (const diagnostic of [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)]) {
      const { line } = source.getLineAndCharacterOfPosition(diagnostic.start ?? 0);
      const example = found[index]!;
      problems.push(`${example.source}:${example.line + line}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`);
    }
  });
  assert.deepEqual(problems, [], problems.join('\n'));
});
