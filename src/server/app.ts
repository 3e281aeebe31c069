import { readFileSync } from 'node:fs';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import type { Config } from '../config/index.ts';
import type { Logger } from '../observability/index.ts';
import type { Metrics } from '../observability/index.ts';
import type { Stores } from '../store/index.ts';
import { ConfigError } from '../config/index.ts';
import { errorHandler, sendError } from './error-handler.ts';
import { requestIdentity } from './request-id.ts';
import { securityHeaders } from './security-headers.ts';
import { healthRoutes } from './health.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** W3C trace id of this request (from a trusted proxy's traceparent, or new). */
    traceId: string;
  }
}

export interface ServerDependencies {
  readonly config: Readonly<Config>;
  readonly stores: Stores;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** More routes, registered after the built-in ones (feature modules, tests). */
  readonly plugins?: readonly FastifyPluginAsync[];
}

/**
 * Assembles the HTTP server: request ids, security headers, limits and
 * timeouts, one error handler, metrics, request logs, and the routes. It does
 * not listen and does not own the stores: see `lifecycle.ts`.
 */
export async function buildServer(deps: ServerDependencies): Promise<FastifyInstance> {
  const { config, logger, metrics } = deps;
  const identity = requestIdentity(config.trustProxy);
  // Typed as Fastify's base logger so the instance type matches every plugin's.
  const fastifyLogger: FastifyBaseLogger = logger;
  const app = Fastify({
    loggerInstance: fastifyLogger,
    // One log line per request, written by the onResponse hook below.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'reqId' }),
    genReqId: (request) => identity.requestId(request),
    trustProxy: config.trustProxy.length > 0 ? [...config.trustProxy] : false,
    bodyLimit: config.http.bodyLimitBytes,
    requestTimeout: config.http.requestTimeoutMs,
    keepAliveTimeout: config.http.keepAliveTimeoutMs,
    connectionTimeout: config.http.requestTimeoutMs + config.http.keepAliveTimeoutMs,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    routerOptions: { maxParamLength: 256, ignoreTrailingSlash: false },
    ...(config.tls.certFile !== undefined && config.tls.keyFile !== undefined && { https: readTls(config.tls.certFile, config.tls.keyFile) }),
  });
  // Slow-header (slowloris) defence: Node's default is a minute.
  app.server.headersTimeout = config.http.headersTimeoutMs;

  app.decorateRequest('traceId', '');
  app.addHook('onRequest', async (request, reply) => {
    request.traceId = identity.traceId(request.raw);
    reply.header('x-request-id', request.id);
    securityHeaders(reply, config.mode === 'production');
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.httpRequestDuration.observe({ method: request.method, route, status_code: reply.statusCode }, reply.elapsedTime / 1000);
    if (logger.isLevelEnabled('info')) {
      request.log.info(
        { method: request.method, url: request.url, route, status: reply.statusCode, durationMs: Math.round(reply.elapsedTime * 10) / 10, ip: request.ip, traceId: request.traceId },
        'request completed',
      );
    }
  });

  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) =>
    sendError(request, reply, { code: 'not_found', detail: 'There is no resource at this path.', headers: {} }),
  );

  await app.register(healthRoutes, { stores: deps.stores, metrics, metricsEnabled: config.metrics.enabled });
  for (const plugin of deps.plugins ?? []) await app.register(plugin);
  return app;
}

function readTls(certFile: string, keyFile: string): { cert: Buffer; key: Buffer } {
  try {
    return { cert: readFileSync(certFile), key: readFileSync(keyFile) };
  } catch (error) {
    throw new ConfigError(`cannot read the TLS certificate or key (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
}
