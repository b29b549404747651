/**
 * The admin API's actions on two nodes meeting on the shared Redis: a
 * connection and then a user disconnected on every node (4012), a room
 * ended, a message published, a tenant's quotas changed and its live usage
 * read; each action an `admin.*` audit event on the cold lane, written before
 * the action, and an action whose audit event the lane refuses is not taken.
 * Operator keys only.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { API_SCOPES } from '../../src/auth/api-keys.js';
import type { LifecycleEvent } from '../../src/events/event-log.js';
import { MemoryEventLog } from '../../src/events/memory.js';
import { NerveNode } from '../../src/node.js';
import { RawClient } from '../helpers/raw-client.js';
import { deleteNamespace } from '../helpers/redis-keys.js';
import { SHARED_REDIS_URL, redisSkipReason } from '../helpers/redis-server.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const skip = (await redisSkipReason()) ?? false;
const OPERATOR = 'admin-actions-operator-0123456789';
const TENANT_KEY = 'admin-actions-tenant-key-0123456789';

describe('admin actions', { skip }, () => {
  const ns = testNamespace('adm');
  const nodes: NerveNode[] = [];
  const logs: MemoryEventLog[] = [];
  const audit: LifecycleEvent[] = [];
  const urls: string[] = [];
  const clients: RawClient[] = [];

  before(async () => {
    for (const name of ['a', 'b']) {
      const events = new MemoryEventLog();
      logs.push(events);
      const node = new NerveNode(
        {
          port: 0,
          host: '127.0.0.1',
          nodeId: `${ns}-${name}`,
          env: ns,
          redisUrl: SHARED_REDIS_URL,
          logLevel: 'silent',
          demo: false,
          apiKey: OPERATOR,
          apiKeys: [{ key: TENANT_KEY, scopes: [...API_SCOPES], tenants: ['default'], name: 'tenant-key' }],
        },
        { lanes: { events } },
      );
      nodes.push(node);
      const { port } = await node.start();
      urls.push(`http://127.0.0.1:${port}`);
      await events.consume({ queue: 'audit', bindings: ['admin.*'] }, async (event) => {
        audit.push(event);
        return 'ack';
      });
    }
  });

  after(async () => {
    for (const client of clients) client.close();
    await Promise.all(nodes.map((node) => node.stop()));
    await deleteNamespace(SHARED_REDIS_URL, ns).catch(() => 0);
  });

  const call = async (method: string, path: string, body?: unknown, key = OPERATOR, node = 0): Promise<{ status: number; body: Record<string, unknown> }> => {
    const response = await fetch(`${urls[node]}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  const connIds = new Map<RawClient, string>();
  const connect = async (node: number, user: string): Promise<RawClient> => {
    const client = await RawClient.open(urls[node]!.replace('http', 'ws') + '/ws');
    clients.push(client);
    const welcome = await client.request({ op: 'connect', v: 1, user });
    assert.equal(welcome.op, 'welcome');
    connIds.set(client, String(welcome.connId));
    return client;
  };
  const connId = (client: RawClient): string => connIds.get(client)!;
  const audited = (type: string, count = 1) =>
    waitFor(
      () => {
        const found = audit.filter((event) => event.type === type);
        return found.length >= count ? found : undefined;
      },
      { what: `${count} ${type}` },
    );

  it("refuses keys that are not an operator's, and bad input", async () => {
    assert.equal((await call('POST', '/api/admin/tenants/default/rooms/r/end', {}, TENANT_KEY)).status, 403);
    assert.equal((await call('POST', '/api/admin/tenants/default/rooms/r/end', {}, 'wrong-key-wrong-key-wrong-key')).status, 401);
    const badBody = await call('POST', '/api/admin/tenants/default/users/alice/disconnect', { conn: 5 });
    assert.equal(badBody.status, 400);
    assert.equal(badBody.body.code, 'invalid_body');
    assert.equal((await call('POST', '/api/admin/tenants/bad%20tenant/rooms/r/end', {})).body.code, 'invalid_tenant');
    assert.equal((await call('POST', '/api/admin/tenants/default/rooms/bad%20room/end', {})).body.code, 'invalid_room');
    assert.equal((await call('GET', '/api/admin/tenants/default/rooms/r/end')).status, 405);
    assert.deepEqual(audit, [], 'a refused request is not an action');
  });

  it('disconnects one connection, then the user, on every node (4012)', { timeout: 20_000 }, async () => {
    const onA = await connect(0, 'alice');
    const onB = await connect(1, 'alice');
    const one = await call('POST', '/api/admin/tenants/default/users/alice/disconnect', { conn: connId(onB), reason: 'one connection' });
    assert.equal(one.status, 200, JSON.stringify(one.body));
    assert.equal(one.body.nodes, 2, 'both nodes hold a connection of alice');
    assert.equal(await onB.waitClose(5000), 4012);
    assert.equal(onB.closeReason, 'one connection');
    assert.equal(onA.closeCode, undefined, 'the other connection stays');
    assert.equal((await onA.request({ op: 'ping' })).op, 'pong');

    const all = await call('POST', '/api/admin/tenants/default/users/alice/disconnect', {});
    assert.equal(all.status, 200);
    assert.equal(await onA.waitClose(5000), 4012);
    const [first, second] = await audited('admin.disconnect', 2);
    assert.deepEqual(first!.data, { actor: 'api-key', user: 'alice', conn: connId(onB), reason: 'one connection' });
    assert.equal(first!.tenant, 'default');
    assert.equal(first!.node, `${ns}-a`);
    assert.deepEqual(second!.data, { actor: 'api-key', user: 'alice', reason: 'disconnected by an operator' });
  });

  it('ends a room and publishes into one, across nodes', { timeout: 20_000 }, async () => {
    const bob = await connect(1, 'bob');
    assert.equal((await bob.request({ op: 'join', room: 'town' })).op, 'joined');
    const published = await call('POST', '/api/admin/tenants/default/rooms/town/messages', { data: { text: 'maintenance at 5' } });
    assert.equal(published.status, 200, JSON.stringify(published.body));
    const message = await bob.waitFor((frame) => frame.op === 'message' && frame.id === published.body.id);
    assert.equal(message.from, 'admin');
    assert.deepEqual(message.data, { text: 'maintenance at 5' });
    const [publishAudit] = await audited('admin.publish');
    assert.equal(publishAudit!.room, 'town');
    assert.deepEqual(publishAudit!.data, { actor: 'api-key', class: 'chat', from: 'admin', bytes: JSON.stringify({ text: 'maintenance at 5' }).length });

    const ended = await call('POST', '/api/admin/tenants/default/rooms/town/end', { reason: 'closing time' });
    assert.equal(ended.status, 200);
    assert.equal(ended.body.nodes, 1);
    const frame = await bob.waitFor((f) => f.op === 'room_ended');
    assert.equal(frame.reason, 'closing time');
    const [endAudit] = await audited('admin.end_room');
    assert.equal(endAudit!.room, 'town');
    assert.deepEqual(endAudit!.data, { actor: 'api-key', reason: 'closing time' });
  });

  it("shows and changes a tenant's quotas, and its live usage", { timeout: 20_000 }, async () => {
    const set = await call('PUT', '/api/admin/tenants/acme/quotas', { connections: 7, publishesPerSecond: 50 });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    const [quotaAudit] = await audited('admin.set_quotas');
    assert.equal(quotaAudit!.tenant, 'acme');
    assert.deepEqual(quotaAudit!.data, { actor: 'api-key', quota: { connections: 7, publishesPerSecond: 50 } });
    // The other node reads it within its refresh.
    const seen = await waitFor(
      async () => {
        const got = await call('GET', '/api/admin/tenants/acme/quotas', undefined, OPERATOR, 1);
        return (got.body.quota as Record<string, number> | undefined)?.connections === 7 ? got : undefined;
      },
      { timeoutMs: 5000, what: 'the quota on node b' },
    );
    assert.equal(seen.body.source, 'api');
    const bad = await call('PUT', '/api/admin/tenants/acme/quotas', { connections: -1 });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 'invalid_quota');

    await connect(0, 'carol');
    const usage = await waitFor(
      async () => {
        const got = await call('GET', '/api/admin/tenants/default/usage');
        return ((got.body.live as { connections: number }).connections ?? 0) >= 1 ? got : undefined;
      },
      { what: 'live usage with carol' },
    );
    const live = usage.body.live as Record<string, unknown>;
    assert.equal(live.node, `${ns}-a`);
    assert.equal(typeof live.messages, 'number');
    assert.equal(usage.body.lastHourError, 'no PostgreSQL URL on this node', 'metered usage is not claimed without its table');
  });

  it('takes no action whose audit event the cold lane refuses', { timeout: 20_000 }, async () => {
    const dave = await connect(1, 'dave');
    assert.equal((await dave.request({ op: 'join', room: 'kept' })).op, 'joined');
    await logs[0]!.close();
    const refused = await call('POST', '/api/admin/tenants/default/rooms/kept/end', {});
    assert.equal(refused.status, 503);
    assert.equal(refused.body.code, 'audit_unavailable');
    // Node b still delivers the room: the end was never sent.
    const published = await call('POST', '/api/admin/tenants/default/rooms/kept/messages', { data: 'still here' }, OPERATOR, 1);
    assert.equal(published.status, 200);
    await dave.waitFor((frame) => frame.op === 'message' && frame.id === published.body.id);
    assert.equal(
      dave.frames.some((frame) => frame.op === 'room_ended'),
      false,
    );
  });
});
