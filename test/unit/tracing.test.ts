/**
 * src/tracing: the W3C traceparent codec, and spans made through a real SDK
 * provider (in-memory exporter): parents, attributes, errors, the worker
 * handler's hop.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import type { LifecycleEvent } from '../../src/events/event-log.js';
import { traceHandler } from '../../src/tracing/handler.js';
import { SpanKind, Tracing, formatTraceparent, parseTraceparent } from '../../src/tracing/tracing.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

/** A provider exporting to memory; `finished()` waits for the exports (they settle on a later tick). */
function tracing(): { tracing: Tracing; finished: () => Promise<ReturnType<InMemorySpanExporter['getFinishedSpans']>> } {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'test' }),
    spanProcessors: [new SimpleSpanProcessor({ exporter })],
  });
  return {
    tracing: new Tracing(provider.getTracer('test')),
    finished: async () => {
      await provider.forceFlush();
      return exporter.getFinishedSpans();
    },
  };
}

describe('traceparent', () => {
  it('parses version 00 and formats it back', () => {
    const parsed = parseTraceparent(`00-${TRACE}-${SPAN}-01`);
    assert.deepEqual(parsed, { traceId: TRACE, spanId: SPAN, traceFlags: 1, isRemote: true });
    assert.equal(formatTraceparent(parsed), `00-${TRACE}-${SPAN}-01`);
    assert.equal(parseTraceparent(`00-${TRACE}-${SPAN}-00`)?.traceFlags, 0);
  });

  it('refuses what W3C Trace Context refuses', () => {
    for (const bad of [
      undefined,
      '',
      `00-${TRACE}-${SPAN}`,
      `00-${'0'.repeat(32)}-${SPAN}-01`,
      `00-${TRACE}-${'0'.repeat(16)}-01`,
      `ff-${TRACE}-${SPAN}-01`,
      `00-${TRACE.toUpperCase()}-${SPAN}-01`,
      `00-${TRACE}-${SPAN}-01-extra`,
      `00-${TRACE}-${SPAN}-01${'x'.repeat(600)}`,
    ]) {
      assert.equal(parseTraceparent(bad), undefined, String(bad));
    }
    // A later version may carry more fields; its first four are read.
    assert.equal(parseTraceparent(`01-${TRACE}-${SPAN}-01-more`)?.traceId, TRACE);
  });
});

describe('Tracing', () => {
  it('starts a child of the given traceparent with nerve.* attributes, and a root without one', async () => {
    const { tracing: t, finished } = tracing();
    const hop = t.start('nerve.publish', SpanKind.PRODUCER, `00-${TRACE}-${SPAN}-01`, { tenant: 'acme', room: 'lobby', class: 'chat', skipped: undefined });
    assert.match(hop.traceparent, new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`));
    hop.end();
    hop.end();
    const root = t.start('nerve.signal', SpanKind.PRODUCER, undefined, { tenant: 'acme' });
    root.end(new Error('boom'));
    const spans = await finished();
    const [publish, signal] = spans;
    assert.equal(spans.length, 2, 'end is idempotent');
    assert.equal(publish!.spanContext().traceId, TRACE);
    assert.equal(publish!.parentSpanContext?.spanId, SPAN);
    assert.deepEqual(publish!.attributes, { 'nerve.tenant': 'acme', 'nerve.room': 'lobby', 'nerve.class': 'chat' });
    assert.notEqual(signal!.spanContext().traceId, TRACE);
    assert.equal(signal!.parentSpanContext, undefined);
    assert.equal(signal!.status.code, 2, 'an error marks the span failed');
  });

  it('around: ends the span when the work settles, and passes a failure on', async () => {
    const { tracing: t, finished } = tracing();
    assert.equal(await t.around('ok', SpanKind.INTERNAL, undefined, { tenant: 't' }, async (traceparent) => traceparent.length), 55);
    await assert.rejects(
      t.around('fails', SpanKind.INTERNAL, undefined, { tenant: 't' }, async () => Promise.reject(new Error('no'))),
      /no/,
    );
    assert.deepEqual(
      (await finished()).map((span) => [span.name, span.status.code]),
      [
        ['ok', 0],
        ['fails', 2],
      ],
    );
  });
});

describe('traceHandler', () => {
  const event: LifecycleEvent = { v: 1, id: 'e1', type: 'message.created', ts: 1, tenant: 'acme', room: 'lobby', session: 's', node: 'n', data: {} };

  it('is the handler itself when tracing is off', () => {
    const handler = async () => 'ack' as const;
    assert.equal(traceHandler(undefined, 'webhooks', handler), handler);
  });

  it('hands the handler its own span as the parent of the next hop, and records the outcome', async () => {
    const { tracing: t, finished } = tracing();
    let seen: string | undefined;
    const handler = traceHandler(t, 'webhooks', async (_event, info) => {
      seen = info.traceparent;
      return 'retry';
    });
    assert.equal(await handler(event, { attempt: 2, queue: 'q', traceparent: `00-${TRACE}-${SPAN}-01` }), 'retry');
    const [span] = await finished();
    assert.equal(span!.name, 'nerve.worker webhooks');
    assert.equal(span!.parentSpanContext?.spanId, SPAN);
    assert.equal(seen, `00-${TRACE}-${span!.spanContext().spanId}-01`);
    assert.equal(span!.attributes['nerve.outcome'], 'retry');
    assert.equal(span!.attributes['nerve.event'], 'message.created');
    assert.equal(span!.attributes['nerve.attempt'], 2);
  });
});
