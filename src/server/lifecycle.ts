import type { ErasureService, Privacy } from '../privacy/index.ts';
import type { Signals } from '../signals/index.ts';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { DestinationStream } from 'pino';
import type { Config } from '../config/index.ts';
import type { Logger, SpanExporter } from '../observability/index.ts';
import type { Clock, Stores } from '../store/index.ts';
import type { Ledger } from '../audit/index.ts';
import type { EventHub } from '../events/index.ts';
import type { Identity } from '../identity/index.ts';
import type { AuthorizationServer } from '../oauth/index.ts';
import type { PrivacyPreferences } from '../privacy/index.ts';
import {
  PROFILES,
  startServices,
  type HookSettings,
  type HttpApplications,
  type Listener,
  type ListenerAuthority,
  type MtlsListener,
  type OutboxDeliverers,
  type PortcullisRuntime,
} from '../runtime/index.ts';
import { buildMetricsServer, buildServer } from './app.ts';

export interface StartOptions {
  readonly clock?: Clock;
  /** Extra routes (feature modules, tests). */
  readonly plugins?: readonly FastifyPluginAsync[];
  /** Where log lines go (default stdout). */
  readonly logDestination?: DestinationStream;
  /** Where spans go instead of OTLP (tests: an in-memory exporter); traces are on when it is given. */
  readonly traceExporter?: SpanExporter;
  /**
   * More hook handlers (tests; later the plugin host), and the chain file
   * that places them. The chain file is src/hooks/chains.cfg unless given
   * here; configuration (file, environment, flags) has no say in the order.
   */
  readonly hooks?: HookSettings;
  /** Deliverers of outbox messages by topic (later features; tests). */
  readonly outbox?: OutboxDeliverers;
  /** Client trust and certificates for the mTLS listener (`tls.mtlsPort`), until the built-in CA supplies them (tests). */
  readonly listenerAuthority?: ListenerAuthority;
}

export interface RunningPortcullis {
  readonly app: FastifyInstance;
  readonly stores: Stores;
  readonly logger: Logger;
  readonly ledger: Ledger;
  /** Where features emit; the ledger records, other instances hear through `stores.bus`. */
  readonly events: EventHub;
  readonly identity: Identity;
  /** The person's privacy choices (GPC opt-out, consent per purpose). */
  readonly preferences: PrivacyPreferences;
  readonly authorizationServer: AuthorizationServer;
  /** The security-signal transmitter (SSF). */
  readonly signals: Signals;
  /** Consumer requests and the data export. */
  readonly privacy: Privacy;
  /** Erasures, legal holds, the privacy job. */
  readonly erasure: ErasureService;
  /** The URL it listens on (the real port when config.port is 0). */
  readonly url: string;
  /** The metrics listener's URL, when `metrics.port` is set. */
  readonly metricsUrl?: string;
  /** The main listener: on TLS, `reloadTls()` swaps the certificate without a restart. */
  readonly listener: Listener;
  /** The mTLS listener, when `tls.mtlsPort` is set: the same routes, a client certificate required. */
  readonly mtlsListener?: MtlsListener;
  /** Its URL. */
  readonly mtlsUrl?: string;
  /** Every service, for what the fields above do not name. */
  readonly runtime: PortcullisRuntime;
  /** Stops accepting, lets in-flight requests finish, then stops every service in reverse order. */
  stop(): Promise<void>;
}

/** The routes of the listeners: this module's part of the runtime's table. */
function applications(plugins: readonly FastifyPluginAsync[] | undefined): HttpApplications {
  return {
    main: (services, https, role) => buildServer({ ...services, ...(https !== undefined && { https }), ...(plugins !== undefined && { plugins }), mtls: role?.mtls ?? false }),
    metrics: (services) => buildMetricsServer(services),
  };
}

/**
 * Starts one Portcullis instance through the runtime (src/runtime): master
 * key, logger and metrics, hook chains, stores and migrations, ledger, keyring, identity,
 * OAuth, listeners, in that order, undoing what was opened if a later step fails.
 */
export async function startPortcullis(config: Readonly<Config>, options: StartOptions = {}): Promise<RunningPortcullis> {
  const runtime = await startServices(
    {
      config,
      profile: PROFILES.serve(config),
      applications: applications(options.plugins),
      ...(options.clock !== undefined && { clock: options.clock }),
      ...(options.logDestination !== undefined && { logDestination: options.logDestination }),
      ...(options.traceExporter !== undefined && { traceExporter: options.traceExporter }),
      ...(options.hooks !== undefined && { hooks: options.hooks }),
      ...(options.outbox !== undefined && { outbox: options.outbox }),
      ...(options.listenerAuthority !== undefined && { listenerAuthority: options.listenerAuthority }),
    },
    ['outbox', 'listener', 'mtlsListener', 'metricsListener'],
  );
  const { logger } = runtime.get('telemetry');
  const stores = runtime.get('stores');
  const listener = runtime.get('listener');
  const metricsListener = runtime.get('metricsListener');
  const mtlsListener = runtime.get('mtlsListener');
  logger.info({ url: listener.url, ...(mtlsListener !== undefined && { mtlsUrl: mtlsListener.url }), durable: stores.durable.driver, hot: stores.hot.driver, mode: config.mode }, 'portcullis listening');
  return {
    app: listener.app,
    stores,
    logger,
    ledger: runtime.get('ledger'),
    events: runtime.get('events'),
    identity: runtime.get('identity'),
    preferences: runtime.get('preferences'),
    authorizationServer: runtime.get('oauth'),
    signals: runtime.get('signals'),
    privacy: runtime.get('privacy'),
    erasure: runtime.get('erasure'),
    url: listener.url,
    ...(metricsListener !== undefined && { metricsUrl: metricsListener.url }),
    listener,
    ...(mtlsListener !== undefined && { mtlsListener, mtlsUrl: mtlsListener.url }),
    runtime,
    stop: () => runtime.stop(),
  };
}

/**
 * SIGTERM/SIGINT: stop accepting, finish in-flight requests, close stores,
 * exit 0. If that takes longer than `timeoutMs`, exit 1 so an orchestrator
 * is not kept waiting by a stuck request.
 */
export function exitGracefullyOnSignals(running: RunningPortcullis, timeoutMs: number): void {
  const onSignal = (signal: NodeJS.Signals) => {
    running.logger.info({ signal }, 'shutting down: finishing in-flight requests');
    const force = setTimeout(() => {
      running.logger.error({ timeoutMs }, 'shutdown timed out; exiting with requests still in flight');
      process.exit(1);
    }, timeoutMs);
    force.unref();
    running.stop().then(
      () => {
        running.logger.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        running.logger.error({ err: error }, 'error while shutting down');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}

/**
 * SIGHUP (`systemctl reload`): read the TLS certificate and key files again
 * (the main listener's, and the mTLS listener's when it has files) and
 * serve the new pair to new connections, without a restart; open
 * connections keep theirs. The files are also watched, so this is for
 * deploy tools that signal, and for a watch that could not be set up. A
 * pair that does not load is refused, logged, and the current certificate
 * keeps serving. Without TLS files there is nothing to reload and the
 * signal is only logged. Returns the way to stop listening.
 */
export function reloadTlsOnHangup(running: RunningPortcullis): () => void {
  const reload = (listener: 'main' | 'mtls', load: () => { serialNumber: string; notAfter: Date }) => {
    try {
      const certificate = load();
      running.logger.info({ signal: 'SIGHUP', listener, serialNumber: certificate.serialNumber, notAfter: certificate.notAfter.toISOString() }, 'TLS certificate reloaded');
    } catch (error) {
      // ConfigError messages name the problem, never the key material.
      running.logger.error({ signal: 'SIGHUP', listener, reason: error instanceof Error ? error.message : 'unknown' }, 'TLS certificate reload refused; still serving the previous certificate');
    }
  };
  const onHangup = () => {
    const mtls = running.mtlsListener?.fromFiles === true ? running.mtlsListener : undefined;
    if (!running.listener.secure && mtls === undefined) {
      running.logger.info({ signal: 'SIGHUP' }, 'no TLS certificate to reload (tls.certFile is not set)');
      return;
    }
    if (running.listener.secure) reload('main', () => running.listener.reloadTls());
    if (mtls !== undefined) reload('mtls', () => mtls.reloadTls());
  };
  process.on('SIGHUP', onHangup);
  return () => process.off('SIGHUP', onHangup);
}
