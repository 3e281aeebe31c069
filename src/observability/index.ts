export { createLogger, type Logger, type LoggerConfig } from './logger.ts';
export { Metrics } from './metrics.ts';
export { Redactor, REDACTED, maskEmail, maskIp, maskPhone, redactUrlQuery, type PersonalDataMode } from './redaction.ts';
export { withLazyChildren } from './request-logger.ts';
export type { HistogramSeries } from './histogram.ts';
export { truncateIp } from './ip.ts';
export { SpanKind, SpanStatusCode, contextWithSpan, createTracing, inChildSpan, inSpan, remoteParent, tracingRequested, type Span, type SpanExporter, type Tracer, type Tracing } from './tracing.ts';
