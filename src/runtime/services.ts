/**
 * The services of one Portcullis instance, in the one order they start
 * (and the reverse in which they stop). A new service is one more entry,
 * placed after what it needs, with its value named in PortcullisServices
 * (profiles.ts).
 */
import { ConfigError, configWarnings } from '../config/index.ts';
import { Metrics, createLogger, createTracing, type Logger } from '../observability/index.ts';
import { assertSchemaCurrent, openStores, type Clock, type StoreStateListener } from '../store/index.ts';
import { FailureAggregator, auditedEvents, forgetIn, openLedger } from '../audit/index.ts';
import type { EventHub } from '../events/index.ts';
import { HookChains, PLUGIN_HOST_HANDLER, PluginSlot, bundledChainSource, parseChainFile } from '../hooks/index.ts';
import { PluginHost, PluginRegistry, pluginHostSettings, pluginProtectedPaths } from '../plugins/index.ts';
import { IDENTITY_HOOKS, createIdentity } from '../identity/index.ts';
import { ClientRegistry, OAUTH_HOOKS, ResourceRegistry, ResourceRegistryError, createAuthorizationServer, isApproved } from '../oauth/index.ts';
import { Keyring, keyringPolicy } from '../tokens/index.ts';
import { CertificateAuthority, EnrolmentTokens, caSettings } from '../pki/index.ts';
import { createPrivacyPreferences } from '../privacy/index.ts';
import { assertDataDirUsable, assertDeploymentExists, openExistingStores, withAbsolutePaths } from './deployment.ts';
import { Listener } from './listener.ts';
import { MtlsListener, serverNames } from './mtls.ts';
import { caListenerAuthority, type CaListenerAuthority } from './ca-authority.ts';
import { mtlsFilesOf, readTlsMaterial, tlsFilesOf, tlsServerOptions } from './tls.ts';
import { logTlsWatchEvent } from './tls-watch.ts';
import { openVault } from './vault.ts';
import { join } from 'node:path';
import { startOutboxWorker } from './outbox.ts';
import { createErasureService, createPrivacy } from '../privacy/index.ts';
import { SIGNALS_TOPIC, SSF_STREAM_SCOPE, createSignals, signalsAudience, signalRecorder, signalSettings, type SubjectDirectory } from '../signals/index.ts';
import type { ApplicationServices, HttpApplications, PortcullisServices, ServiceSettings } from './profiles.ts';
import type { ServiceContext, ServiceTable } from './service.ts';

/** A background failure is logged, never thrown: the timers keep running. */
/**
 * One log line when a store goes down and one when it is back, and the
 * `portcullis_store_up` gauge (issue 16); the requests refused meanwhile are
 * answered 503 without a line of their own at error level.
 */
function storeStateLog(telemetry: { logger: Logger; metrics: Metrics }): StoreStateListener {
  for (const store of ['durable', 'hot'] as const) telemetry.metrics.storeUp.set({ store }, 1);
  return {
    down: (store, driver, reason) => {
      telemetry.metrics.storeUp.set({ store }, 0);
      telemetry.logger.error({ store, driver, reason }, 'store unavailable: requests that need it are answered 503 until it answers again');
    },
    up: (store, driver) => {
      telemetry.metrics.storeUp.set({ store }, 1);
      telemetry.logger.info({ store, driver }, 'store available again');
    },
  };
}

function reporter(services: ServiceContext<PortcullisServices>, message: string): (error: unknown) => void {
  const { logger } = services.get('telemetry');
  return (error) => logger.error({ err: error }, message);
}

export function portcullisServices(settings: ServiceSettings): ServiceTable<PortcullisServices> {
  const { profile, clock } = settings;
  const maintenance = profile.maintenance ? (['telemetry'] as const) : [];
  const hooks = profile.hooks ? (['hooks'] as const) : [];
  // Hook faults are emitted (and so audited) once the events exist, and until they close.
  let faultEvents: EventHub | undefined;
  // The signal recorder is the events' from the start (a key made while the
  // keyring opens is a signal too); what it learns later comes through these.
  let subjects: SubjectDirectory | undefined;
  let kickOutbox: (() => void) | undefined;
  // The chains' plugins.host handlers; the plugin host attaches its dispatcher once its plugins run.
  const pluginSlot = new PluginSlot();
  return [
    {
      name: 'config',
      needs: [],
      // An admin command names absolute paths in what it says (first-hour D7).
      start: () => {
        if (profile.create) {
          assertDataDirUsable(settings.config);
          return settings.config;
        }
        assertDeploymentExists(settings.config);
        return withAbsolutePaths(settings.config);
      },
    },
    {
      name: 'vault',
      needs: ['config'],
      start: (services) => openVault(services.get('config'), { create: profile.create }),
    },
    {
      name: 'telemetry',
      needs: ['config', 'vault'],
      start: (services) => {
        const config = services.get('config');
        const logger = createLogger({
          level: config.log.level,
          personalData: config.log.personalData,
          pseudonymKey: services.get('vault').derive('log-pseudonyms'),
          ...(settings.logDestination !== undefined && { destination: settings.logDestination }),
        });
        for (const warning of configWarnings(config)) logger.warn(warning);
        const tracing = createTracing({ env: process.env, ...(settings.traceExporter !== undefined && { exporter: settings.traceExporter }) });
        if (tracing !== undefined) logger.info('OpenTelemetry traces on');
        return { logger, metrics: new Metrics(), tracing };
      },
      stop: (telemetry) => telemetry.tracing?.shutdown(),
    },
    {
      name: 'hooks',
      needs: ['telemetry'],
      // Before anything is opened: a chain file that does not fit its handlers stops the start, naming its line.
      start: (services) => {
        const { logger } = services.get('telemetry');
        const source = settings.hooks?.chains ?? bundledChainSource();
        // The slot joins every point whose chain places plugins.host (all of them in the bundled file).
        const slotted = [...parseChainFile(source).chains].filter(([, lines]) => lines.some((line) => line.handler === PLUGIN_HOST_HANDLER)).map(([point]) => point);
        return HookChains.load({
          handlers: [...IDENTITY_HOOKS, ...OAUTH_HOOKS, ...pluginSlot.handlers(slotted), ...(settings.hooks?.handlers ?? [])],
          source,
          report: async (fault) => {
            logger.warn({ hook: fault.handler, point: fault.point, line: fault.line, fault: fault.kind, skipped: fault.skipped }, 'hook handler failed');
            await faultEvents?.emit({ type: 'hook.fault', outcome: fault.skipped ? 'failure' : 'denied', actorService: 'hooks', detail: { point: fault.point, hook: fault.handler, line: fault.line, fault: fault.kind, skipped: fault.skipped } });
          },
        });
      },
    },
    {
      name: 'stores',
      needs: profile.telemetry ? ['config', 'telemetry'] : ['config'],
      start: async (services) => {
        const config = services.get('config');
        const telemetry = profile.telemetry ? services.get('telemetry') : undefined;
        const options = {
          clock,
          ...(telemetry !== undefined && {
            observe: (driver: string, operation: string, seconds: number) => telemetry.metrics.storeOperationDuration.observe({ driver, operation }, seconds),
            breakers: { listener: storeStateLog(telemetry) },
            ...(telemetry.tracing !== undefined && { tracer: telemetry.tracing.tracer }),
          }),
        };
        if (!profile.create) return openExistingStores(config, { schemaCurrent: profile.schema === 'current', ...options });
        const stores = await openStores(config, options);
        try {
          if (profile.schema === 'migrate') {
            const report = await stores.durable.migrate();
            for (const migration of report.applied) telemetry?.logger.info({ version: migration.version, name: migration.name }, 'migration applied');
          } else if (profile.schema === 'current') {
            await assertSchemaCurrent(stores.durable);
          }
          return stores;
        } catch (error) {
          await stores.close();
          throw error;
        }
      },
      stop: (stores) => stores.close(),
    },
    {
      name: 'ledger',
      needs: ['config', 'vault', 'stores', ...maintenance],
      start: async (services) => {
        const config = services.get('config');
        const stores = services.get('stores');
        const ledger = await openLedger({ log: stores.durable.auditLog, records: stores.durable.records, vault: services.get('vault'), issuer: config.issuer, clock, audit: config.audit });
        if (profile.maintenance) {
          try {
            // The first checkpoint exists from the start, so clients always have one to hold.
            await ledger.latestCheckpoint();
          } catch (error) {
            await ledger.close();
            throw error;
          }
          ledger.startCheckpointing(config.audit.checkpointIntervalMs, reporter(services, 'audit checkpoint failed'));
        }
        return ledger;
      },
      stop: (ledger) => ledger.close(),
    },
    {
      name: 'events',
      needs: ['stores', 'ledger', ...maintenance],
      // The ledger records every event before the action answers; the bus carries them to the other instances.
      start: (services) => {
        const logger = profile.maintenance ? services.get('telemetry').logger : undefined;
        const events = auditedEvents(services.get('ledger'), {
          bus: services.get('stores').bus,
          ...(logger !== undefined && { onError: (error: unknown) => logger.error({ err: error }, 'domain event delivery failed') }),
        });
        // Security events are queued in the outbox before an action answers, like its audit entry.
        const signals = signalRecorder({
          durable: services.get('stores').durable,
          issuer: settings.config.issuer,
          directory: { emailOf: (userId, records) => subjects?.emailOf(userId, records) ?? Promise.resolve(undefined) },
          clock,
          kick: () => kickOutbox?.(),
        });
        events.record(signals.record);
        events.stager(signals.stage);
        faultEvents = events;
        return events;
      },
      stop: (events) => {
        faultEvents = undefined;
        events.close();
      },
    },
    {
      name: 'failures',
      needs: ['stores', 'events'],
      start: (services) => new FailureAggregator({ events: services.get('events'), hot: services.get('stores').hot, clock }),
    },
    {
      name: 'keyring',
      needs: ['config', 'vault', 'stores', 'events', ...maintenance],
      start: async (services) => {
        const keyring = await Keyring.open({
          records: services.get('stores').durable.records,
          vault: services.get('vault'),
          clock,
          events: services.get('events'),
          policy: keyringPolicy(services.get('config').tokens),
        });
        if (profile.maintenance) keyring.start(reporter(services, 'signing key maintenance failed'));
        return keyring;
      },
      stop: (keyring) => keyring.close(),
    },
    {
      name: 'identity',
      needs: ['config', 'vault', 'stores', 'events', 'failures', ...hooks],
      start: (services) => {
        const identity = createIdentity({
          config: services.get('config'),
          stores: services.get('stores'),
          events: services.get('events'),
          vault: services.get('vault'),
          clock,
          failures: services.get('failures'),
          ...(profile.hooks && { hooks: services.get('hooks') }),
        });
        subjects = identity.accounts;
        return identity;
      },
    },
    {
      name: 'preferences',
      needs: ['config', 'vault', 'stores', 'events', 'identity'],
      // The person's privacy choices (GPC opt-out, consent per purpose), on the user record and their history.
      start: (services) =>
        createPrivacyPreferences({
          purposes: services.get('config').privacy.purposes,
          durable: services.get('stores').durable,
          users: services.get('identity').accounts.users,
          events: services.get('events'),
          vault: services.get('vault'),
          clock,
        }),
    },
    {
      name: 'registries',
      needs: ['vault', 'stores', 'events'],
      start: (services) => {
        const records = services.get('stores').durable.records;
        const events = services.get('events');
        return {
          clients: new ClientRegistry({ records, secretKey: services.get('vault').derive('client-secrets'), events, clock, cacheMs: 0 }),
          resources: new ResourceRegistry({ records, events, clock, cacheMs: 0 }),
        };
      },
    },
    {
      name: 'oauth',
      needs: ['config', 'vault', 'stores', 'events', 'failures', 'keyring', 'identity', ...maintenance, ...hooks],
      start: (services) => {
        const logger = profile.maintenance ? services.get('telemetry').logger : undefined;
        const server = createAuthorizationServer({
          config: services.get('config'),
          stores: services.get('stores'),
          events: services.get('events'),
          keyring: services.get('keyring'),
          identity: services.get('identity'),
          vault: services.get('vault'),
          clock,
          failures: services.get('failures'),
          kickOutbox: () => kickOutbox?.(),
          ...(profile.hooks && { hooks: services.get('hooks') }),
          ...(logger !== undefined && { warn: (message: string, detail: Record<string, unknown>) => logger.warn(detail, message) }),
        });
        if (profile.maintenance) server.startMaintenance(reporter(services, 'OAuth housekeeping failed'));
        return server;
      },
      stop: (server) => server.close(),
    },
    {
      name: 'privacy',
      needs: ['config', 'vault', 'stores', 'ledger', 'events', 'identity', 'registries'],
      // Access and portability read what identity, OAuth and the ledger keep; not through the
      // authorization server, whose keyring would make a signing key in a one-shot command.
      start: (services) =>
        createPrivacy({
          config: services.get('config'),
          stores: services.get('stores'),
          vault: services.get('vault'),
          events: services.get('events'),
          ledger: services.get('ledger'),
          identity: services.get('identity'),
          clients: services.get('registries').clients,
          clock,
        }),
    },
    {
      name: 'pki',
      needs: ['config', 'vault', 'stores', 'events', 'keyring', ...maintenance],
      // Opens whether or not `ca init` has run: the routes answer "not initialised" until it has.
      start: async (services) => {
        const config = services.get('config');
        const settings = caSettings(config);
        const events = services.get('events');
        const stores = services.get('stores');
        const authority = await CertificateAuthority.open({ records: stores.durable.records, vault: services.get('vault'), clock, events, subscriptions: events, ...settings });
        if (profile.maintenance) authority.start(reporter(services, 'CA maintenance failed'));
        const enrolment = new EnrolmentTokens({ keyring: services.get('keyring'), algorithm: config.tokens.signingAlgorithm, hot: stores.hot, clock, events, issuer: settings.issuer, trustDomain: settings.trustDomain });
        return { authority, enrolment };
      },
      stop: (pki) => pki.authority.close(),
    },
    {
      name: 'signals',
      needs: ['config', 'vault', 'stores', 'events', 'keyring', 'oauth', ...maintenance],
      start: async (services) => {
        // Receivers' tokens are for the resource <issuer>/signals (scope ssf:stream), made with the deployment.
        if (profile.create) await ensureSignalsResource(services.get('oauth').resources, services.get('config').issuer);
        const stores = services.get('stores');
        const events = services.get('events');
        const signals = createSignals({
          durable: stores.durable,
          hot: stores.hot,
          keyring: services.get('keyring'),
          vault: services.get('vault'),
          events,
          subscriptions: events,
          settings: signalSettings(services.get('config')),
          clock,
          mayReceive: async (clientId) => {
            const client = await services.get('oauth').clients.get(clientId);
            return client !== null && isApproved(client);
          },
          clientExists: async (clientId) => (await services.get('oauth').clients.get(clientId)) !== null,
          ...(profile.maintenance && { onError: reporter(services, 'security signal delivery failed') }),
        });
        await signals.transmitter.refreshHead();
        if (profile.maintenance) signals.start();
        return signals;
      },
      stop: (signals) => signals.close(),
    },
    {
      name: 'erasure',
      needs: ['config', 'vault', 'stores', 'ledger', 'events', 'keyring', 'identity', 'oauth', ...maintenance],
      start: (services) => {
        const stores = services.get('stores');
        const ledger = services.get('ledger');
        const erasure = createErasureService({
          config: services.get('config'),
          stores,
          vault: services.get('vault'),
          events: services.get('events'),
          subscriptions: services.get('events'),
          identity: services.get('identity'),
          oauth: services.get('oauth'),
          keyring: services.get('keyring'),
          clock,
          forgetPseudonym: (records, userId) => forgetIn(records, userId, clock()),
          dropPseudonymIndex: (pseudonym) => ledger.dropSubjectIndex(pseudonym),
          kickOutbox: () => kickOutbox?.(),
          ...(profile.maintenance && { onCleanupFailed: reporter(services, "an erasure's steps after its commit failed; the privacy job finishes them") }),
        });
        if (profile.maintenance) erasure.start(reporter(services, 'the privacy job failed'));
        return erasure;
      },
      stop: (erasure) => erasure.close(),
    },
    {
      name: 'plugins',
      needs: ['config', 'stores', 'events', 'identity', ...maintenance, ...hooks],
      // Only a serving instance runs plugins (one-shot commands never start a plugin process).
      start: async (services) => {
        if (!profile.maintenance || !profile.hooks) return undefined;
        const config = services.get('config');
        const { logger } = services.get('telemetry');
        const events = services.get('events');
        const stores = services.get('stores');
        const host = new PluginHost({
          registry: new PluginRegistry({ records: stores.durable.records, events, directory: join(config.dataDir, 'plugins'), trustedKeys: config.plugins.trustedKeys, clock }),
          events,
          subscriptions: events,
          users: services.get('identity').accounts.users,
          slot: pluginSlot,
          settings: pluginHostSettings(config),
          log: logger,
          hot: stores.hot,
          protectedPaths: pluginProtectedPaths(config),
          ...(services.get('telemetry').tracing !== undefined && { tracer: services.get('telemetry').tracing!.tracer }),
        });
        try {
          await host.start();
        } catch (error) {
          await host.close();
          throw error;
        }
        return host;
      },
      stop: (host) => host?.close(),
    },
    {
      name: 'outbox',
      needs: ['stores', 'oauth', 'signals', 'erasure', ...maintenance],
      // Only where background work runs: one-shot commands never deliver.
      start: (services) => {
        if (!profile.maintenance) return undefined;
        const { transmitter } = services.get('signals');
        const worker = startOutboxWorker({
          outbox: services.get('stores').durable.outbox,
          deliverers: { ...settings.outbox, ...services.get('oauth').deliverers, ...services.get('erasure').deliverers, [SIGNALS_TOPIC]: (message) => transmitter.appendFromOutbox(message) },
          clock,
          onError: reporter(services, 'outbox delivery failed'),
          ...(services.get('telemetry').tracing !== undefined && { tracer: services.get('telemetry').tracing!.tracer }),
        });
        kickOutbox = () => worker.kick();
        return worker;
      },
      // Lets the delivery in flight finish and be recorded; the stores close after.
      stop: (worker) => {
        kickOutbox = undefined;
        return worker?.stop();
      },
    },
    {
      name: 'ca',
      needs: ['config', 'pki', 'oauth', 'events', 'telemetry'],
      // The mTLS listener's trust and certificate: the built-in CA, unless the caller supplies another (tests).
      start: async (services) => {
        if (settings.listenerAuthority !== undefined) return settings.listenerAuthority;
        // Only the mTLS listener uses it.
        if (services.get('config').tls.mtlsPort === undefined) return undefined;
        const { authority } = services.get('pki');
        // Without a CA the listener would trust no client certificate at all: say so at start, not at the first handshake.
        if (!authority.initialised) throw new ConfigError('tls.mtlsPort is set, but the built-in CA is not initialised: run `portcullis ca init` (the CA issues the client certificates the mTLS listener trusts)');
        return caListenerAuthority({ authority, clients: services.get('oauth').clients, events: services.get('events'), onError: reporter(services, 'reading self-signed client certificates failed') });
      },
      stop: (authority) => (authority as Partial<CaListenerAuthority> | undefined)?.close?.(),
    },
    {
      name: 'listener',
      needs: ['config', 'telemetry', 'stores', 'ledger', 'events', 'failures', 'identity', 'preferences', 'oauth', 'privacy', 'pki', 'signals', 'erasure', 'plugins'],
      // In-flight requests may take the shutdown timeout, no longer.
      stopTimeoutMs: settings.config.http.shutdownTimeoutMs,
      start: async (services) => {
        const config = services.get('config');
        const { logger } = services.get('telemetry');
        const files = tlsFilesOf(config);
        const material = files !== undefined ? readTlsMaterial(files) : undefined;
        const app = await applications(settings).main(applicationServices(services, clock), material !== undefined ? tlsServerOptions(material) : undefined, { mtls: false });
        return Listener.open(app, {
          host: config.host,
          port: config.port,
          clock,
          ...(files !== undefined && material !== undefined && {
            tls: { material, files, watch: { debounceMs: config.tls.watchDebounceMs, report: (event) => logTlsWatchEvent(logger, 'main', event) } },
          }),
        });
      },
      stop: (listener) => listener.close(),
    },
    {
      name: 'mtlsListener',
      needs: ['config', 'telemetry', 'stores', 'ledger', 'events', 'failures', 'identity', 'preferences', 'oauth', 'privacy', 'pki', 'signals', 'erasure', 'ca', 'listener'],
      stopTimeoutMs: settings.config.http.shutdownTimeoutMs,
      start: async (services) => {
        const config = services.get('config');
        if (config.tls.mtlsPort === undefined) return undefined;
        return MtlsListener.open({
          host: config.host,
          port: config.tls.mtlsPort,
          files: mtlsFilesOf(config),
          authority: services.get('ca'),
          names: serverNames(config),
          debounceMs: config.tls.watchDebounceMs,
          clock,
          logger: services.get('telemetry').logger,
          build: (https) => applications(settings).main(applicationServices(services, clock), https, { mtls: true }),
        });
      },
      stop: (listener) => listener?.close(),
    },
    {
      name: 'metricsListener',
      needs: ['config', 'telemetry', 'stores', 'ledger', 'events', 'failures', 'identity', 'preferences', 'oauth', 'privacy', 'pki', 'signals', 'erasure', 'listener'],
      stopTimeoutMs: settings.config.http.shutdownTimeoutMs,
      start: async (services) => {
        const config = services.get('config');
        if (!config.metrics.enabled || config.metrics.port === undefined) return undefined;
        const app = await applications(settings).metrics(applicationServices(services, clock));
        const listener = await Listener.open(app, { host: config.metrics.host, port: config.metrics.port });
        services.get('telemetry').logger.info({ url: listener.url }, 'metrics listening');
        return listener;
      },
      stop: (listener) => listener?.close(),
    },
  ];
}

function applications(settings: ServiceSettings): HttpApplications {
  if (settings.applications === undefined) throw new TypeError('a listener needs the HTTP applications (ServiceSettings.applications)');
  return settings.applications;
}

function applicationServices(services: ServiceContext<PortcullisServices>, clock: Clock): ApplicationServices {
  const { logger, metrics, tracing } = services.get('telemetry');
  return {
    config: services.get('config'),
    clock,
    logger,
    metrics,
    ...(tracing !== undefined && { tracer: tracing.tracer }),
    stores: services.get('stores'),
    ledger: services.get('ledger'),
    events: services.get('events'),
    failures: services.get('failures'),
    identity: services.get('identity'),
    preferences: services.get('preferences'),
    authorizationServer: services.get('oauth'),
    privacy: services.get('privacy'),
    pki: services.get('pki'),
    signals: services.get('signals'),
    erasure: services.get('erasure'),
  };
}

/** The resource receivers' access tokens name (RFC 8707): its one scope lets a client manage its streams. */
export async function ensureSignalsResource(resources: Pick<ResourceRegistry, 'get' | 'create' | 'ownerOf' | 'delete' | 'forget'>, issuer: string): Promise<void> {
  const uri = signalsAudience(issuer);
  if ((await resources.get(uri)) !== null) return;
  // The issuer changed: the old URI's tokens are void anyway, and the scope moves to the new one.
  const previous = await resources.ownerOf(SSF_STREAM_SCOPE);
  if (previous !== null && previous !== uri) await resources.delete(previous, { actor: 'system' });
  try {
    await resources.create({ uri, scopes: [SSF_STREAM_SCOPE] }, { actor: 'system' });
  } catch (error) {
    // Another instance is making it at the same moment (two servers starting on one fresh
    // database): it claimed the scope for this URI first and writes the resource right after.
    // Read again past the cache until it is there.
    const deadline = performance.now() + SIGNALS_RESOURCE_WAIT_MS;
    const madeElsewhere = error instanceof ResourceRegistryError && (error.code === 'exists' || error.claimedBy === uri);
    for (;;) {
      resources.forget(uri, [SSF_STREAM_SCOPE]);
      if ((await resources.get(uri)) !== null) return;
      if (!madeElsewhere || performance.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/** How long a starting instance waits for another one's creation of the signals resource. */
const SIGNALS_RESOURCE_WAIT_MS = 5000;
