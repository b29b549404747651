/**
 * The metrics documented in docs/operations.md's `## Metrics reference`:
 * table rows `| \`name\` | type | labels | meaning |`. Rows under a `###`
 * heading naming workers (`### Worker metrics`) are exported by
 * `nerve worker --metrics-port`, the others by nodes.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface DocumentedMetric {
  name: string;
  type: string;
}

export function documentedMetrics(scope: 'node' | 'worker'): DocumentedMetric[] {
  const text = readFileSync(`${ROOT}docs/operations.md`, 'utf8');
  const section = text.slice(text.indexOf('## Metrics reference'));
  const end = section.indexOf('\n## ', 5);
  const body = end === -1 ? section : section.slice(0, end);
  const rows: DocumentedMetric[] = [];
  let current: 'node' | 'worker' = 'node';
  for (const line of body.split('\n')) {
    if (line.startsWith('### ')) current = /worker/i.test(line) ? 'worker' : 'node';
    const match = /^\| `(nerve_[a-z_]+)` \| (counter|gauge|histogram) \|/.exec(line);
    if (match && current === scope) rows.push({ name: match[1]!, type: match[2]! });
  }
  return rows;
}
