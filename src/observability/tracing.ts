/**
 * OpenTelemetry traces (issue 16), through the official SDK, off by default.
 * The standard variables turn them on: `OTEL_TRACES_EXPORTER=otlp`, or an
 * OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`,
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); `OTEL_SDK_DISABLED=true` keeps them
 * off whatever else is set. The OTLP/HTTP exporter reads its own variables
 * (endpoint, headers, timeout); `OTEL_SERVICE_NAME` names the service
 * (default `portcullis`).
 *
 * Spans: one per HTTP request (server), per store call made within a traced
 * request or delivery (client), per outbox delivery (consumer) and per
 * plugin call (client). Off, nothing is created and nothing is paid.
 */
import { ROOT_CONTEXT, SpanStatusCode, context, trace, type Context, type Span, type SpanKind, type TextMapGetter, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, SimpleSpanProcessor, TracerProvider, type SpanExporter } from '@opentelemetry/sdk-trace';

export { SpanKind, SpanStatusCode, type Span, type Tracer } from '@opentelemetry/api';
export type { SpanExporter } from '@opentelemetry/sdk-trace';

export interface Tracing {
  readonly tracer: Tracer;
  /** Sends what is buffered (tests; a shutdown does it too). */
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

export interface TracingOptions {
  readonly env: Readonly<Record<string, string | undefined>>;
  /** An exporter of the caller's (tests: an in-memory one), sent each span as it ends; otherwise OTLP when the variables ask for it. */
  readonly exporter?: SpanExporter;
}

/** Whether the standard OpenTelemetry variables ask for traces. */
export function tracingRequested(env: Readonly<Record<string, string | undefined>>): boolean {
  if (env['OTEL_SDK_DISABLED']?.trim().toLowerCase() === 'true') return false;
  const exporters = (env['OTEL_TRACES_EXPORTER'] ?? '').split(',').map((name) => name.trim().toLowerCase());
  if (exporters.includes('none')) return false;
  return exporters.includes('otlp') || Boolean(env['OTEL_EXPORTER_OTLP_ENDPOINT']) || Boolean(env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']);
}

let contextManagerRegistered = false;

/** The tracing of one instance, or undefined when traces are off. */
export function createTracing(options: TracingOptions): Tracing | undefined {
  if (options.exporter === undefined && !tracingRequested(options.env)) return undefined;
  // The API's context is process-wide: one AsyncLocalStorage manager carries the active span across awaits.
  if (!contextManagerRegistered) {
    contextManagerRegistered = context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  }
  const processor = options.exporter !== undefined ? new SimpleSpanProcessor({ exporter: options.exporter }) : new BatchSpanProcessor({ exporter: new OTLPTraceExporter() });
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': options.env['OTEL_SERVICE_NAME'] || 'portcullis' }),
    spanProcessors: [processor],
  });
  return {
    tracer: provider.getTracer('portcullis'),
    forceFlush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}

const propagator = new W3CTraceContextPropagator();

/** The remote parent a W3C `traceparent` (and `tracestate`) names, as a context; the root context when absent or malformed. */
export function remoteParent(traceparent: string | undefined, tracestate?: string): Context {
  if (traceparent === undefined) return ROOT_CONTEXT;
  const carrier: Record<string, string> = { traceparent, ...(tracestate !== undefined && { tracestate }) };
  const getter: TextMapGetter<Record<string, string>> = { get: (holder, key) => holder[key], keys: (holder) => Object.keys(holder) };
  return propagator.extract(ROOT_CONTEXT, carrier, getter);
}

/** Runs `fn` with `span` active, under `parent` (the synchronous continuation and everything it awaits). */
export function contextWithSpan(parent: Context, span: Span, fn: () => void): void {
  context.with(trace.setSpan(parent, span), fn);
}

/** Runs `fn` in a child span of the active one (none when no span is active: background work is not traced call by call). */
export async function inChildSpan<T>(tracer: Tracer | undefined, name: string, kind: SpanKind, attributes: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  if (tracer === undefined || trace.getActiveSpan() === undefined) return fn();
  return inSpan(tracer, name, kind, attributes, fn);
}

/** Runs `fn` in a new span (a child of the active one, if any), ended when `fn` settles; a failure marks it ERROR. */
export function inSpan<T>(tracer: Tracer, name: string, kind: SpanKind, attributes: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  return tracer.startActiveSpan(name, { kind, attributes }, async (span: Span) => {
    try {
      return await fn();
    } catch (error) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.name : 'error' });
      throw error;
    } finally {
      span.end();
    }
  });
}
