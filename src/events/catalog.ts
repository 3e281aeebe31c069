/**
 * The domain events: one closed list of what happened, each with its
 * payload type. Features emit them (src/events/hub.ts); subscribers react:
 * the audit projection (src/audit/projection.ts) turns each into its ledger
 * entry, and caches of other instances drop what an event made stale.
 *
 * Most events carry what their audit entry says (who, from where, the
 * outcome, a small flat detail): the entry is the record of the event, and
 * its bytes must not change when the event is emitted instead of written.
 * Some carry more, for the subscribers that react (the URI of a resource,
 * the user an event is about); the projection leaves that out of the entry.
 */

export type EventOutcome = 'success' | 'failure' | 'denied';

/** A small, flat detail object: no nesting, bounded sizes, no secret-named keys (the audit ledger checks it). */
export type EventDetail = Readonly<Record<string, string | number | boolean | null>>;

/** Who acted, on what, from where: the envelope of an event. */
export interface EventContext {
  /** The user who acted, by internal id (the ledger stores only a keyed pseudonym of it). */
  readonly actorUserId?: string;
  /** A non-personal actor: a client id, `admin`, `system`. */
  readonly actorService?: string;
  /** The OAuth client the event concerns. */
  readonly clientId?: string;
  readonly requestId?: string;
  readonly traceId?: string;
  /** The client's IP address (the ledger truncates, hashes or omits it). */
  readonly ip?: string;
  /** When it happened (ms since the epoch); default: when recorded. */
  readonly time?: number;
}

/** What an event the ledger records carries besides its context. */
interface Recorded {
  readonly outcome: EventOutcome;
  readonly detail?: EventDetail;
}

/** A resource server, as the subscribers of its events need it. */
export interface ResourceRef {
  readonly uri: string;
  readonly scopes: readonly string[];
}

/**
 * Every event type and its payload. Names are dotted from the area to the
 * outcome-neutral action; the recorded ones keep the names of their audit
 * entries (which are public and must not change).
 */
export interface DomainEventPayloads {
  // sign-in and sessions (identity)
  'auth.login.succeeded': Recorded & { readonly actorUserId: string };
  'auth.login.failed': Recorded;
  'auth.logout': Recorded & { readonly actorUserId: string };
  /** A session ended by the user, the session limit, an administrator or retention (privacy.retention.sessionDays). */
  'session.revoked': Recorded & { readonly actorUserId: string };
  // accounts (identity)
  /** The detail (the new user's audit pseudonym) is the projection's: the user's id is here. */
  'user.created': { readonly outcome: 'success'; readonly userId: string };
  /** `previousEmail`: an email change's old address, for the security signal (never recorded, never sent to other instances). */
  'user.updated': Recorded & { readonly actorUserId: string; readonly previousEmail?: string };
  'user.disabled': Recorded & { readonly actorUserId: string };
  'user.deleted': Recorded & { readonly actorUserId: string };
  // unauthenticated failures, aggregated (audit/failure-aggregator.ts)
  'admin.auth.failed': Recorded;
  'metrics.auth.failed': Recorded;
  'client.auth.failed': Recorded;
  'registration.auth.failed': Recorded;
  /** A refused enrolment token or CA bearer at /ca/sign. */
  'ca.auth.failed': Recorded;
  /** A refused bearer or client certificate at the signal stream API or its WebSocket. */
  'signals.auth.failed': Recorded;
  // tokens (oauth)
  'token.issued': Recorded;
  'token.refreshed': Recorded;
  'token.reuse_detected': Recorded;
  'token.revoked': Recorded;
  /**
   * Access tokens revoked before their expiry: one by its `jti`, or every
   * token of an ended session by its `sid`. Not recorded (the action that
   * revoked them is); other instances drop their cached "not revoked".
   */
  'tokens.revoked': { readonly jti: string } | { readonly sid: string };
  // signing keys (tokens)
  'key.created': Recorded;
  'key.revoked': Recorded;
  // consent (oauth)
  'consent.granted': Recorded & { readonly actorUserId: string; readonly clientId: string };
  'consent.revoked': Recorded & { readonly actorUserId: string; readonly clientId: string };
  // clients and resources (oauth)
  'client.registered': Recorded & { readonly clientId: string };
  'client.updated': Recorded & { readonly clientId: string };
  'client.deleted': Recorded & { readonly clientId: string };
  'resource.created': Recorded & { readonly resource: ResourceRef };
  'resource.deleted': Recorded & { readonly resource: ResourceRef };
  /** A hook handler failed or overran its deadline (src/hooks); the chain failed closed or skipped it. */
  'hook.fault': Recorded;
  // the built-in CA (pki)
  /** `ca init`: a root and an intermediate were made. */
  'ca.created': Recorded;
  /** `ca rotate`: a new intermediate signs from now on; the old one stays in the bundles until what it signed expires. */
  'ca.rotated': Recorded;
  /** `ca token`: a one-time enrolment token was made (its id and names, never the token). */
  'ca.enrolment.created': Recorded;
  'certificate.issued': Recorded;
  'certificate.renewed': Recorded;
  /** Other instances re-sign nothing, they re-read the CRL and hand it to their mTLS listener. */
  'certificate.revoked': Recorded & { readonly serial: string };
  // security signals (signals)
  /**
   * Security events were appended to the signal log up to `seq`: every
   * instance's push, poll and WebSocket deliveries look again. Not recorded
   * (the events' causes are).
   */
  'signals.appended': { readonly seq: number };
  // the plugin host (plugins)
  /** `plugin install`: a signed package was checked and pinned by its digest (name, version, digest, key id). */
  'plugin.installed': Recorded;
  'plugin.enabled': Recorded;
  'plugin.disabled': Recorded;
  'plugin.removed': Recorded;
  /** A plugin called a host method (users.read, audit.record, http.fetch): every call, allowed or refused. */
  'plugin.call': Recorded;
  /** A plugin's hook call failed (crash, deadline, breaker open, a bad answer, claims outside its namespace); detail says whether it was skipped or denied. */
  'plugin.failed': Recorded;
  /** A plugin broke the protocol: an undeclared host call, a forged or duplicate id, an oversized message. Counts toward quarantine. */
  'plugin.violation': Recorded;
  /** A plugin process exited unexpectedly, or was killed after repeated missed deadlines; it is started again after a backoff. */
  'plugin.crashed': Recorded;
  /** Too many crashes or violations in the window: the plugin is disabled until an operator enables it again. */
  'plugin.quarantined': Recorded;
  /** What a plugin recorded itself through the audit.record host call. */
  'plugin.recorded': Recorded;
  // privacy workflows (privacy)
  /** A copy of a person's data was made (GDPR Art. 15/20): by the person (actorUserId) or an administrator (actorService). */
  'privacy.export': Recorded;
  /** An erasure was asked for and waits for its grace period (privacy.erasureGraceDays). */
  'privacy.erasure.requested': Recorded & { readonly actorUserId: string };
  'privacy.erasure.cancelled': Recorded & { readonly actorUserId: string };
  /** A person's data was erased (GDPR Art. 17). Names nobody: the detail has the request's id and the count of recipients to tell. */
  'privacy.erasure': Recorded;
  /** A recipient (clientId) was told of an erasure (GDPR Art. 19). */
  'privacy.recipient.notified': Recorded & { readonly clientId: string };
  /** A recipient was not told within privacy.recipientDeadlineHours; delivery goes on. */
  'privacy.recipient.overdue': Recorded & { readonly clientId: string };
  /** A consumer request (access, deletion, correction, opt-out) passed a legal deadline unanswered (CCPA regulations section 7021). */
  'privacy.request.overdue': Recorded;
  /** The person's "do not sell or share" choice changed (CCPA 1798.120; Global Privacy Control). */
  'privacy.opt_out.changed': Recorded & { readonly actorUserId: string };
  /** The person granted or withdrew consent to a purpose (GDPR Art. 7). */
  'privacy.consent.changed': Recorded & { readonly actorUserId: string };
  /** The retention job ran: what each rule did (counts only). */
  'privacy.retention.ran': Recorded;
  /** A legal hold stops erasure and retention for the person until released. */
  'privacy.hold.set': Recorded & { readonly actorUserId: string };
  'privacy.hold.released': Recorded & { readonly actorUserId: string };
  /** `privacy reapply` erased again people a restored backup brought back (counts only). */
  'privacy.reapplied': Recorded;
  // the audit ledger's own API (server)
  'audit.entries.read': Recorded;
  'audit.cosignature.added': Recorded;
}

export type DomainEventType = keyof DomainEventPayloads;

/** One event: its type, its context and its payload. */
export type DomainEvent<T extends DomainEventType = DomainEventType> = { [K in T]: { readonly type: K } & EventContext & DomainEventPayloads[K] }[T];

/** The closed list, in the order above (a test checks it names every type once). */
export const DOMAIN_EVENT_TYPES = [
  'auth.login.succeeded',
  'auth.login.failed',
  'auth.logout',
  'session.revoked',
  'user.created',
  'user.updated',
  'user.disabled',
  'user.deleted',
  'admin.auth.failed',
  'metrics.auth.failed',
  'client.auth.failed',
  'registration.auth.failed',
  'ca.auth.failed',
  'signals.auth.failed',
  'token.issued',
  'token.refreshed',
  'token.reuse_detected',
  'token.revoked',
  'tokens.revoked',
  'key.created',
  'key.revoked',
  'consent.granted',
  'consent.revoked',
  'client.registered',
  'client.updated',
  'client.deleted',
  'resource.created',
  'resource.deleted',
  'hook.fault',
  'ca.created',
  'ca.rotated',
  'ca.enrolment.created',
  'certificate.issued',
  'certificate.renewed',
  'certificate.revoked',
  'signals.appended',
  'plugin.installed',
  'plugin.enabled',
  'plugin.disabled',
  'plugin.removed',
  'plugin.call',
  'plugin.failed',
  'plugin.violation',
  'plugin.crashed',
  'plugin.quarantined',
  'plugin.recorded',
  'privacy.export',
  'privacy.erasure.requested',
  'privacy.erasure.cancelled',
  'privacy.erasure',
  'privacy.recipient.notified',
  'privacy.recipient.overdue',
  'privacy.request.overdue',
  'privacy.opt_out.changed',
  'privacy.consent.changed',
  'privacy.retention.ran',
  'privacy.hold.set',
  'privacy.hold.released',
  'privacy.reapplied',
  'audit.entries.read',
  'audit.cosignature.added',
] as const satisfies readonly DomainEventType[];

// Fails to compile when a payload type is missing from the list.
type Missing = Exclude<DomainEventType, (typeof DOMAIN_EVENT_TYPES)[number]>;
const listIsComplete: [Missing] extends [never] ? true : Missing = true;
void listIsComplete;

/**
 * The events another instance must react to: a revocation, a changed or
 * deleted client, resource, signing key or user. Only these cross instances
 * (src/events/hub.ts), and only when they succeeded; the rest stay in the
 * process that emitted them.
 */
export const CROSS_INSTANCE_EVENT_TYPES: ReadonlySet<DomainEventType> = new Set<DomainEventType>([
  'tokens.revoked',
  'key.created',
  'key.revoked',
  'client.updated',
  'client.deleted',
  'resource.created',
  'resource.deleted',
  'user.updated',
  'user.disabled',
  'user.deleted',
  'ca.rotated',
  'certificate.revoked',
  'signals.appended',
  // Every instance runs the enabled plugins: each reconciles at once (and polls, where no bus carries events).
  'plugin.installed',
  'plugin.enabled',
  'plugin.disabled',
  'plugin.removed',
  'plugin.quarantined',
]);

const TYPES: ReadonlySet<string> = new Set(DOMAIN_EVENT_TYPES);

export function isDomainEventType(value: unknown): value is DomainEventType {
  return typeof value === 'string' && TYPES.has(value);
}

/** Whether another instance must hear of it. */
export function crossesInstances(event: DomainEvent): boolean {
  return CROSS_INSTANCE_EVENT_TYPES.has(event.type) && (!('outcome' in event) || event.outcome === 'success');
}
