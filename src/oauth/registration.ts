/**
 * Dynamic client registration (RFC 7591) and its management protocol
 * (RFC 7592). Who may register is `oauth.registration`: open, only with the
 * initial access token (section 3, "initial_access_token"), or off. Each
 * registered client gets a registration access token for reading, updating
 * and deleting its own registration; nothing else accepts that token.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { ClientMetadataError, pickClientMetadata, validateClientMetadata, type ClientMetadata } from './client-metadata.ts';
import { ClientRegistryError, type ClientRegistry, type OAuthClient } from './clients.ts';
import { OAuthError } from './errors.ts';

export type RegistrationPolicy = 'open' | 'token' | 'off';

export interface RegistrationOptions {
  readonly clients: ClientRegistry;
  readonly policy: RegistrationPolicy;
  readonly initialAccessToken: string | undefined;
  readonly allowedScopes: readonly string[];
  readonly defaultSigningAlgorithm: string;
  /** The registration endpoint's URL; a client's configuration URL is this plus its id. */
  readonly endpoint: string;
}

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
  async register(request: { body: unknown; authorization: string | undefined; requestId: string }): Promise<RegistrationAnswer> {
    this.#admit(request.authorization);
    const metadata = this.#validate(request.body);
    const registered = await this.#options.clients.register(metadata, { actor: ACTOR, requestId: request.requestId }, { withRegistrationToken: true });
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
  async read(clientId: string, authorization: string | undefined): Promise<RegistrationAnswer> {
    const client = await this.#authorised(clientId, authorization);
    return { status: 200, body: this.#describe(client) };
  }

  /**
   * RFC 7592 section 2.2: the request carries the whole new metadata; the
   * client_id must be the client's own, and a client_secret, if sent, must
   * be its current one.
   */
  async update(clientId: string, request: { body: unknown; authorization: string | undefined; requestId: string }): Promise<RegistrationAnswer> {
    const client = await this.#authorised(clientId, request.authorization);
    const body = request.body;
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new OAuthError('invalid_client_metadata', 'The body must be a JSON object of client metadata.');
    const fields = body as Record<string, unknown>;
    if (fields['client_id'] !== clientId) throw new OAuthError('invalid_request', 'client_id in the body must be this client\'s id.');
    const secret = fields['client_secret'];
    if (secret !== undefined && (typeof secret !== 'string' || !this.#options.clients.verifySecret(client, secret))) throw new OAuthError('invalid_request', 'client_secret does not match this client\'s secret.');
    const metadata = this.#validate(Object.fromEntries(Object.entries(fields).filter(([name]) => !SERVER_FIELDS.includes(name))));
    let updated;
    try {
      updated = await this.#options.clients.update(clientId, metadata, { actor: ACTOR, requestId: request.requestId }, { expectedVersion: client.version });
    } catch (error) {
      // Another update won the compare-and-set: nothing of this one was written.
      if (error instanceof ClientRegistryError && error.code === 'conflict') throw new OAuthError('invalid_request', 'The registration changed meanwhile; read it again and retry.');
      throw error;
    }
    return { status: 200, body: { ...this.#describe(updated.client), ...(updated.clientSecret !== undefined && { client_secret: updated.clientSecret }) } };
  }

  /** RFC 7592 section 2.3: 204 once deleted. */
  async delete(clientId: string, request: { authorization: string | undefined; requestId: string }): Promise<RegistrationAnswer> {
    await this.#authorised(clientId, request.authorization);
    await this.#options.clients.delete(clientId, { actor: ACTOR, requestId: request.requestId });
    return { status: 204 };
  }

  /** Who may register (section 3): everyone, the holder of the initial access token, or nobody. */
  #admit(authorization: string | undefined): void {
    const { policy, initialAccessToken } = this.#options;
    if (policy === 'off') throw new OAuthError('access_denied', 'Dynamic client registration is turned off on this server.');
    if (policy === 'open') return;
    const presented = bearer(authorization);
    if (initialAccessToken === undefined || presented === undefined || !constantTimeEquals(presented, initialAccessToken)) {
      throw new OAuthError('invalid_token', 'Registration needs the initial access token as a Bearer token.', { headers: { 'www-authenticate': 'Bearer error="invalid_token"' } });
    }
  }

  async #authorised(clientId: string, authorization: string | undefined): Promise<OAuthClient> {
    if (!this.enabled) throw new OAuthError('access_denied', 'Dynamic client registration is turned off on this server.');
    const presented = bearer(authorization);
    if (presented === undefined) throw invalidToken();
    const client = clientId.length > 256 ? null : await this.#options.clients.get(clientId);
    // RFC 7592 section 3: an unknown client and a wrong token answer alike,
    // so the endpoint does not tell which client ids exist.
    if (client === null || !this.#options.clients.verifyRegistrationToken(client, presented)) throw invalidToken();
    return client;
  }

  #validate(body: unknown): ClientMetadata {
    try {
      return validateClientMetadata(body, { allowedScopes: this.#options.allowedScopes, defaultSigningAlgorithm: this.#options.defaultSigningAlgorithm });
    } catch (error) {
      if (error instanceof ClientMetadataError) throw new OAuthError(error.error, error.message);
      throw error;
    }
  }

  /** RFC 7591 section 3.2.1 and RFC 7592 section 3: what the client may see of its registration. */
  #describe(client: OAuthClient): Record<string, unknown> {
    return {
      client_id: client.client_id,
      client_id_issued_at: client.client_id_issued_at,
      ...(client.secretHash !== undefined && { client_secret_expires_at: 0 }),
      registration_client_uri: `${this.#options.endpoint}/${encodeURIComponent(client.client_id)}`,
      ...pickClientMetadata(client),
    };
  }
}
