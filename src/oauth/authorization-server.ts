/**
 * The authorization server assembled from its parts. HTTP lives in
 * src/server/oauth-routes.ts and src/server/authorize-routes.ts; this module
 * decides.
 */
import { FailureAggregator } from '../audit/index.ts';
import type { Config } from '../config/index.ts';
import { freshFor, type DomainEvents, type EventSubscriptions } from '../events/index.ts';
import type { HookChains } from '../hooks/index.ts';
import type { Identity, UserDirectory } from '../identity/index.ts';
import type { Clock, OutboxDelivery, Stores } from '../store/index.ts';
import type { KeyVault } from '../crypto/index.ts';
import type { Keyring } from '../tokens/index.ts';
import { AccessTokens, MAX_INSTANCE_SKEW_SECONDS, REVOCATION_RECHECK_MS } from './access-tokens.ts';
import { Authorizer } from './authorization/authorizer.ts';
import { AuthorizationCodes } from './authorization/codes.ts';
import { Consents } from './authorization/consents.ts';
import { DataRecipients } from './recipients.ts';
import { accountWrite } from './account-writes.ts';
import { PushedRequests } from './authorization/pushed-requests.ts';
import { ClientAuthenticator } from './client-auth.ts';
import { ClientRegistry } from './clients.ts';
import { DpopVerifier } from './dpop.ts';
import { authorizationServerMetadata, ENDPOINT_PATHS, endpointUrl, openIdProviderMetadata } from './discovery.ts';
import { IdTokens } from './id-tokens.ts';
import { IntrospectionEndpoint } from './introspection.ts';
import { LogoutService } from './logout.ts';
import { BACKCHANNEL_LOGOUT_TOPIC, backchannelLogoutDeliverer } from './backchannel-logout.ts';
import { ParEndpoint } from './par.ts';
import { RefreshTokens } from './refresh-tokens.ts';
import { RevocationRecords } from './revocation-records.ts';
import { RegistrationEndpoint } from './registration.ts';
import { USER_SCOPES } from './scopes.ts';
import { privacyClaimValues } from './privacy-claims.ts';
import { ResourceRegistry } from './resources.ts';
import { TokenTargets } from './targets.ts';
import { RevocationEndpoint } from './revocation.ts';
import type { GrantServices } from './grants/grant.ts';
import { TokenEndpoint } from './token-endpoint.ts';
import { UserInfoEndpoint } from './userinfo.ts';
import { defaultOAuthHooks } from './hooks.ts';

/**
 * Whether a user is active, read from the store at most once a second per
 * user (a busy resource server introspects that user's tokens far more
 * often): a disabled or deleted user's access tokens stop working within
 * the second, or at once where the change arrives as an event (`forget`;
 * the read is then only a fallback, `cacheMs`). Bounded; the oldest entry
 * goes first.
 */
function userStatusCache(clock: Clock, cacheMs: () => number, read: (userId: string) => Promise<UserStatus>) {
  const cache = new Map<string, { status: UserStatus; readAt: number }>();
  // Grows with every forget: a read that started before one is not cached.
  let generation = 0;
  return {
    isActive: async (userId: string, issuedAt?: number): Promise<boolean> => {
      const now = clock();
      let status = cache.get(userId)?.status;
      if (status === undefined || now - cache.get(userId)!.readAt >= cacheMs()) {
        const started = generation;
        status = await read(userId);
        cache.delete(userId);
        if (started === generation) {
          if (cache.size >= 5000) cache.delete(cache.keys().next().value!);
          cache.set(userId, { status, readAt: now });
        }
      }
      return acceptsTokenOf(status, issuedAt);
    },
    forget(userId?: string): void {
      generation += 1;
      if (userId === undefined) cache.clear();
      else cache.delete(userId);
    },
  };
}

/** A user's standing for their tokens: active, and which tokens an administrator's reset ended. */
interface UserStatus {
  readonly active: boolean;
  readonly tokensNotBefore?: number;
}

async function userStatus(users: UserDirectory, userId: string): Promise<UserStatus> {
  const user = await users.byId(userId);
  return user === null ? { active: false } : { active: !user.disabled, ...(user.tokensNotBefore !== undefined && { tokensNotBefore: user.tokensNotBefore }) };
}

/**
 * Whether a token issued (or a grant signed in) at `issuedAt` still stands.
 * Access tokens carry `iat` in whole seconds, so one issued in the second of
 * the reset counts as before it (refused rather than kept).
 */
function acceptsTokenOf(status: UserStatus, issuedAt: number | undefined): boolean {
  if (!status.active) return false;
  if (status.tokensNotBefore === undefined || issuedAt === undefined) return true;
  return Math.floor(issuedAt / 1000) > Math.floor(status.tokensNotBefore / 1000);
}

/** RFC 9126 section 2.2: "a short lifetime", typically 5 to 600 seconds. */
const PAR_TTL_SECONDS = 60;

export interface AuthorizationServer {
  readonly issuer: string;
  readonly keyring: Keyring;
  readonly clients: ClientRegistry;
  /** Registered resource servers (RFC 8707 audiences, API scopes). */
  readonly resources: ResourceRegistry;
  readonly accessTokens: AccessTokens;
  readonly refreshTokens: RefreshTokens;
  readonly consents: Consents;
  /** The clients that received data about each person (GDPR Art. 19). */
  readonly recipients: DataRecipients;
  readonly authorizer: Authorizer;
  readonly token: TokenEndpoint;
  readonly par: ParEndpoint;
  readonly introspection: IntrospectionEndpoint;
  readonly revocation: RevocationEndpoint;
  readonly userinfo: UserInfoEndpoint;
  readonly dpop: DpopVerifier;
  readonly registration: RegistrationEndpoint;
  readonly logout: LogoutService;
  /** Outbox deliverers by topic: back-channel logout tokens (the outbox worker runs them). */
  readonly deliverers: Readonly<Record<string, (message: OutboxDelivery, signal: AbortSignal) => Promise<void>>>;
  /** RFC 8414 metadata as JSON text (built once). */
  readonly metadata: string;
  /** OpenID Connect Discovery metadata as JSON text. */
  readonly openIdMetadata: string;
  readonly jwksMaxAgeSeconds: number;
  /**
   * Starts housekeeping: the hot store is given back any revocation marks it
   * lacks (its sentinel, access-tokens.ts); every hour, expired refresh
   * families and lapsed revocation records are deleted. Timers do not hold
   * the process.
   */
  startMaintenance(onError: (error: unknown) => void): void;
  close(): void;
}

/** How often expired refresh token families and lapsed revocation records are swept away. */
const SWEEP_INTERVAL_MS = 3_600_000;

export function createAuthorizationServer(options: {
  config: Readonly<Config>;
  stores: Stores;
  /** Where features emit, and where the caches below learn of other instances' changes. */
  events: DomainEvents & EventSubscriptions;
  keyring: Keyring;
  identity: Identity;
  vault: KeyVault;
  clock: Clock;
  /** The instance's aggregator of unauthenticated failures (client and registration credentials; security review 11); one is made when not given. */
  failures?: FailureAggregator;
  /** Reports what the person never sees: a back-channel logout that could not be delivered. */
  warn?: (message: string, detail: Record<string, unknown>) => void;
  /** Wakes the outbox worker after a sign-out queued back-channel logouts. */
  kickOutbox?: () => void;
  /** The server's chains (registration.before, consent.before, token.claims, userinfo.claims); the built-ins alone when absent. */
  hooks?: HookChains;
}): AuthorizationServer {
  const { config, stores, events, keyring, clock, identity } = options;
  const hooks = options.hooks ?? defaultOAuthHooks();
  const issuer = config.issuer;
  const tokens = config.tokens;
  const failures = options.failures ?? new FailureAggregator({ events, hot: stores.hot, clock });
  // Caches keep what they read until an event says it changed, polling as
  // before only where events from every instance cannot arrive (freshFor).
  const clients = new ClientRegistry({ records: stores.durable.records, secretKey: options.vault.derive('client-secrets'), events, clock, cacheMs: freshFor(events, 1000) });
  const resources = new ResourceRegistry({ records: stores.durable.records, events, clock, cacheMs: freshFor(events, 1000) });
  const targets = new TokenTargets({ resources, defaultAlgorithm: tokens.signingAlgorithm });
  const users = identity.accounts.users;
  const userStatuses = userStatusCache(clock, freshFor(events, 1000), (userId) => userStatus(users, userId));
  // Addresses are not verified by Portcullis (yet): say so (OIDC Core section 5.1).
  const claimValues = async (userId: string) => {
    const user = await users.byId(userId);
    return user === null || user.disabled ? null : { ...user.profile, email: user.email, email_verified: false, ...privacyClaimValues(user.privacy) };
  };
  const revocations = new RevocationRecords({ records: stores.durable.records, clock });
  const accessTokens = new AccessTokens({
    keyring,
    hot: stores.hot,
    clock,
    issuer,
    ttlSeconds: tokens.accessTokenTtlSeconds,
    defaultAlgorithm: tokens.signingAlgorithm,
    // A cached read (clients.ts): cheap on every introspection and userinfo call.
    clientExists: async (clientId) => (await clients.get(clientId)) !== null,
    userIsActive: userStatuses.isActive,
    events,
    revocationRecheckMs: freshFor(events, REVOCATION_RECHECK_MS),
    hooks,
    revocations,
  });
  const subscriptions = [
    events.on('tokens.revoked', (event) => ('jti' in event ? accessTokens.forgetJti(event.jti) : accessTokens.forgetSession(event.sid))),
    events.on(['client.updated', 'client.deleted'], (event) => clients.forget(event.clientId)),
    events.on(['resource.created', 'resource.deleted'], (event) => resources.forget(event.resource.uri, event.resource.scopes)),
    events.on(['user.updated', 'user.disabled', 'user.deleted'], (event) => userStatuses.forget(event.actorUserId)),
    // Another instance rotated or revoked a key: take it up now, not at the next refresh.
    events.on(['key.created', 'key.revoked'], () => keyring.refresh()),
    events.onInterrupted(() => {
      accessTokens.forgetAll();
      clients.forgetAll();
      resources.forgetAll();
      userStatuses.forget();
    }),
  ];
  const refreshTokens = new RefreshTokens({
    records: stores.durable.records,
    clock,
    policy: { idleTtlSeconds: tokens.refreshTokenIdleTtlSeconds, absoluteTtlSeconds: tokens.refreshTokenAbsoluteTtlSeconds, graceSeconds: tokens.refreshGraceSeconds },
    vault: options.vault,
  });
  const codes = new AuthorizationCodes({ hot: stores.hot, ttlSeconds: tokens.authorizationCodeTtlSeconds });
  const guarded = accountWrite(stores.durable, users);
  const consents = new Consents({ records: stores.durable.records, clock, events, accountWrite: guarded });
  const recipients = new DataRecipients({ records: stores.durable.records, clock, accountWrite: guarded });
  const pushed = new PushedRequests({ hot: stores.hot, ttlSeconds: PAR_TTL_SECONDS });
  const clientAuthenticator = new ClientAuthenticator({
    clients,
    hot: stores.hot,
    clock,
    // draft-ietf-oauth-rfc7523bis section 5: the issuer identifier; the token
    // endpoint URL only as a transition. No other endpoint (audience injection).
    assertionAudiences: [issuer, endpointUrl(issuer, ENDPOINT_PATHS.token)],
    failures,
  });
  const services: GrantServices = {
    accessTokens,
    idTokens: new IdTokens({ keyring, clock, issuer, ttlSeconds: tokens.idTokenTtlSeconds, hooks, claimValues }),
    refreshTokens,
    codes,
    events,
    defaultAudience: issuer,
    targets,
    liveness: {
      sessionIsLive: (handle) => identity.accounts.sessions.isLive(handle),
      userIsActive: async (userId, grantedAt) => acceptsTokenOf(await userStatus(users, userId), grantedAt),
      usedBy: async (userId) => {
        await users.recordSignIn(userId, clock());
      },
    },
  };
  const logout = new LogoutService({
    clients,
    keyring,
    accessTokens,
    refreshTokens,
    hot: stores.hot,
    durable: stores.durable,
    ...(options.kickOutbox !== undefined && { kickOutbox: options.kickOutbox }),
    events,
    clock,
    issuer,
    sessionLifetimeMs: config.identity.sessionAbsoluteTimeoutMs,
  });
  const deliverers = {
    [BACKCHANNEL_LOGOUT_TOPIC]: backchannelLogoutDeliverer({
      clients,
      keyring,
      issuer,
      clock,
      allowPrivateNetworks: config.oauth.backchannelLogoutPrivateNetworks,
      giveUpAfterMs: config.identity.sessionAbsoluteTimeoutMs,
      onDeliveryFailure: (clientId, reason) => options.warn?.('back-channel logout not delivered', { clientId, reason }),
    }),
  };
  const registrationEnabled = config.oauth.registration !== 'off';
  // API scopes are not advertised (RFC 8414 section 2: servers MAY leave
  // scopes out): resources come and go at run time, the metadata is fixed.
  const metadataOptions = { issuer, scopes: [], registration: registrationEnabled, mtlsPort: config.tls.mtlsPort };
  let sweeper: NodeJS.Timeout | undefined;
  return {
    issuer,
    keyring,
    clients,
    accessTokens,
    refreshTokens,
    consents,
    recipients,
    resources,
    authorizer: new Authorizer({ clients, codes, consents, recipients, pushed, hot: stores.hot, clock, issuer, sessions: logout, targets, keyring, hooks }),
    logout,
    deliverers,
    token: new TokenEndpoint({ clientAuthenticator, services }),
    par: new ParEndpoint({ clientAuthenticator, pushed, targets }),
    introspection: new IntrospectionEndpoint({ clientAuthenticator, accessTokens, refreshTokens, targets, claimValues }),
    revocation: new RevocationEndpoint({ clientAuthenticator, accessTokens, refreshTokens, events }),
    userinfo: new UserInfoEndpoint({
      accessTokens,
      audiences: [issuer, endpointUrl(issuer, ENDPOINT_PATHS.userinfo)],
      users: { claims: claimValues },
      hooks,
    }),
    // Issue 16: a client with the right time is not refused by an instance whose clock is off by up to the deployment's skew.
    dpop: new DpopVerifier({ hot: stores.hot, clock, nonceKey: options.vault.derive('dpop-nonces'), requireNonce: config.oauth.dpopRequireNonce, clockSkewSeconds: MAX_INSTANCE_SKEW_SECONDS }),
    registration: new RegistrationEndpoint({
      clients,
      policy: config.oauth.registration,
      initialAccessToken: config.oauth.initialAccessToken,
      registrationScopes: config.oauth.registrationScopes,
      initialAccessTokenScopes: config.oauth.initialAccessTokenScopes,
      scopeExists: async (scope) => USER_SCOPES.has(scope) || (await resources.ownerOf(scope)) !== null,
      endpoint: endpointUrl(issuer, ENDPOINT_PATHS.registration),
      failures,
      hooks,
    }),
    metadata: JSON.stringify(authorizationServerMetadata(metadataOptions)),
    openIdMetadata: JSON.stringify(openIdProviderMetadata(metadataOptions)),
    jwksMaxAgeSeconds: config.tokens.jwksMaxAgeSeconds,
    startMaintenance(onError) {
      if (sweeper !== undefined) return;
      // At start, rather than at the first check: a hot store that came back empty while no instance ran.
      void accessTokens.restoreRevocations().catch(onError);
      sweeper = setInterval(() => {
        void refreshTokens.sweep().catch(onError);
        void revocations.sweep().catch(onError);
      }, SWEEP_INTERVAL_MS);
      sweeper.unref();
    },
    close() {
      if (sweeper !== undefined) clearInterval(sweeper);
      sweeper = undefined;
      for (const unsubscribe of subscriptions) unsubscribe();
      keyring.close();
    },
  };
}
