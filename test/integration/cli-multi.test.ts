/**
 * `nerve serve --nodes N` (src/cli/multi.ts): N node processes behind one
 * port on one machine. Connections to the one port land on different node
 * ids and chat across them (through the shared Redis); a crashed worker is
 * restarted; SIGTERM stops them all. Also the `--nodes` setting itself.
 *
 * Redis missing: the process tests fail in CI (CI=true), are skipped elsewhere.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { parseServeCommand, parseServeArgs } from '../../src/cli/settings.js';
import { ConfigError } from '../../src/config/errors.js';
import { normalizeOptions } from '../../src/config/normalize.js';
import { deleteNamespaceKeys } from '../helpers/cluster.js';
import { startNode, type NodeProcess } from '../helpers/node-process.js';
import { RawClient, type Frame } from '../helpers/raw-client.js';
import { SHARED_REDIS_URL, redisSkipReason } from '../helpers/redis-server.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const skip = (await redisSkipReason(SHARED_REDIS_URL)) ?? false;

describe('the --nodes setting', () => {
  it('is read from --nodes and NERVE_NODES (flag wins), default 1, and never reaches the node options', () => {
    assert.equal(parseServeCommand([], {}).cli.nodes, 1);
    assert.equal(parseServeCommand([], { NERVE_NODES: '4' }).cli.nodes, 4);
    assert.equal(parseServeCommand(['--nodes', '3'], { NERVE_NODES: '4' }).cli.nodes, 3);
    const options = parseServeArgs(['--nodes=3', '--port', '9000'], {});
    assert.equal('nodes' in options, false);
    assert.equal('nodes' in normalizeOptions(options), false);
  });

  for (const bad of ['0', '-1', '1.5', 'many', '100000']) {
    it(`rejects --nodes ${bad} naming the setting`, () => {
      assert.throws(
        () => parseServeCommand(['--nodes', bad], {}),
        (error: unknown) => error instanceof ConfigError && /\bnodes\b/.test(error.message),
      );
    });
  }

  it('refuses N > 1 without --redis-url: exit 2 and a one-line reason, before forking', async () => {
    const result = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--nodes', '3', '--port', '0'], {
      cwd: ROOT,
      env: { ...process.env, NERVE_REDIS_URL: '' },
    }).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => ({ code: error.code, stderr: error.stderr }),
    );
    assert.equal(result.code, 2);
    assert.match(result.stderr, /invalid setting redisUrl: .*in-memory lanes cannot span processes/);
    assert.equal(result.stderr.trim().split('\n').length, 1);
  });
});

describe('nerve serve --nodes 3', { skip, timeout: 90_000 }, () => {
  const env = testNamespace('multi');
  let primary: NodeProcess;
  const clients: RawClient[] = [];

  type Listening = { node: string; pid: number; port: number };
  const listening = (): Listening[] =>
    primary.logs.filter((entry) => entry.msg === 'listening').map((entry) => ({ node: String(entry.node), pid: Number(entry.pid), port: Number(entry.port) }));

  before(async () => {
    // Port 0: the workers share the one port the primary bound (node:cluster), read from the logs.
    primary = await startNode({ nodeId: env, args: ['--nodes', '3', '--redis-url', SHARED_REDIS_URL, '--env', env], timeoutMs: 30_000 });
    await waitFor(() => new Set(listening().map((l) => l.node)).size === 3, { timeoutMs: 30_000, what: '3 workers listening' });
  });

  after(async () => {
    for (const client of clients) client.close();
    await primary?.stop();
    await deleteNamespaceKeys(SHARED_REDIS_URL, env);
  });

  it('runs 3 worker processes with node ids {nodeId}-{i} on one port', () => {
    const workers = listening();
    assert.deepEqual(workers.map((w) => w.node).sort(), [`${env}-0`, `${env}-1`, `${env}-2`]);
    assert.equal(new Set(workers.map((w) => w.port)).size, 1, 'one shared port');
    assert.equal(workers[0]!.port, primary.port);
    assert.equal(new Set(workers.map((w) => w.pid)).size, 3, 'three processes');
    assert.ok(!workers.some((w) => w.pid === primary.child.pid), 'the primary does not serve');
  });

  it('spreads connections to the one port over the nodes, which chat across', async () => {
    const room = testNamespace('room');
    const byNode = new Map<string, RawClient>();
    for (let i = 0; i < 30 && byNode.size < 3; i += 1) {
      const client = await RawClient.open(primary.wsUrl);
      clients.push(client);
      const welcome = await client.request({ op: 'connect', v: 1, user: `u${i}` });
      assert.equal(welcome.op, 'welcome');
      if (!byNode.has(String(welcome.nodeId))) byNode.set(String(welcome.nodeId), client);
    }
    assert.deepEqual([...byNode.keys()].sort(), [`${env}-0`, `${env}-1`, `${env}-2`]);

    const members = [...byNode.values()];
    for (const member of members) assert.equal((await member.request({ op: 'join', room })).op, 'joined');
    const acks = [];
    for (const [i, member] of members.entries()) acks.push(await member.request({ op: 'publish', room, class: 'chat', data: `from ${i}` }));
    for (const ack of acks) assert.equal(ack.op, 'ack', JSON.stringify(ack));
    const isChat = (f: Frame) => f.op === 'message' && f.class === 'chat' && f.room === room;
    for (const member of members) {
      await waitFor(() => member.frames.filter(isChat).length >= 3, { timeoutMs: 5000, what: 'chat from all 3 nodes' });
      assert.deepEqual(
        member.frames.filter(isChat).map((m) => m.data),
        ['from 0', 'from 1', 'from 2'],
      );
    }
  });

  it('restarts a worker that crashed, under the same node id', async () => {
    const victim = listening().find((l) => l.node === `${env}-1`)!;
    process.kill(victim.pid, 'SIGKILL');
    const replacement = await waitFor(() => listening().find((l) => l.node === `${env}-1` && l.pid !== victim.pid), {
      timeoutMs: 20_000,
      what: 'the restarted worker listening',
    });
    assert.equal(replacement.port, primary.port);
  });

  it('stops every worker on SIGTERM, draining their clients with 1001', async () => {
    const client = await RawClient.connect(primary.wsUrl, 'last');
    const pids = [...new Set(listening().map((l) => l.pid))];
    assert.equal(await primary.stop(), 0);
    assert.equal(await client.waitClose(), 1001);
    for (const pid of pids) {
      assert.throws(() => process.kill(pid, 0), /ESRCH/, `worker ${pid} is gone`);
    }
  });
});
