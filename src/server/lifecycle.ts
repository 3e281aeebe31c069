import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { DestinationStream } from 'pino';
import { configWarnings, type Config } from '../config/index.ts';
import { Metrics, createLogger, type Logger } from '../observability/index.ts';
import { assertSchemaCurrent, openStores, systemClock, type Clock, type Stores } from '../store/index.ts';
import { FailureAggregator, auditedEvents, openLedger, type Ledger } from '../audit/index.ts';
import type { EventHub } from '../events/index.ts';
import { HookChains, bundledChainSource, type AnyHookHandler } from '../hooks/index.ts';
import { IDENTITY_HOOKS, createIdentity, type Identity } from '../identity/index.ts';
import { OAUTH_HOOKS, createAuthorizationServer, type AuthorizationServer } from '../oauth/index.ts';
import { KeyVault } from '../crypto/index.ts';
import { Keyring, keyringPolicy } from '../tokens/index.ts';
import { buildMetricsServer, buildServer } from './app.ts';

export interface StartOptions {
  readonly clock?: Clock;
  /** Extra routes (feature modules, tests). */
  readonly plugins?: readonly FastifyPluginAsync[];
  /** Where log lines go (default stdout). */
  readonly logDestination?: DestinationStream;
  /**
   * More hook handlers (tests; later the plugin host), and the chain file
   * that places them. The chain file is src/hooks/chains.cfg unless given
   * here; configuration (file, environment, flags) has no say in the order.
   */
  readonly hooks?: { readonly handlers?: readonly AnyHookHandler[]; readonly chains?: string };
}

export interface RunningPortcullis {
  readonly app: FastifyInstance;
  readonly stores: Stores;
  readonly logger: Logger;
  readonly ledger: Ledger;
  /** Where features emit; the ledger records, other instances hear through `stores.bus`. */
  readonly events: EventHub;
  readonly identity: Identity;
  readonly authorizationServer: AuthorizationServer;
  /** The URL it listens on (the real port when config.port is 0). */
  readonly url: string;
  /** The metrics listener's URL, when `metrics.port` is set. */
  readonly metricsUrl?: string;
  /** Stops accepting, lets in-flight requests finish, closes the stores. */
  stop(): Promise<void>;
}

/**
 * Starts one Portcullis instance: master key, logger, metrics, stores,
 * migrations, HTTP listener, in that order, undoing what was opened if a
 * later step fails.
 */
export async function startPortcullis(config: Readonly<Config>, options: StartOptions = {}): Promise<RunningPortcullis> {
  const vault = KeyVault.loadOrCreate(config);
  const logger = createLogger({
    level: config.log.level,
    personalData: config.log.personalData,
    pseudonymKey: vault.derive('log-pseudonyms'),
    ...(options.logDestination !== undefined && { destination: options.logDestination }),
  });
  for (const warning of configWarnings(config)) logger.warn(warning);

  // Every chain, loaded once and checked against every handler before
  // anything is opened: a chain file that does not fit stops the start,
  // naming its line. Faults are logged and audited (emitted as hook.fault
  // once the events exist, below, when the ledger is open).
  let events: EventHub | undefined;
  const hooks = HookChains.load({
    handlers: [...IDENTITY_HOOKS, ...OAUTH_HOOKS, ...(options.hooks?.handlers ?? [])],
    source: options.hooks?.chains ?? bundledChainSource(),
    report: async (fault) => {
      logger.warn({ hook: fault.handler, point: fault.point, line: fault.line, fault: fault.kind, skipped: fault.skipped }, 'hook handler failed');
      await events?.emit({ type: 'hook.fault', outcome: fault.skipped ? 'failure' : 'denied', actorService: 'hooks', detail: { point: fault.point, hook: fault.handler, line: fault.line, fault: fault.kind, skipped: fault.skipped } });
    },
  });

  const metrics = new Metrics();
  const stores = await openStores(config, {
    ...(options.clock !== undefined && { clock: options.clock }),
    observe: (driver, operation, seconds) => metrics.storeOperationDuration.observe({ driver, operation }, seconds),
  });
  let keyring: Keyring | undefined;
  let authorizationServer: AuthorizationServer | undefined;
  try {
    if (config.migrateOnStart) {
      const report = await stores.durable.migrate();
      for (const migration of report.applied) logger.info({ version: migration.version, name: migration.name }, 'migration applied');
    } else {
      await assertSchemaCurrent(stores.durable);
    }
    const ledger = await openLedger({
      log: stores.durable.auditLog,
      records: stores.durable.records,
      vault,
      issuer: config.issuer,
      clock: options.clock ?? systemClock,
      audit: config.audit,
    });
    // The first checkpoint exists from the start, so clients always have one to hold.
    await ledger.latestCheckpoint();
    ledger.startCheckpointing(config.audit.checkpointIntervalMs, (error) => logger.error({ err: error }, 'audit checkpoint failed'));
    const clock = options.clock ?? systemClock;
    // The ledger records every event before the action answers; the bus carries them to the other instances.
    const hub = (events = auditedEvents(ledger, { bus: stores.bus, onError: (error) => logger.error({ err: error }, 'domain event delivery failed') }));
    // Unauthenticated failures reach the ledger aggregated (security review 11).
    const failures = new FailureAggregator({ events: hub, hot: stores.hot, clock });
    const identity = createIdentity({ config, stores, events: hub, vault, clock, failures, hooks });
    keyring = await Keyring.open({
      records: stores.durable.records,
      vault,
      clock,
      events: hub,
      policy: keyringPolicy(config.tokens),
    });
    keyring.start((error) => logger.error({ err: error }, 'signing key maintenance failed'));
    authorizationServer = createAuthorizationServer({ config, stores, events: hub, keyring, identity, vault, clock, failures, hooks, warn: (message, detail) => logger.warn(detail, message) });
    authorizationServer.startMaintenance((error) => logger.error({ err: error }, 'OAuth housekeeping failed'));
    const app = await buildServer({ config, stores, logger, metrics, ledger, events: hub, clock, failures, identity, authorizationServer, ...(options.plugins !== undefined && { plugins: options.plugins }) });
    await app.listen({ host: config.host, port: config.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address !== null ? address.port : config.port;
    const scheme = config.tls.certFile !== undefined ? 'https' : 'http';
    const url = `${scheme}://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
    let metricsApp: FastifyInstance | undefined;
    let metricsUrl: string | undefined;
    if (config.metrics.enabled && config.metrics.port !== undefined) {
      metricsApp = await buildMetricsServer({ config, logger, metrics, failures });
      try {
        await metricsApp.listen({ host: config.metrics.host, port: config.metrics.port });
      } catch (error) {
        await app.close();
        throw error;
      }
      const bound = metricsApp.server.address();
      metricsUrl = `http://${config.metrics.host.includes(':') ? `[${config.metrics.host}]` : config.metrics.host}:${typeof bound === 'object' && bound !== null ? bound.port : config.metrics.port}`;
      logger.info({ url: metricsUrl }, 'metrics listening');
    }
    logger.info({ url, durable: stores.durable.driver, hot: stores.hot.driver, mode: config.mode }, 'portcullis listening');
    let stopping: Promise<void> | undefined;
    return {
      app,
      stores,
      logger,
      ledger,
      events: hub,
      identity,
      authorizationServer,
      url,
      ...(metricsUrl !== undefined && { metricsUrl }),
      stop: () =>
        (stopping ??= (async () => {
          await metricsApp?.close();
          await app.close();
          authorizationServer?.close();
          hub.close();
          await ledger.close();
          await stores.close();
        })()),
    };
  } catch (error) {
    authorizationServer?.close();
    keyring?.close();
    events?.close();
    await stores.close();
    throw error;
  }
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
