import { readFileSync } from 'node:fs';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyPluginAsync, type FastifyRequest } from 'fastify';
import type { Config } from '../config/index.ts';
import type { Logger } from '../observability/index.ts';
import type { HistogramSeries, Metrics } from '../observability/index.ts';
import { withLazyChildren } from '../observability/index.ts';
import type { Stores } from '../store/index.ts';
import { ConfigError } from '../config/index.ts';
import { errorHandler, sendError } from './error-handler.ts';
import { requestIdentity } from './request-id.ts';
import { securityHeaders } from './security-headers.ts';
import { healthRoutes } from './health.ts';
import { auditRoutes } from './audit-routes.ts';
import { staticAdminAuthenticator } from './admin-auth.ts';
import type { Ledger } from '../audit/index.ts';
import type { Identity } from '../identity/index.ts';
import { identityRoutes } from './identity-routes.ts';
import type { AuthorizationServer } from '../oauth/index.ts';
import { oauthRoutes } from './oauth-routes.ts';
import { authorizeRoutes } from './authorize-routes.ts';
import { applicationAccess, returnTargets, signOutHooks } from './applications.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** W3C trace id of this request (from a trusted proxy's traceparent, or new). */
    readonly traceId: string;
  }
}

const TRACE_ID = Symbol('traceId');

export interface ServerDependencies {
  readonly config: Readonly<Config>;
  readonly stores: Stores;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly ledger: Ledger;
  readonly identity?: Identity;
  readonly authorizationServer?: AuthorizationServer;
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
  // Request loggers are made lazily: most requests never write a line.
  const fastifyLogger: FastifyBaseLogger = withLazyChildren(logger);
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

  // The trace id is drawn only when something reads it (a log line, an audit
  // record): most requests at the default log level never do.
  app.decorateRequest('traceId', {
    getter(this: FastifyRequest & { [TRACE_ID]?: string }) {
      return (this[TRACE_ID] ??= identity.traceId(this.raw));
    },
  });
  // Callback-style hooks: an async hook costs a promise and a microtask turn
  // on every request, and these never wait for anything.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    securityHeaders(reply, config.mode === 'production');
    done();
  });
  const observeDuration = requestDurationRecorder(metrics);
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    observeDuration(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
    if (logger.isLevelEnabled('info')) {
      request.log.info(
        { method: request.method, url: request.url, route, status: reply.statusCode, durationMs: Math.round(reply.elapsedTime * 10) / 10, ip: request.ip, traceId: request.traceId },
        'request completed',
      );
    }
    done();
  });

  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) =>
    sendError(request, reply, { code: 'not_found', detail: 'There is no resource at this path.', headers: {} }),
  );

  await app.register(healthRoutes, { stores: deps.stores, metrics, metricsEnabled: config.metrics.enabled });
  await app.register(auditRoutes, { ledger: deps.ledger, admin: staticAdminAuthenticator(config.admin.token, deps.ledger) });
  const origin = () => ownOrigin(config.issuer, app);
  const oauth = deps.authorizationServer;
  if (deps.identity !== undefined) {
    await app.register(identityRoutes, { identity: deps.identity, origin, ...(oauth !== undefined && { applications: applicationAccess(oauth), signOut: signOutHooks(oauth), returnTargets: returnTargets(oauth) }) });
  }
  if (oauth !== undefined) {
    await app.register(oauthRoutes, { server: oauth });
    if (deps.identity !== undefined) await app.register(authorizeRoutes, { server: oauth, identity: deps.identity, origin });
  }
  for (const plugin of deps.plugins ?? []) await app.register(plugin);
  return app;
}

/**
 * Observes request durations through one series per label set, resolved
 * once and then kept: the request path only adds to numbers.
 */
function requestDurationRecorder(metrics: Metrics): (method: string, route: string, statusCode: number, seconds: number) => void {
  const children = new Map<string, Map<number, HistogramSeries>>();
  return (method, route, statusCode, seconds) => {
    const key = `${method} ${route}`;
    let byStatus = children.get(key);
    if (byStatus === undefined) children.set(key, (byStatus = new Map<number, HistogramSeries>()));
    let child = byStatus.get(statusCode);
    if (child === undefined) {
      child = metrics.httpRequestDuration.series({ method, route, status_code: statusCode });
      byStatus.set(statusCode, child);
    }
    child.observe(seconds);
  };
}

/**
 * Our origin for same-origin checks: the issuer's, except that a development
 * issuer derived from port 0 ("pick a free port") takes the port actually bound.
 */
function ownOrigin(issuer: string, app: FastifyInstance): string {
  const url = new URL(issuer);
  if (url.port !== '0') return url.origin;
  const address = app.server.address();
  return typeof address === 'object' && address !== null ? `${url.protocol}//${url.hostname}:${address.port}` : url.origin;
}

function readTls(certFile: string, keyFile: string): { cert: Buffer; key: Buffer } {
  try {
    return { cert: readFileSync(certFile), key: readFileSync(keyFile) };
  } catch (error) {
    throw new ConfigError(`cannot read the TLS certificate or key (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
}
