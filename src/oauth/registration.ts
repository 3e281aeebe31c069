/**
 * Dynamic client registration (RFC 7591) and its management protocol
 * (RFC 7592). Who may register is `oauth.registration`: open, only with the
 * initial access token (section 3, "initial_access_token"), or off. Each
 * registered client gets a registration access token for reading, updating
 * and deleting its own registration; nothing else accepts that token.
 *
 * What a registered client may get is not its own choice (RFC 7591 section
 * 5, RFC 9700 section 2.3): an anonymous registration gets at most
 * `oauth.registrationScopes`, one made with the initial access token at most
 * `oauth.initialAccessTokenScopes` (API scopes there must belong to a
 * registered resource), and an RFC 7592 update never adds a scope the client
 * does not already hold beyond `oauth.registrationScopes`. A request for more
 * is refused (invalid_client_metadata, RFC 7591 section 3.2.2), not trimmed:
 * a trimmed registration succeeds and then fails at the token endpoint with
 * invalid_scope, far from the cause; a refusal names the scope at once.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { throttledFor, type FailureAggregator } from '../audit/index.ts';
import type { Decision, HookChains } from '../hooks/index.ts';
import { ClientMetadataError, pickClientMetadata, validateClientMetadata, type ClientMetadata } from './client-metadata.ts';
import { ClientRegistryError, type ClientRegistry, type OAuthClient } from './clients.ts';
import { OAuthError } from './errors.ts';
import type { RequestAudit } from './grants/grant.ts';
import { REGISTRATION_POLICY_HOOK } from './hooks.ts';

export type RegistrationPolicy = 'open' | 'token' | 'off';

export interface RegistrationOptions {
  readonly clients: ClientRegistry;
  readonly policy: RegistrationPolicy;
  readonly initialAccessToken: string | undefined;
  /** `oauth.registrationScopes`: the most an anonymous (open) registration gets. */
  readonly registrationScopes: readonly string[];
  /** `oauth.initialAccessTokenScopes`: the most a registration with the initial access token gets. */
  readonly initialAccessTokenScopes: readonly string[];
  /** Whether a scope exists: an OpenID scope or a scope of a registered resource. */
  readonly scopeExists: (scope: string) => Promise<boolean>;
  /** The registration endpoint's URL; a client's configuration URL is this plus its id. */
  readonly endpoint: string;
  /** Counts wrong initial and registration access tokens per network: the throttle reads it, the ledger gets them aggregated. */
  readonly failures: Pick<FailureAggregator, 'record' | 'count' | 'retryAfterMs'>;
  /** The chains with registration.before (oauth.registration-policy first). */
  readonly hooks: HookChains;
}

/** Who asked: the network the throttle counts, and the ids the ledger entries carry. */
export interface RegistrationRequestAudit extends RequestAudit {
  readonly requestId: string;
}

/** Wrong initial or registration access tokens one network may send per minute before the check is skipped (429). */
export const REGISTRATION_FAILURES_PER_MINUTE = 100;

export interface RegistrationAnswer {
  readonly status: 200 | 201 | 204;
  readonly body?: Record<string, unknown>;
}

const ACTOR = 'dynamic-registration';
/** RFC 7592 section 2.2: fields a client sends back that the server owns. */
const SERVER_FIELDS = ['client_id', 'client_secret', 'client_id_issued_at', 'client_secret_expires_at', 'registration_access_token', 'registration_client_uri'];

function bearer(authorization: string | undefined): string | undefined {
  const match = authorization === undefined ? null : /^Bearer ([\x21-\x7e]{1,512})$/i.exec(authorization);
  return match?.[1];
}

/** Compares digests, so neither the content nor the length of the secret leaks through timing. */
function constantTimeEquals(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

/** RFC 6750 section 3: a missing or wrong registration access token. */
function invalidToken(): OAuthError {
  return new OAuthError('invalid_token', 'The registration access token is missing, invalid, or not for this client.', { headers: { 'www-authenticate': 'Bearer error="invalid_token"' } });
}

export class RegistrationEndpoint {
  readonly #options: RegistrationOptions;

  constructor(options: RegistrationOptions) {
    this.#options = options;
  }

  get enabled(): boolean {
    return this.#options.policy !== 'off';
  }

  /** RFC 7591 section 3: register a client; 201 with its metadata and, once, its secret and registration access token. */
  async register(request: { body: unknown; authorization: string | undefined; audit: RegistrationRequestAudit }): Promise<RegistrationAnswer> {
    const initialAccessToken = await this.#admit(request.authorization, request.audit);
    const decision = await this.#options.hooks.decide('registration.before', {
      policy: this.#options.policy,
      initialAccessToken,
      metadata: request.body,
      ip: request.audit.ip ?? '',
      requestId: request.audit.requestId,
    });
    if (!decision.allowed) throw this.#refusal(decision);
    const withToken = initialAccessToken === 'valid';
    const policy = withToken ? this.#options.initialAccessTokenScopes : this.#options.registrationScopes;
    const metadata = this.#validate(request.body, await this.#existing(policy));
    const registered = await this.#options.clients.register(metadata, { actor: ACTOR, requestId: request.audit.requestId }, { withRegistrationToken: true });
    return {
      status: 201,
      body: {
        ...this.#describe(registered.client),
        ...(registered.clientSecret !== undefined && { client_secret: registered.clientSecret }),
        registration_access_token: registered.registrationAccessToken,
      },
    };
  }

  /** RFC 7592 section 2.1. */
  async read(clientId: string, request: { authorization: string | undefined; audit: RegistrationRequestAudit }): Promise<RegistrationAnswer> {
    const client = await this.#authorised(clientId, request);
    return { status: 200, body: this.#describe(client) };
  }

  /**
   * RFC 7592 section 2.2: the request carries the whole new metadata; the
   * client_id must be the client's own, and a client_secret, if sent, must
   * be its current one.
   */
  async update(clientId: string, request: { body: unknown; authorization: string | undefined; audit: RegistrationRequestAudit }): Promise<RegistrationAnswer> {
    const client = await this.#authorised(clientId, request);
    const body = request.body;
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new OAuthError('invalid_client_metadata', 'The body must be a JSON object of client metadata.');
    const fields = body as Record<string, unknown>;
    if (fields['client_id'] !== clientId) throw new OAuthError('invalid_request', 'client_id in the body must be this client\'s id.');
    const secret = fields['client_secret'];
    if (secret !== undefined && (typeof secret !== 'string' || !this.#options.clients.verifySecret(client, secret))) throw new OAuthError('invalid_request', 'client_secret does not match this client\'s secret.');
    // RFC 7592 section 2.2 lets the server refuse values: an update keeps or
    // drops scopes, and never gains one beyond what anyone may register.
    const allowed = [...new Set([...client.scope.split(' ').filter((scope) => scope !== ''), ...this.#options.registrationScopes])];
    const metadata = this.#validate(Object.fromEntries(Object.entries(fields).filter(([name]) => !SERVER_FIELDS.includes(name))), allowed);
    // The operator's cert_sans are not the client's to change (nor to see): they stay.
    const kept: ClientMetadata = client.cert_sans === undefined ? metadata : { ...metadata, cert_sans: client.cert_sans };
    let updated;
    try {
      updated = await this.#options.clients.update(clientId, kept, { actor: ACTOR, requestId: request.audit.requestId }, { expectedVersion: client.version });
    } catch (error) {
      // Another update won the compare-and-set: nothing of this one was written.
      if (error instanceof ClientRegistryError && error.code === 'conflict') throw new OAuthError('invalid_request', 'The registration changed meanwhile; read it again and retry.');
      throw error;
    }
    return { status: 200, body: { ...this.#describe(updated.client), ...(updated.clientSecret !== undefined && { client_secret: updated.clientSecret }) } };
  }

  /** RFC 7592 section 2.3: 204 once deleted. */
  async delete(clientId: string, request: { authorization: string | undefined; audit: RegistrationRequestAudit }): Promise<RegistrationAnswer> {
    await this.#authorised(clientId, request);
    await this.#options.clients.delete(clientId, { actor: ACTOR, requestId: request.audit.requestId });
    return { status: 204 };
  }

  /**
   * Checks the initial access token (section 3), throttled, in constant
   * time; whether its holder may register is the registration.before
   * chain's (oauth.registration-policy). With registration off nothing is
   * looked at; an anonymous registration on an open server checks nothing.
   */
  async #admit(authorization: string | undefined, audit: RegistrationRequestAudit): Promise<'valid' | 'wrong' | 'absent' | 'unchecked'> {
    const { policy, initialAccessToken } = this.#options;
    if (policy === 'off') return 'unchecked';
    const presented = bearer(authorization);
    if (policy === 'open' && presented === undefined) return 'absent';
    await this.#throttle(audit);
    const valid = initialAccessToken !== undefined && presented !== undefined && constantTimeEquals(presented, initialAccessToken);
    // A wrong token is a guess, on an open server too (where it would earn the wider scope policy).
    if (!valid) await this.#failed(audit, 'initial access token', presented);
    return valid ? 'valid' : presented === undefined ? 'absent' : 'wrong';
  }

  /**
   * The built-in policy's refusals answer as they always did: off is
   * access_denied, a missing or wrong initial access token invalid_token
   * (RFC 6750 section 3). Another handler's refusal is access_denied with
   * its reason.
   */
  #refusal(decision: Extract<Decision, { allowed: false }>): OAuthError {
    if (decision.handler === REGISTRATION_POLICY_HOOK && decision.fault === undefined) {
      if (this.#options.policy === 'off') return new OAuthError('access_denied', 'Dynamic client registration is turned off on this server.');
      return new OAuthError('invalid_token', 'Registration needs the initial access token as a Bearer token.', { headers: { 'www-authenticate': 'Bearer error="invalid_token"' } });
    }
    return new OAuthError('access_denied', decision.reason);
  }

  /**
   * Every credential check goes through a throttle, read before the check;
   * a right token does not reset it. RFC 6585 section 4: 429 with Retry-After.
   */
  async #throttle(audit: RegistrationRequestAudit): Promise<void> {
    const wait = await throttledFor(this.#options.failures, 'registration.auth.failed', audit.ip, REGISTRATION_FAILURES_PER_MINUTE);
    if (wait !== undefined) throw new OAuthError('temporarily_unavailable', 'Too many wrong registration tokens from this network; try again later.', { headers: { 'retry-after': String(wait) } });
  }

  /** Unauthenticated failures reach the ledger aggregated per network and minute (security review 11). */
  async #failed(audit: RegistrationRequestAudit, kind: 'initial access token' | 'registration access token', presented: string | undefined): Promise<void> {
    await this.#options.failures.record({ type: 'registration.auth.failed', outcome: 'denied', ...audit, detail: { checked: kind, presented: presented === undefined ? 'nothing' : 'a wrong token' } });
  }

  /** Of a policy's scopes, those that exist now (an API scope whose resource was deleted does not). */
  async #existing(scopes: readonly string[]): Promise<string[]> {
    const found: string[] = [];
    for (const scope of scopes) if (await this.#options.scopeExists(scope)) found.push(scope);
    return found;
  }

  async #authorised(clientId: string, request: { authorization: string | undefined; audit: RegistrationRequestAudit }): Promise<OAuthClient> {
    if (!this.enabled) throw new OAuthError('access_denied', 'Dynamic client registration is turned off on this server.');
    await this.#throttle(request.audit);
    const presented = bearer(request.authorization);
    const client = presented === undefined || clientId.length > 256 ? null : await this.#options.clients.get(clientId);
    // RFC 7592 section 3: an unknown client and a wrong token answer alike,
    // so the endpoint does not tell which client ids exist.
    if (client === null || !this.#options.clients.verifyRegistrationToken(client, presented!)) {
      await this.#failed(request.audit, 'registration access token', presented);
      throw invalidToken();
    }
    return client;
  }

  #validate(body: unknown, allowedScopes: readonly string[]): ClientMetadata {
    try {
      return validateClientMetadata(body, { allowedScopes, scopeHint: `a client registered here may ask for: ${allowedScopes.join(' ') || '(no scope)'}; the server's operator grants other scopes` });
    } catch (error) {
      if (error instanceof ClientMetadataError) throw new OAuthError(error.error, error.message);
      throw error;
    }
  }

  /**
   * RFC 7591 section 3.2.1 and RFC 7592 section 3: what the client may see of
   * its registration. Not the operator's cert_sans: a client that sent its
   * registration back as an update (section 2.2) would be refused for it.
   */
  #describe(client: OAuthClient): Record<string, unknown> {
    const metadata: Record<string, unknown> = { ...pickClientMetadata(client) };
    delete metadata['cert_sans'];
    return {
      client_id: client.client_id,
      client_id_issued_at: client.client_id_issued_at,
      ...(client.secretHash !== undefined && { client_secret_expires_at: 0 }),
      registration_client_uri: `${this.#options.endpoint}/${encodeURIComponent(client.client_id)}`,
      ...metadata,
    };
  }
}
