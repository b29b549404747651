/**
 * `nerve dev-cluster` (`npm run cluster`) says what it starts while it
 * starts it: each node with its URL, then each node as it is ready, then
 * the summary; the URLs it printed answer; SIGTERM stops everything with
 * exit 0. Two nodes on the shared Redis, no workers (--amqp-url ""), a
 * namespace of the test's own.
 *
 * Redis missing: fails in CI (CI=true), skipped elsewhere.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { deleteNamespace } from '../helpers/redis-keys.js';
import { redisSkipReason, SHARED_REDIS_URL } from '../helpers/redis-server.js';

const skip = (await redisSkipReason(SHARED_REDIS_URL)) ?? false;
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Whether `port` on 127.0.0.1 can be listened on now (a probe: a port can be taken between this and the cluster's start). */
function free(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '0.0.0.0', () => probe.close(() => resolve(true)));
  });
}

/** The first port of two free consecutive ones in a high range. */
async function twoFreePorts(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 20_000);
    if ((await free(base)) && (await free(base + 1))) return base;
  }
  throw new Error('no two consecutive free ports found in 50 tries');
}

describe('nerve dev-cluster', { skip, timeout: 60_000 }, () => {
  const env = `devc${Math.random().toString(36).slice(2, 8)}`;
  after(async () => {
    await deleteNamespace(SHARED_REDIS_URL, env);
  });

  it('announces each node and its URL while starting, then the summary; SIGTERM stops it with 0', async () => {
    const base = await twoFreePorts();
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli/main.ts',
        'dev-cluster',
        '--nodes',
        '2',
        '--base-port',
        String(base),
        '--env',
        env,
        '--amqp-url',
        '',
        '--redis-url',
        SHARED_REDIS_URL,
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const lines: string[] = [];
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no summary within 30 s; stdout:\n${lines.join('\n')}\nstderr: ${stderr}`)), 30_000);
        createInterface({ input: child.stdout }).on('line', (line) => {
          lines.push(line);
          if (line.includes('Ctrl-C drains and stops everything')) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      const at = (text: string) => lines.findIndex((line) => line.includes(text));
      const urls = [`http://localhost:${base}/`, `http://localhost:${base + 1}/`];
      for (const [i, url] of urls.entries()) {
        const starting = at(`nerve dev-cluster: starting n${i + 1} on ${url}`);
        const ready = at(`nerve dev-cluster: n${i + 1} ready on ${url}`);
        assert.ok(starting >= 0, `a "starting n${i + 1}" line:\n${lines.join('\n')}`);
        assert.ok(ready > starting, `n${i + 1} ready after it was started:\n${lines.join('\n')}`);
        assert.ok(ready < at('Ctrl-C drains'), 'readiness is told before the summary');
        assert.equal((await fetch(`${url}readyz`)).status, 200, `${url} answers as printed`);
      }
      assert.ok(
        at(`starting 2 node(s) on Redis ${new URL(SHARED_REDIS_URL).host} (env ${env})`) === 0,
        'the first line says what is starting, on which services',
      );
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
