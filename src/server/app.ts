import type { IncomingMessage } from 'node:http';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyPluginAsync, type FastifyRequest } from 'fastify';
import type { Config } from '../config/index.ts';
import type { Logger } from '../observability/index.ts';
import type { HistogramSeries, Metrics } from '../observability/index.ts';
import { SpanKind, SpanStatusCode, contextWithSpan, remoteParent, withLazyChildren, type Span, type Tracer } from '../observability/index.ts';
import type { Stores } from '../store/index.ts';
import { errorHandler, refuseUnacceptedMediaType, sendError, writeClientError } from './error-handler.ts';
import { requestIdentity, type RequestIdentity } from './request-id.ts';
import { securityHeaderFields, securityHeaders } from './security-headers.ts';
import { healthRoutes, metricsRoute, type MetricsFailures } from './health.ts';
import { homeRoutes } from './home-routes.ts';
import { methodsOf, routeTable } from './route-table.ts';
import { developmentHostRedirect } from './development-host.ts';
import { caRoutes } from './ca-routes.ts';
import { signalsRoutes } from './signals-routes.ts';
import { attachSignalSocket } from './signals-socket.ts';
import { auditRoutes } from './audit-routes.ts';
import { staticAdminAuthenticator } from './admin-auth.ts';
import { FailureAggregator, type Ledger } from '../audit/index.ts';
import type { DomainEvents } from '../events/index.ts';
import { systemClock, type Clock } from '../store/index.ts';
import type { Identity } from '../identity/index.ts';
import { identityRoutes } from './identity-routes.ts';
import { privacyRoutes } from './privacy-routes.ts';
import type { AuthorizationServer } from '../oauth/index.ts';
import type { Pki } from '../runtime/index.ts';
import type { Signals } from '../signals/index.ts';
import type { ErasureService, Privacy } from '../privacy/index.ts';
import { erasureRoutes } from './erasure-routes.ts';
import { oauthRoutes } from './oauth-routes.ts';
import { authorizeRoutes } from './authorize-routes.ts';
import { applicationAccess, returnTargets, signOutHooks } from './applications.ts';
import type { PrivacyPreferences } from '../privacy/index.ts';
import { globalPrivacyControl, privacyAccountSection, privacyAfterSignIn, privacyPreferenceRoutes } from './privacy-preference-routes.ts';
import type { TlsServerOptions } from '../runtime/index.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** W3C trace id of this request (from a trusted proxy's traceparent, or new). */
    readonly traceId: string;
    /**
     * Why a page refused this request (`origin_mismatch`, `csrf_token_invalid`, ...):
     * set by the handler, written in the request's log line (first-hour D20). Never a secret.
     */
    refusalReason: string | null;
  }
}

const TRACE_ID = Symbol('traceId');

export interface ServerDependencies {
  readonly config: Readonly<Config>;
  readonly stores: Stores;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** OpenTelemetry: a server span per request when given. */
  readonly tracer?: Tracer;
  /** Read by the audit API; written only through `events`. */
  readonly ledger: Ledger;
  readonly events: DomainEvents;
  readonly clock?: Clock;
  /** Counts unauthenticated failures for the ledger (security review 11); one per instance, shared with identity. */
  readonly failures?: FailureAggregator;
  readonly identity?: Identity;
  /** The person's privacy choices: GPC on the pages, the account page's switch and purposes, consent asked at sign-in. */
  readonly preferences?: PrivacyPreferences;
  readonly authorizationServer?: AuthorizationServer;
  /** The built-in CA: its routes are served when it is given. */
  readonly pki?: Pki;
  readonly signals?: Signals;
  /** Privacy workflows: the data export's pages, admin API and schema are served when it is given. */
  /** The erasure workflows: the Delete my account page and the erasure, request and hold admin API are served when given. */
  readonly erasure?: ErasureService;
  readonly privacy?: Privacy;
  /** More routes, registered after the built-in ones (feature modules, tests). */
  readonly plugins?: readonly FastifyPluginAsync[];
  /** TLS server options: the server speaks HTTPS (the runtime's listener reads, reloads and swaps them). */
  readonly https?: TlsServerOptions;
  /**
   * This instance serves the mTLS listener: the same routes, and every
   * request's socket carries a client certificate verified in the
   * handshake (`request.raw.socket.getPeerX509Certificate()`, RFC 8705).
   */
  readonly mtls?: boolean;
}

/**
 * Assembles the HTTP server: request ids, security headers, limits and
 * timeouts, one error handler, metrics, request logs, and the routes. It does
 * not listen and does not own the stores: the runtime's listener does (src/runtime).
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
    // A URL the router cannot decode is refused before any hook runs: same headers and problem body as the rest (security review 8).
    frameworkErrors: (error, request, reply) => {
      reply.header('x-request-id', request.id);
      securityHeaders(reply, config.mode === 'production');
      errorHandler(error, request, reply);
    },
    // What Node's parser refuses gets our headers and a problem body too (security review 8).
    clientErrorHandler: (error, socket) => writeClientError(error, socket, securityHeaderFields(config.mode === 'production'), identity.requestId({ headers: {}, socket } as unknown as IncomingMessage)),
    // As the runtime gives them (an mTLS listener's requestCert, ca, crl, ALPN): it swaps them as one context later.
    ...(deps.https !== undefined && { https: { ...deps.https } }),
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
  app.decorateRequest('refusalReason', null);
  if (deps.tracer !== undefined) traceRequests(app, deps.tracer, identity, (request, traceId) => ((request as FastifyRequest & { [TRACE_ID]?: string })[TRACE_ID] = traceId));
  // Callback-style hooks: an async hook costs a promise and a microtask turn
  // on every request, and these never wait for anything.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    securityHeaders(reply, config.mode === 'production');
    done();
  });
  app.addHook('preParsing', (request, reply, _payload, done) => refuseUnacceptedMediaType(request, reply, done));
  const observeDuration = requestDurationRecorder(metrics);
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    observeDuration(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
    if (logger.isLevelEnabled('info')) {
      request.log.info(
        {
          method: request.method,
          url: request.url,
          route,
          status: reply.statusCode,
          durationMs: Math.round(reply.elapsedTime * 10) / 10,
          ip: request.ip,
          traceId: request.traceId,
          ...(request.refusalReason !== null && { reason: request.refusalReason }),
        },
        'request completed',
      );
    }
    done();
  });

  const origin = () => ownOrigin(config.issuer, app);
  if (config.mode === 'development') app.addHook('onRequest', developmentHostRedirect(origin));

  const routes = routeTable(app);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) => {
    // RFC 9110 section 15.5.6: a known path asked with a method it does not
    // support is 405 with an Allow header listing those it does (first-hour D15).
    const allowed = methodsOf(routes, request.url);
    if (allowed.length > 0) {
      return sendError(request, reply, { code: 'method_not_allowed', detail: `This path answers ${allowed.join(', ')}.`, headers: { allow: allowed.join(', ') } });
    }
    return sendError(request, reply, { code: 'not_found', detail: 'There is no resource at this path.', headers: {} });
  });

  const failures = deps.failures ?? new FailureAggregator({ events: deps.events, hot: deps.stores.hot, clock: deps.clock ?? systemClock });
  await app.register(healthRoutes, { stores: deps.stores, metrics, metricsEnabled: metricsOnMainListener(config, logger, deps.mtls !== true), metricsToken: config.metrics.token, failures });
  const admin = staticAdminAuthenticator(config.admin.token, failures);
  await app.register(auditRoutes, { ledger: deps.ledger, events: deps.events, admin });
  const issuer = () => (new URL(config.issuer).port === '0' ? origin() : config.issuer);
  await app.register(homeRoutes, { issuer });
  const oauth = deps.authorizationServer;
  const { preferences } = deps;
  if (deps.identity !== undefined && preferences !== undefined) {
    // At the root, before the pages are registered, so every page's route runs it (after its own cookie parsing).
    app.addHook('preHandler', globalPrivacyControl({ preferences, identity: deps.identity }));
  }
  if (deps.identity !== undefined) {
    await app.register(identityRoutes, {
      identity: deps.identity,
      origin,
      dataExport: deps.privacy !== undefined,
      ...(oauth !== undefined && { applications: applicationAccess(oauth), signOut: signOutHooks(oauth), returnTargets: returnTargets(oauth) }),
      ...(preferences !== undefined && { accountSections: [privacyAccountSection(preferences)], afterSignIn: privacyAfterSignIn(preferences) }),
    });
    if (preferences !== undefined) await app.register(privacyPreferenceRoutes, { preferences, identity: deps.identity, origin, ...(oauth !== undefined && { returnTargets: returnTargets(oauth) }) });
  }
  if (deps.privacy !== undefined) {
    await app.register(privacyRoutes, { privacy: deps.privacy, admin, issuer, origin, ...(deps.identity !== undefined && { identity: deps.identity }), ...(oauth !== undefined && { signOut: signOutHooks(oauth) }) });
  }
  if (oauth !== undefined) {
    await app.register(oauthRoutes, { server: oauth });
    if (deps.identity !== undefined) await app.register(authorizeRoutes, { server: oauth, identity: deps.identity, origin, purposes: config.privacy.purposes });
  }
  if (deps.pki !== undefined) await app.register(caRoutes, { pki: deps.pki, oauth, failures, issuer: config.issuer });
  if (deps.signals !== undefined) {
    await app.register(signalsRoutes, { signals: deps.signals, oauth, failures, issuer: config.issuer });
    attachSignalSocket(app, { signals: deps.signals, oauth, failures, issuer: config.issuer, mtls: deps.mtls === true, trustedProxies: config.trustProxy });
  }
  if (deps.erasure !== undefined && deps.identity !== undefined) {
    await app.register(erasureRoutes, { erasure: deps.erasure, ...(deps.privacy !== undefined && { requests: deps.privacy.requests }), identity: deps.identity, origin, admin, graceDays: config.privacy.erasureGraceDays, ...(oauth !== undefined && { signOut: signOutHooks(oauth) }) });
  }
  for (const plugin of deps.plugins ?? []) await app.register(plugin);
  return app;
}

/**
 * The metrics listener (`metrics.port`, on `metrics.host`, loopback by
 * default): /metrics only, with the same headers and error answers as the
 * main listener, and the metrics token when one is set.
 */
export async function buildMetricsServer(deps: { config: Readonly<Config>; logger: Logger; metrics: Metrics; failures: MetricsFailures }): Promise<FastifyInstance> {
  const identity = requestIdentity([]);
  const metricsLogger: FastifyBaseLogger = withLazyChildren(deps.logger);
  const app = Fastify({
    loggerInstance: metricsLogger,
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'reqId' }),
    genReqId: (request) => identity.requestId(request),
    requestTimeout: deps.config.http.requestTimeoutMs,
    forceCloseConnections: true,
  });
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    securityHeaders(reply, deps.config.mode === 'production');
    done();
  });
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) => sendError(request, reply, { code: 'not_found', detail: 'This listener serves /metrics only.', headers: {} }));
  await app.register(metricsRoute, { metrics: deps.metrics, token: deps.config.metrics.token, failures: deps.failures });
  return app;
}

/**
 * Whether /metrics is served on the main listener (security review 17):
 * not when it has its own listener; in production only behind a token, and
 * an operator who set neither is told once, at start (by the main
 * listener's instance, not again by the mTLS listener's).
 */
function metricsOnMainListener(config: Readonly<Config>, logger: Logger, warn: boolean): boolean {
  if (!config.metrics.enabled || config.metrics.port !== undefined) return false;
  if (config.mode === 'production' && config.metrics.token === undefined) {
    if (warn) logger.warn('metrics are not served: in production /metrics needs metrics.token (PORTCULLIS_METRICS_TOKEN) or metrics.port (PORTCULLIS_METRICS_PORT)');
    return false;
  }
  return true;
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

const REQUEST_SPAN = Symbol('requestSpan');

/**
 * A server span per request (OpenTelemetry, issue 16): it continues a trusted
 * proxy's `traceparent` (W3C Trace Context), or starts a trace; its trace id
 * becomes the request's (`traceId` in logs and audit entries), and it is the
 * active span while the request runs, so the store calls and plugin calls
 * it makes are its children. Named by the route template when it ends.
 */
function traceRequests(app: FastifyInstance, tracer: Tracer, identity: RequestIdentity, setTraceId: (request: FastifyRequest, traceId: string) => void): void {
  type Traced = FastifyRequest & { [REQUEST_SPAN]?: Span };
  app.addHook('onRequest', (request, _reply, done) => {
    const offered = identity.traceParent(request.raw);
    const parent = remoteParent(offered?.traceparent, offered?.tracestate);
    const span = tracer.startSpan(request.method, { kind: SpanKind.SERVER, attributes: { 'http.request.method': request.method, 'url.path': request.url.split('?')[0]! } }, parent);
    (request as Traced)[REQUEST_SPAN] = span;
    setTraceId(request, span.spanContext().traceId);
    contextWithSpan(parent, span, done);
  });
  const end = (request: FastifyRequest, status: number | undefined) => {
    const span = (request as Traced)[REQUEST_SPAN];
    if (span === undefined) return;
    (request as Traced)[REQUEST_SPAN] = undefined;
    const route = request.routeOptions.url;
    if (route !== undefined) {
      span.updateName(`${request.method} ${route}`);
      span.setAttribute('http.route', route);
    }
    if (status !== undefined) {
      span.setAttribute('http.response.status_code', status);
      // OpenTelemetry HTTP conventions: on a server span, only a 5xx is an error.
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
    }
    span.end();
  };
  app.addHook('onResponse', (request, reply, done) => {
    end(request, reply.statusCode);
    done();
  });
  app.addHook('onRequestAbort', (request, done) => {
    end(request, undefined);
    done();
  });
}
