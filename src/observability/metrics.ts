import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { FastHistogram } from './histogram.ts';

/**
 * Prometheus metrics of one Portcullis instance. A registry per instance (not
 * prom-client's global one) so that tests can run several in one process.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly httpRequestDuration: FastHistogram<'method' | 'route' | 'status_code'>;
  readonly storeOperationDuration: FastHistogram<'driver' | 'operation'>;
  /** 1 while a store answers, 0 while its breaker is open (issue 16). */
  readonly storeUp: Gauge<'store'>;

  constructor(options: { collectProcessMetrics?: boolean } = {}) {
    if (options.collectProcessMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'portcullis_' });
    this.httpRequestDuration = new FastHistogram({
      name: 'portcullis_http_request_duration_seconds',
      help: 'HTTP request duration by route template and status code.',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registry: this.registry,
    });
    this.storeOperationDuration = new FastHistogram({
      name: 'portcullis_store_operation_duration_seconds',
      help: 'Storage operation latency by driver and operation.',
      labelNames: ['driver', 'operation'],
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
      registry: this.registry,
    });
    this.storeUp = new Gauge({ name: 'portcullis_store_up', help: 'Whether a store answers (1) or is taken to be down, its circuit breaker open (0).', labelNames: ['store'], registers: [this.registry] });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
