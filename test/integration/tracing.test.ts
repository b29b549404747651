/**
 * Tracing end to end: two `nerve serve` nodes on Redis and RabbitMQ and a
 * webhooks worker, all exporting OTLP/HTTP JSON to a receiver in this test
 * (`--otel-endpoint`). One chat message sent with a client `traceparent` must
 * give one trace: the client's span → publish on node 1 → history write →
 * delivery on node 2 (and node 1) → the worker's handling of message.created
 * → the webhook request, whose `traceparent` header names the last span.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { Connection } from 'rabbitmq-client';
import { webhookQueue } from '../../src/workers/webhooks.js';
import { startNode, type NodeProcess } from '../helpers/node-process.js';
import { RawClient } from '../helpers/raw-client.js';
import { deleteNamespace } from '../helpers/redis-keys.js';
import { redisSkipReason, SHARED_REDIS_URL } from '../helpers/redis-server.js';
import { AMQP_URL, serviceSkip } from '../helpers/tcp-proxy.js';
import { testNamespace, waitFor } from '../helpers/wait.js';
import { killWorker, spawnWorker, type WorkerProcess } from '../helpers/worker-process.js';
import { deleteTopology } from '../helpers/rabbitmq.js';

const skip = (await serviceSkip('RabbitMQ', 5672)) ?? (await redisSkipReason());
const SECRET = 'whsec_tracing_0123456789';

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
}
interface OtlpAttribute {
  key: string;
  value: OtlpValue;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes?: OtlpAttribute[];
}
interface OtlpRequest {
  resourceSpans?: Array<{ resource?: { attributes?: OtlpAttribute[] }; scopeSpans?: Array<{ spans?: OtlpSpan[] }> }>;
}

/** A span as received, with its resource's instance id. */
interface Received {
  instance: string;
  service: string;
  span: OtlpSpan;
  attr: (key: string) => string | number | boolean | undefined;
}

function valueOf(value: OtlpValue | undefined): string | number | boolean | undefined {
  if (!value) return undefined;
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  return value.boolValue;
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (body += chunk));
    request.on('end', () => resolve(body));
    request.on('error', reject);
  });
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  return `http://127.0.0.1:${address.port}`;
}

describe('tracing across nodes, the cold lane and a worker', { skip }, () => {
  const ns = testNamespace('trace');
  const spans: Received[] = [];
  const hooks: Array<{ type: string; data: Record<string, unknown>; traceparent: string | undefined }> = [];
  let otlp: Server;
  let hookServer: Server;
  let otlpUrl: string;
  let hookUrl: string;
  let admin: Connection;
  const nodes: NodeProcess[] = [];
  let worker: WorkerProcess | undefined;

  before(async () => {
    admin = new Connection({ url: AMQP_URL, retryLow: 50 });
    admin.on('error', () => undefined);
    // The OTLP/HTTP receiver: the exporter posts JSON (exporter-trace-otlp-http), decoded here.
    otlp = createServer((request, response) => {
      void readBody(request).then((body) => {
        if (request.url === '/v1/traces' && request.headers['content-type']?.includes('json')) {
          const parsed = JSON.parse(body) as OtlpRequest;
          for (const resourceSpans of parsed.resourceSpans ?? []) {
            const resource = new Map((resourceSpans.resource?.attributes ?? []).map((a) => [a.key, valueOf(a.value)]));
            for (const scope of resourceSpans.scopeSpans ?? []) {
              for (const span of scope.spans ?? []) {
                const attributes = new Map((span.attributes ?? []).map((a) => [a.key, valueOf(a.value)]));
                spans.push({
                  instance: String(resource.get('service.instance.id')),
                  service: String(resource.get('service.name')),
                  span,
                  attr: (key) => attributes.get(key),
                });
              }
            }
          }
        }
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end('{}');
      });
    });
    hookServer = createServer((request, response) => {
      void readBody(request).then((body) => {
        const event = JSON.parse(body) as { type: string; data: Record<string, unknown> };
        const header = request.headers.traceparent;
        hooks.push({ type: event.type, data: event.data, traceparent: typeof header === 'string' ? header : undefined });
        response.statusCode = 204;
        response.end();
      });
    });
    otlpUrl = await listen(otlp);
    hookUrl = `${await listen(hookServer)}/hook`;
  });

  after(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
    if (worker) {
      worker.child.kill('SIGTERM');
      await Promise.race([worker.exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
      killWorker(worker);
    }
    const queue = `${ns}.nerve.${webhookQueue(hookUrl)}`;
    await deleteTopology(admin, `${ns}.`, { queues: [queue, `${queue}.dlq`], exchanges: [`${ns}.nerve.events`] });
    await admin.close();
    await deleteNamespace(SHARED_REDIS_URL, ns).catch(() => 0);
    await new Promise<void>((resolve) => otlp.close(() => resolve()));
    await new Promise<void>((resolve) => hookServer.close(() => resolve()));
  });

  it('one chat message is one trace: client → node 1 → history → node 2, and → worker → webhook', { timeout: 60_000 }, async () => {
    // Export every 100 ms, so the test waits for spans, not for the default 5 s batch.
    const env = { OTEL_BSP_SCHEDULE_DELAY: '100' };
    worker = spawnWorker(
      ['webhooks', '--amqp-url', AMQP_URL, '--env', ns, '--webhook-url', hookUrl, '--webhook-secret', SECRET, '--otel-endpoint', otlpUrl],
      env,
    );
    const common = ['--redis-url', SHARED_REDIS_URL, '--amqp-url', AMQP_URL, '--env', ns, '--otel-endpoint', otlpUrl];
    nodes.push(await startNode({ nodeId: `${ns}-a`, args: common, env }), await startNode({ nodeId: `${ns}-b`, args: common, env }));
    const [a, b] = nodes as [NodeProcess, NodeProcess];
    await waitFor(() => worker!.logs.some((line) => line.msg === 'worker ready'), { timeoutMs: 20_000, what: 'the webhooks worker' });

    const alice = await RawClient.connect(a.wsUrl, 'alice');
    const bob = await RawClient.connect(b.wsUrl, 'bob');
    try {
      for (const client of [alice, bob]) assert.equal((await client.request({ op: 'join', room: 'traced' })).op, 'joined');
      const traceId = randomBytes(16).toString('hex');
      const clientSpan = randomBytes(8).toString('hex');
      const ack = await alice.request({ op: 'publish', room: 'traced', class: 'chat', data: { text: 'hi' }, traceparent: `00-${traceId}-${clientSpan}-01` });
      assert.equal(ack.op, 'ack', JSON.stringify(ack));
      const received = await bob.waitFor((frame) => frame.op === 'message' && frame.id === ack.id, 5000, 'the message on node 2');
      assert.equal(received.traceparent, undefined, 'the trace context is not handed to recipients');

      const hook = await waitFor(() => hooks.find((h) => h.type === 'message.created' && h.data.messageId === ack.id), {
        timeoutMs: 15_000,
        what: 'the webhook',
      });
      assert.ok(hook.traceparent, 'the webhook request carries a traceparent');
      const [, hookTrace, hookParent] = hook.traceparent.split('-');
      assert.equal(hookTrace, traceId, "the webhook request is in the client's trace");

      const named = (name: string, instance?: string) =>
        spans.find((s) => s.span.traceId === traceId && s.span.name === name && (instance === undefined || s.instance === instance));
      const publish = await waitFor(() => named('nerve.publish', a.nodeId), { timeoutMs: 10_000, what: 'the publish span of node 1' });
      const append = await waitFor(() => named('nerve.history.append', a.nodeId), { timeoutMs: 10_000, what: 'the history span' });
      const deliverB = await waitFor(() => named('nerve.deliver', b.nodeId), { timeoutMs: 10_000, what: 'the delivery span of node 2' });
      const deliverA = await waitFor(() => named('nerve.deliver', a.nodeId), { timeoutMs: 10_000, what: 'the delivery span of node 1' });
      const handled = await waitFor(() => named('nerve.worker webhooks'), { timeoutMs: 10_000, what: 'the worker span' });
      const request = await waitFor(() => named('nerve.webhook POST'), { timeoutMs: 10_000, what: 'the webhook request span' });

      // One chain of parents, from the client's span to the webhook request.
      assert.equal(publish.span.parentSpanId, clientSpan);
      assert.equal(append.span.parentSpanId, publish.span.spanId);
      assert.equal(deliverB.span.parentSpanId, append.span.spanId);
      assert.equal(deliverA.span.parentSpanId, append.span.spanId);
      assert.equal(handled.span.parentSpanId, publish.span.spanId);
      assert.equal(request.span.parentSpanId, handled.span.spanId);
      assert.equal(hookParent, request.span.spanId, 'the webhook header names the request span');
      assert.equal(handled.service, 'nerve-worker');

      for (const hop of [publish, append, deliverB, handled]) {
        assert.equal(hop.attr('nerve.tenant'), 'default', hop.span.name);
        assert.equal(hop.attr('nerve.room'), 'traced', hop.span.name);
      }
      assert.equal(publish.attr('nerve.class'), 'chat');
      assert.equal(deliverB.attr('nerve.class'), 'chat');
      assert.equal(handled.attr('nerve.event'), 'message.created');

      // A frame without a traceparent starts a trace of its own on the node.
      const plain = await alice.request({ op: 'publish', room: 'traced', class: 'chat', data: { text: 'untraced' } });
      assert.equal(plain.op, 'ack');
      const root = await waitFor(() => spans.find((s) => s.span.name === 'nerve.publish' && s.span.traceId !== traceId && !s.span.parentSpanId), {
        timeoutMs: 10_000,
        what: 'a root publish span',
      });
      assert.notEqual(root.span.traceId, traceId);

      // A malformed traceparent is refused like any malformed field.
      const bad = await alice.request({ op: 'publish', room: 'traced', class: 'chat', data: 1, traceparent: 'not-a-trace' });
      assert.equal(bad.op, 'error');
      assert.equal(bad.code, 'invalid_frame');
    } finally {
      alice.close();
      bob.close();
    }
  });
});
