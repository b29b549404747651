/**
 * The OpenTelemetry SDK as the CLI wires it (nodes and workers): a tracer
 * provider with a batching OTLP/HTTP (JSON) exporter, registered globally.
 * Only the CLI calls this (it reads the environment); an embedder registers
 * its own SDK and passes `tracing: true`. On with `--otel-endpoint` or an
 * `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT`, unless `OTEL_SDK_DISABLED=true`
 * or `OTEL_TRACES_EXPORTER=none`; the exporter reads the other
 * `OTEL_EXPORTER_OTLP_*` variables itself.
 */
import { trace } from '@opentelemetry/api';

export interface TracingSdkOptions {
  /** `--otel-endpoint`: the OTLP/HTTP base URL (`/v1/traces` is appended), as `OTEL_EXPORTER_OTLP_ENDPOINT`. */
  endpoint: string | undefined;
  /** `service.name` unless `OTEL_SERVICE_NAME` says otherwise. */
  serviceName: string;
  /** `service.instance.id`: the node id or the worker's name and pid. */
  instanceId: string;
  env: NodeJS.ProcessEnv;
}

export interface TracingSdk {
  /** Export what is buffered, then stop. Idempotent. */
  shutdown(): Promise<void>;
}

/** Whether the settings ask for tracing. */
export function tracingRequested(endpoint: string | undefined, env: NodeJS.ProcessEnv): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  if (env.OTEL_TRACES_EXPORTER?.trim().toLowerCase() === 'none') return false;
  return Boolean(endpoint || env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

/** Start the SDK when the settings ask for it; `undefined` when they do not (the SDK is then never loaded). */
export async function startTracingSdk(options: TracingSdkOptions): Promise<TracingSdk | undefined> {
  if (!tracingRequested(options.endpoint, options.env)) return undefined;
  const [{ OTLPTraceExporter }, { resourceFromAttributes }, { BatchSpanProcessor, TracerProvider }] = await Promise.all([
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/sdk-trace'),
  ]);
  const url = options.endpoint ? `${options.endpoint.replace(/\/+$/, '')}/v1/traces` : undefined;
  const exporter = new OTLPTraceExporter(url ? { url } : {});
  // OTEL_BSP_SCHEDULE_DELAY is read here: this SDK version's processor does not read it itself.
  const delay = Number(options.env.OTEL_BSP_SCHEDULE_DELAY);
  const provider = new TracerProvider({
    resource: resourceFromAttributes({
      'service.name': options.env.OTEL_SERVICE_NAME || options.serviceName,
      'service.instance.id': options.instanceId,
    }),
    spanProcessors: [new BatchSpanProcessor({ exporter, ...(Number.isFinite(delay) && delay > 0 ? { scheduledDelayMillis: delay } : {}) })],
  });
  trace.setGlobalTracerProvider(provider);
  let closing: Promise<void> | undefined;
  return {
    shutdown() {
      closing ??= provider.shutdown().catch(() => {});
      return closing;
    },
  };
}
