/**
 * What the runtime's table is made of: each service's value by name, what a
 * kind of start (serve, init, migrate, an admin command) may do, and what
 * the caller supplies (the HTTP applications, extra hook handlers).
 */
import type { DestinationStream } from 'pino';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/index.ts';
import type { Logger, Metrics, SpanExporter, Tracer, Tracing } from '../observability/index.ts';
import type { Clock, OutboxWorker, Stores } from '../store/index.ts';
import type { FailureAggregator, Ledger } from '../audit/index.ts';
import type { EventHub } from '../events/index.ts';
import type { AnyHookHandler, HookChains } from '../hooks/index.ts';
import type { PluginHost } from '../plugins/index.ts';
import type { Identity } from '../identity/index.ts';
import type { PrivacyPreferences } from '../privacy/index.ts';
import type { AuthorizationServer, ClientRegistry, ResourceRegistry } from '../oauth/index.ts';
import type { Keyring } from '../tokens/index.ts';
import type { CertificateAuthority, EnrolmentTokens } from '../pki/index.ts';
import type { Listener } from './listener.ts';
import type { ListenerAuthority } from './listener-authority.ts';
import type { MtlsListener } from './mtls.ts';
import type { OutboxDeliverers } from './outbox.ts';
import type { Signals } from '../signals/index.ts';
import type { ErasureService, Privacy } from '../privacy/index.ts';
import type { TlsServerOptions } from './tls.ts';
import type { Vault } from './vault.ts';

/** What the instance logs with and counts in. */
export interface Telemetry {
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** OpenTelemetry traces, when the standard OTEL_* variables (or a test's exporter) ask for them. */
  readonly tracing: Tracing | undefined;
}

/** Client and resource registries without caches: what an admin command reads is what is stored now. */
export interface Registries {
  readonly clients: ClientRegistry;
  readonly resources: ResourceRegistry;
}

/** The built-in CA and its one-time enrolment tokens. */
export interface Pki {
  readonly authority: CertificateAuthority;
  readonly enrolment: EnrolmentTokens;
}

/** Every service's value, by name. */
export interface PortcullisServices {
  readonly config: Readonly<Config>;
  readonly vault: Vault;
  readonly telemetry: Telemetry;
  /** Every hook chain, loaded and checked against its handlers before anything is opened. */
  readonly hooks: HookChains;
  readonly stores: Stores;
  readonly ledger: Ledger;
  /** Where features emit domain events: the ledger records them before the action answers; the bus carries them to other instances. */
  readonly events: EventHub;
  /** Unauthenticated failures, aggregated for the ledger (security review 11): one per instance. */
  readonly failures: FailureAggregator;
  readonly keyring: Keyring;
  readonly identity: Identity;
  /** The person's privacy choices: "do not sell or share" (GPC) and consent per purpose (issue 15). */
  readonly preferences: PrivacyPreferences;
  readonly registries: Registries;
  readonly oauth: AuthorizationServer;
  /** Privacy workflows (issue 15): consumer requests, access and portability exports. */
  readonly privacy: Privacy;
  readonly pki: Pki;
  /** The security-signal transmitter (SSF 1.0) and its push worker (started only where background work runs). */
  readonly signals: Signals;
  /** Erasure (issue 15): erasures and their notices, legal holds, the privacy job (scheduled only where background work runs). */
  readonly erasure: ErasureService;
  /** The plugin host (issue 14): the enabled plugins, supervised, behind the chains' plugins.host slot; only where background work runs. */
  readonly plugins: PluginHost | undefined;
  /** What the mTLS listener trusts and takes its certificate from: the built-in CA (ca-authority.ts), or what ServiceSettings.listenerAuthority supplies. */
  readonly ca: ListenerAuthority | undefined;
  readonly listener: Listener;
  /** The mTLS listener, when `tls.mtlsPort` is set. */
  readonly mtlsListener: MtlsListener | undefined;
  /** The metrics listener, when `metrics.port` is set. */
  readonly metricsListener: Listener | undefined;
  /** The outbox delivery worker; only where background maintenance runs (serve). */
  readonly outbox: OutboxWorker | undefined;
}

export type ServiceName = keyof PortcullisServices;

/** What the HTTP applications are built from. */
export interface ApplicationServices {
  readonly config: Readonly<Config>;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Set when traces are on: the server makes a span per request. */
  readonly tracer?: Tracer;
  readonly stores: Stores;
  readonly ledger: Ledger;
  readonly events: EventHub;
  readonly failures: FailureAggregator;
  readonly identity: Identity;
  readonly preferences: PrivacyPreferences;
  readonly authorizationServer: AuthorizationServer;
  readonly privacy: Privacy;
  readonly pki: Pki;
  readonly signals: Signals;
  readonly erasure: ErasureService;
}

/** Which listener an application instance serves. */
export interface ApplicationRole {
  /** The mTLS listener's instance: the same routes; every connection carries a verified client certificate. */
  readonly mtls: boolean;
}

/**
 * Builds the listeners' applications (src/server does: the runtime knows
 * services and sockets, not routes). `https` is given when TLS is
 * configured: the server options as they are, the runtime's to decide.
 */
export interface HttpApplications {
  main(services: ApplicationServices, https: TlsServerOptions | undefined, role?: ApplicationRole): Promise<FastifyInstance>;
  metrics(services: ApplicationServices): Promise<FastifyInstance>;
}

/**
 * What a deployment may do:
 * - `create`: make a missing master key and database (`init`, `serve`);
 *   otherwise the deployment must exist (admin commands, first-hour D7);
 * - `schema`: `migrate` applies pending migrations, `current` refuses a
 *   schema this build does not match, `as-is` leaves it (the `migrate` and
 *   `init` commands migrate themselves, and say so);
 * - `maintenance`: background timers (checkpoints, key rotation,
 *   housekeeping) and the first checkpoint: a server, not a command;
 * - `telemetry`: a logger and metrics, which the stores report to;
 * - `hooks`: identity and OAuth run the loaded chains (src/hooks), whose
 *   faults are logged and audited; without, their built-in behaviour alone.
 */
export interface Profile {
  readonly create: boolean;
  readonly schema: 'migrate' | 'current' | 'as-is';
  readonly maintenance: boolean;
  readonly telemetry: boolean;
  readonly hooks: boolean;
}

export const PROFILES = {
  serve: (config: Readonly<Config>): Profile => ({ create: true, schema: config.migrateOnStart ? 'migrate' : 'current', maintenance: true, telemetry: true, hooks: true }),
  init: (): Profile => ({ create: true, schema: 'as-is', maintenance: false, telemetry: false, hooks: false }),
  migrate: (): Profile => ({ create: false, schema: 'as-is', maintenance: false, telemetry: false, hooks: false }),
  admin: (): Profile => ({ create: false, schema: 'current', maintenance: false, telemetry: false, hooks: false }),
} as const;

/**
 * More hook handlers (tests; later the plugin host), and the chain file that
 * places them (src/hooks/chains.cfg unless given): configuration has no say in the order.
 */
export interface HookSettings {
  readonly handlers?: readonly AnyHookHandler[];
  readonly chains?: string;
}

export interface ServiceSettings {
  readonly config: Readonly<Config>;
  readonly profile: Profile;
  readonly clock: Clock;
  /** Where log lines go (default stdout). */
  readonly logDestination?: DestinationStream;
  /** Where spans go instead of OTLP (tests: an in-memory exporter); traces are on when it is given. */
  readonly traceExporter?: SpanExporter;
  /** Needed only when a listener is started. */
  readonly applications?: HttpApplications;
  readonly hooks?: HookSettings;
  /** Deliverers of outbox messages by topic (later features; tests). */
  readonly outbox?: OutboxDeliverers;
  /** What the `ca` service answers until the built-in CA replaces its start (tests, an embedding program). */
  readonly listenerAuthority?: ListenerAuthority;
}
