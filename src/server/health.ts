import type { FastifyPluginAsync } from 'fastify';
import { throttledFor, type FailureAggregator } from '../audit/index.ts';
import { HttpError } from './errors.ts';
import { presentedBearer, secretMatcher } from './admin-auth.ts';
import type { Metrics } from '../observability/index.ts';
import type { Stores } from '../store/index.ts';

export interface HealthRoutesOptions {
  readonly stores: Stores;
  readonly metrics: Metrics;
  /** Serve /metrics here (not when it has a listener of its own, or production has no token for it). */
  readonly metricsEnabled: boolean;
  /** Bearer a scraper must present for /metrics. */
  readonly metricsToken?: string | undefined;
  /** Counts wrong metrics bearers per network (the throttle and the ledger, security review 11). */
  readonly failures: MetricsFailures;
  /** How long a store may take to answer a readiness ping. */
  readonly readinessTimeoutMs?: number;
}

type CheckResult = { driver: string; status: 'up' | 'down' };

/**
 * Liveness (`/healthz`: the process answers), readiness (`/readyz`: every
 * store answers, so a load balancer can route here) and Prometheus metrics.
 */
export const healthRoutes: FastifyPluginAsync<HealthRoutesOptions> = async (app, options) => {
  const timeoutMs = options.readinessTimeoutMs ?? 2000;
  const healthy = JSON.stringify({ status: 'ok' });

  app.get('/healthz', async (_request, reply) => reply.type('application/json; charset=utf-8').send(healthy));

  app.get('/readyz', async (request, reply) => {
    const [durable, hot] = await Promise.all([
      check(options.stores.durable.driver, () => options.stores.durable.ping(), timeoutMs),
      check(options.stores.hot.driver, () => options.stores.hot.ping(), timeoutMs),
    ]);
    const ready = durable.status === 'up' && hot.status === 'up';
    if (!ready) request.log.warn({ durable: durable.status, hot: hot.status }, 'not ready: a store does not answer');
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'unavailable', checks: { durable, hot } });
  });

  if (options.metricsEnabled) await app.register(metricsRoute, { metrics: options.metrics, token: options.metricsToken, failures: options.failures });
};

export type MetricsFailures = Pick<FailureAggregator, 'record' | 'count' | 'retryAfterMs'>;

export interface MetricsRouteOptions {
  readonly metrics: Metrics;
  readonly token?: string | undefined;
  readonly failures: MetricsFailures;
}

/** Wrong metrics bearers one network may send per minute before the check is skipped (429), as for the admin token. */
export const METRICS_FAILURES_PER_MINUTE = 100;

/**
 * Prometheus metrics (route counts by status, process details): in
 * production only behind a bearer or on a listener of its own (security
 * review 17). The token is compared in constant time (`secretMatcher`).
 */
export const metricsRoute: FastifyPluginAsync<MetricsRouteOptions> = async (app, options) => {
  const matches = secretMatcher(options.token);
  app.get('/metrics', async (request, reply) => {
    if (options.token !== undefined) {
      // Every credential check goes through a throttle, read before the
      // check, and a right token does not reset it (see throttledFor).
      const wait = await throttledFor(options.failures, 'metrics.auth.failed', request.ip, METRICS_FAILURES_PER_MINUTE);
      if (wait !== undefined) throw new HttpError('too_many_requests', 'Too many failed metrics attempts from this network; try again later.', { headers: { 'retry-after': String(wait) } });
      const presented = presentedBearer(request);
      if (!matches(presented)) {
        // Aggregated per network and minute (security review 11).
        await options.failures.record({
          type: 'metrics.auth.failed',
          outcome: 'denied',
          requestId: request.id,
          traceId: request.traceId,
          ip: request.ip,
          detail: { presented: presented === undefined ? 'nothing' : 'a wrong bearer' },
        });
        // RFC 6750 section 3: a bearer challenge, with invalid_token only when one was sent.
        throw new HttpError('unauthorized', 'Metrics need the metrics bearer token.', {
          headers: { 'www-authenticate': presented === undefined ? 'Bearer realm="portcullis-metrics"' : 'Bearer realm="portcullis-metrics", error="invalid_token"' },
        });
      }
    }
    return reply.type(options.metrics.contentType).send(await options.metrics.render());
  });
};

async function check(driver: string, ping: () => Promise<void>, timeoutMs: number): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  try {
    const outcome = await Promise.race([ping().then(() => 'up' as const), timeout]);
    return { driver, status: outcome === 'up' ? 'up' : 'down' };
  } catch {
    return { driver, status: 'down' };
  } finally {
    clearTimeout(timer);
  }
}
