import type { FastifyPluginAsync } from 'fastify';
import type { Metrics } from '../observability/index.ts';
import type { Stores } from '../store/index.ts';

export interface HealthRoutesOptions {
  readonly stores: Stores;
  readonly metrics: Metrics;
  readonly metricsEnabled: boolean;
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

  if (options.metricsEnabled) {
    app.get('/metrics', async (_request, reply) => reply.type(options.metrics.contentType).send(await options.metrics.render()));
  }
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
