/**
 * Spans for the hops of a message (docs/operations.md, "Tracing"), on the
 * OpenTelemetry API only. Context travels explicitly as a W3C `traceparent`
 * string, not through an async-hooks context manager: every hop already
 * carries a value of its own, and a context manager costs on every await of
 * the hot path even when nothing is recorded. Off (the default) a hop pays
 * one `undefined` check; bench/README.md, "Tracing", has the A/B.
 */
import {
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  context,
  isSpanContextValid,
  trace,
  type Attributes,
  type Span,
  type SpanContext,
  type Tracer,
} from '@opentelemetry/api';
import { errorText } from '../errors.js';

export { SpanKind };

/** Version 00 of W3C Trace Context: version, trace id, parent span id, flags. */
const TRACEPARENT_SHAPE = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** The span context a `traceparent` names, or undefined for a missing or malformed one (then the hop starts a new trace). */
export function parseTraceparent(value: string | undefined): SpanContext | undefined {
  if (value === undefined || value.length > 512) return undefined;
  const match = TRACEPARENT_SHAPE.exec(value.trim());
  if (!match) return undefined;
  const [, version, traceId, spanId, flags, rest] = match;
  // Version ff is forbidden; version 00 has no further fields.
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  const parsed: SpanContext = { traceId: traceId!, spanId: spanId!, traceFlags: parseInt(flags!, 16) & TraceFlags.SAMPLED, isRemote: true };
  return isSpanContextValid(parsed) ? parsed : undefined;
}

/** `traceparent` of a span context. */
export function formatTraceparent(spanContext: SpanContext): string {
  return `00-${spanContext.traceId}-${spanContext.spanId}-0${(spanContext.traceFlags & TraceFlags.SAMPLED).toString(16)}`;
}

/** What every nerve span says about where it happened (attribute names: `nerve.*`). */
export interface HopAttributes {
  tenant: string;
  room?: string | undefined;
  /** Message class: chat, ephemeral, signal, … */
  class?: string | undefined;
  [key: string]: string | number | boolean | undefined;
}

function attributesOf(hop: HopAttributes): Attributes {
  const attributes: Attributes = {};
  for (const [key, value] of Object.entries(hop)) if (value !== undefined) attributes[`nerve.${key}`] = value;
  return attributes;
}

/** One hop's span, with the `traceparent` to hand to the next hop. */
export interface Hop {
  readonly span: Span;
  /** This span as a parent for the next hop (envelope, event header, HTTP header). */
  readonly traceparent: string;
  /** End the span; an error marks it failed. Idempotent. */
  end(error?: unknown): void;
}

export class Tracing {
  private readonly tracer: Tracer;

  /** `tracer` defaults to the global provider's `nerve` tracer (whatever SDK registered it). */
  constructor(tracer?: Tracer) {
    this.tracer = tracer ?? trace.getTracer('nerve');
  }

  /** Start a span, the child of `parent` (a `traceparent`) or the root of a new trace. */
  start(name: string, kind: SpanKind, parent: string | undefined, hop: HopAttributes): Hop {
    const remote = parseTraceparent(parent);
    const parentContext = remote ? trace.setSpanContext(context.active(), remote) : context.active();
    const span = this.tracer.startSpan(name, { kind, attributes: attributesOf(hop) }, parentContext);
    let ended = false;
    return {
      span,
      traceparent: formatTraceparent(span.spanContext()),
      end(error?: unknown) {
        if (ended) return;
        ended = true;
        if (error !== undefined) {
          span.recordException(error instanceof Error ? error : errorText(error));
          span.setStatus({ code: SpanStatusCode.ERROR, ...(error instanceof Error ? { message: error.message } : {}) });
        }
        span.end();
      },
    };
  }

  /** Run `work` inside a span; the span ends when it settles. */
  async around<T>(
    name: string,
    kind: SpanKind,
    parent: string | undefined,
    hop: HopAttributes,
    work: (traceparent: string, span: Span) => Promise<T>,
  ): Promise<T> {
    const started = this.start(name, kind, parent, hop);
    try {
      const result = await work(started.traceparent, started.span);
      started.end();
      return result;
    } catch (error) {
      started.end(error);
      throw error;
    }
  }
}
