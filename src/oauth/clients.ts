/**
 * The OAuth client registry: registered clients in the durable store, their
 * secrets and RFC 7592 registration access tokens, and an audit entry for
 * every change.
 *
 * Secrets: the server makes them (32 random bytes, base64url: 256 bits),
 * returns them once, and keeps only HMAC-SHA256(secretKey, secret) in hex.
 * A keyed hash rather than a plain one: a copy of the database alone does not
 * let anyone test guesses offline, and the secret's full entropy makes a slow
 * password hash pointless (and a denial-of-service lever at the token
 * endpoint). Registration access tokens are kept the same way under a key of
 * their own, so a stored value of one kind never verifies as the other.
 */
import { createHmac, createSecretKey, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import type { DomainEvents } from '../events/index.ts';
import { Type } from '@sinclair/typebox';
import { collection, typeboxCodec, type Clock, type Codec, type Collection, type RecordStore, type StoredRecord } from '../store/index.ts';
import { pickClientMetadata, usesClientSecret, type ClientMetadata, type IdTokenSigningAlgorithm, type TokenEndpointAuthMethod } from './client-metadata.ts';

const CLIENTS = 'oauth_clients';
const SECRET_BYTES = 32;
const CLIENT_ID_BYTES = 16;
const CLIENT_ID_PREFIX = 'c_';
/** Longest client id `get` looks up; ours are 24 characters. */
const MAX_CLIENT_ID_LENGTH = 128;
/** Presented secrets longer than this are refused without hashing. */
const MAX_PRESENTED_LENGTH = 1024;

export interface OAuthClient extends ClientMetadata {
  readonly client_id: string;
  /** RFC 7591 section 3.2.1: seconds since the epoch. */
  readonly client_id_issued_at: number;
  /** HMAC-SHA256 of the client secret, hex; present exactly when the auth method uses a secret. */
  readonly secretHash?: string;
  /** HMAC-SHA256 of the RFC 7592 registration access token, hex. */
  readonly registrationTokenHash?: string;
  /**
   * An operator vouches for this client's registered URIs (`client create`,
   * or `client approve` for a self-registered one). Until then the server
   * sends nobody to them without the person's say: RFC 9700 section 4.11.2
   * (the authorization server as open redirector), RFC 7591 section 5
   * (self-asserted metadata). Absent on records from before the flag: not approved.
   */
  readonly approved?: boolean;
  /** The stored record's version (compare-and-set); grows by one with every change. */
  readonly version: number;
}

type ClientData = Omit<OAuthClient, 'client_id' | 'version'>;

const strings = Type.Array(Type.String());

/**
 * A stored client: the metadata `pickClientMetadata` keeps, and the
 * registry's own fields. The auth method and grant types are checked
 * against their closed lists, since they decide how a client authenticates;
 * the signing algorithm is checked where it is used (the algorithm table).
 */
/** What a record may hold: records from before RFC 8705 lack the flag. */
type StoredClientData = Omit<ClientData, 'tls_client_certificate_bound_access_tokens'> & { readonly tls_client_certificate_bound_access_tokens?: boolean };

const storedClient: Codec<StoredClientData> = typeboxCodec(
  Type.Object({
    client_name: Type.Optional(Type.String()),
    redirect_uris: strings,
    post_logout_redirect_uris: strings,
    grant_types: Type.Array(Type.Union([Type.Literal('authorization_code'), Type.Literal('refresh_token'), Type.Literal('client_credentials')])),
    response_types: Type.Array(Type.Literal('code')),
    token_endpoint_auth_method: Type.Union([
      Type.Literal('none'),
      Type.Literal('client_secret_basic'),
      Type.Literal('client_secret_post'),
      Type.Literal('private_key_jwt'),
      Type.Literal('tls_client_auth'),
      Type.Literal('self_signed_tls_client_auth'),
    ]),
    scope: Type.String(),
    jwks: Type.Optional(Type.Object({ keys: Type.Array(Type.Record(Type.String(), Type.Unknown())) })),
    application_type: Type.Union([Type.Literal('web'), Type.Literal('native')]),
    require_pushed_authorization_requests: Type.Boolean(),
    dpop_bound_access_tokens: Type.Boolean(),
    id_token_signed_response_alg: Type.Unsafe<IdTokenSigningAlgorithm>(Type.String()),
    backchannel_logout_uri: Type.Optional(Type.String()),
    backchannel_logout_session_required: Type.Boolean(),
    erasure_notification_uri: Type.Optional(Type.String()),
    tls_client_auth_subject_dn: Type.Optional(Type.String()),
    tls_client_auth_san_dns: Type.Optional(Type.String()),
    tls_client_auth_san_uri: Type.Optional(Type.String()),
    tls_client_auth_san_ip: Type.Optional(Type.String()),
    tls_client_auth_san_email: Type.Optional(Type.String()),
    // Absent on records from before RFC 8705: false.
    tls_client_certificate_bound_access_tokens: Type.Optional(Type.Boolean()),
    cert_sans: Type.Optional(strings),
    client_id_issued_at: Type.Number(),
    secretHash: Type.Optional(Type.String()),
    registrationTokenHash: Type.Optional(Type.String()),
    approved: Type.Optional(Type.Boolean()),
  }),
);

const clientCodec: Codec<ClientData> = {
  decode: (data) => {
    const stored = storedClient.decode(data);
    return { ...stored, tls_client_certificate_bound_access_tokens: stored.tls_client_certificate_bound_access_tokens ?? false };
  },
  encode: (value) => storedClient.encode(value),
};

export interface ClientChangeContext {
  /** Who acted: `admin-cli`, `registration`, a client id ... (the audit entry's service). */
  readonly actor: string;
  readonly requestId?: string;
}

export interface RegisteredClient {
  readonly client: OAuthClient;
  /** The new secret, shown this once; present for client_secret_basic and client_secret_post. */
  readonly clientSecret?: string;
  /** RFC 7592 registration access token, shown this once; present when asked for. */
  readonly registrationAccessToken?: string;
}

export interface UpdatedClient {
  readonly client: OAuthClient;
  /** Present when the update moved the client to a secret-based auth method: a new secret, shown this once. */
  readonly clientSecret?: string;
}

export type ClientRegistryErrorCode = 'not_found' | 'conflict' | 'no_secret';

/** Whether an operator vouched for the client (see OAuthClient.approved). */
export function isApproved(client: OAuthClient): boolean {
  return client.approved === true;
}

/**
 * A change the registry refuses: no such client, a concurrent change got
 * there first (read the client again and retry), or a secret operation on a
 * client that has no secret. Messages are safe to show an operator.
 */
export class ClientRegistryError extends Error {
  override readonly name = 'ClientRegistryError';
  readonly code: ClientRegistryErrorCode;
  constructor(code: ClientRegistryErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

export interface ClientRegistryOptions {
  readonly records: RecordStore;
  /** `vault.derive('client-secrets')`. */
  readonly secretKey: Uint8Array;
  readonly events: DomainEvents;
  readonly clock: Clock;
  /**
   * How long a client read from the store may be served from memory, in ms
   * (default 1000; 0 turns the cache off; a function when it depends on
   * whether events arrive, src/events freshness.ts). Changes made through
   * this registry take effect here at once; another instance's change (a
   * rotated secret, a deleted client) takes effect here at once through its
   * event (`forget`), and within this time without one.
   */
  readonly cacheMs?: number | (() => number);
}

/** Most clients kept in memory; the oldest read goes first. */
const CACHE_ENTRIES = 5000;

function toClient(record: StoredRecord<ClientData>): OAuthClient {
  return { ...record.data, client_id: record.id, version: record.version };
}

function newSecret(): string {
  return randomBytes(SECRET_BYTES).toString('base64url');
}

function auditContext(clientId: string, context: ClientChangeContext) {
  return { actorService: context.actor, clientId, ...(context.requestId !== undefined && { requestId: context.requestId }) };
}

/** Audit detail: what kind of client it is, never a secret or a URI; how many names the CA may certify for it (cert_sans). */
function describeClient(metadata: ClientMetadata) {
  return {
    authMethod: metadata.token_endpoint_auth_method,
    grantTypes: metadata.grant_types.length,
    redirectUris: metadata.redirect_uris.length,
    applicationType: metadata.application_type,
    ...(metadata.cert_sans !== undefined && { certSans: metadata.cert_sans.length }),
  };
}

export class ClientRegistry {
  readonly #clients: Collection<ClientData>;
  // KeyObjects: imported once, not on every HMAC (one per token request).
  readonly #secretKey: KeyObject;
  readonly #registrationTokenKey: KeyObject;
  readonly #events: DomainEvents;
  readonly #clock: Clock;
  readonly #cacheMs: () => number;
  /** Grows with every forget: a read that started before one is not cached (it may be stale). */
  #generation = 0;
  /** Clients by id, with when they were read (the token endpoint reads one per request). */
  readonly #cache = new Map<string, { client: OAuthClient; readAt: number }>();
  /** The last secret that verified per client, with the stored hash it verified against. */
  readonly #verifiedSecrets = new Map<string, { secretHash: string; secret: Buffer }>();

  constructor(options: ClientRegistryOptions) {
    if (options.secretKey.length < 32) throw new TypeError('the client secret key must have at least 32 bytes');
    this.#clients = collection(options.records, { name: CLIENTS, codec: clientCodec });
    this.#secretKey = createSecretKey(options.secretKey);
    this.#registrationTokenKey = createSecretKey(createHmac('sha256', options.secretKey).update('portcullis/registration-access-token').digest());
    this.#events = options.events;
    this.#clock = options.clock;
    const cacheMs = options.cacheMs ?? 1000;
    this.#cacheMs = typeof cacheMs === 'number' ? () => cacheMs : cacheMs;
  }

  /**
   * Stores a new client with metadata from `validateClientMetadata` (only
   * its known fields are kept). A secret is made for the secret-based auth
   * methods; a registration access token (RFC 7592 section 1) when asked.
   * Both are returned here and never again. `approved`: an operator made it
   * (default false: a self-registered client waits for `client approve`).
   */
  async register(metadata: ClientMetadata, context: ClientChangeContext, options: { withRegistrationToken?: boolean; approved?: boolean } = {}): Promise<RegisteredClient> {
    const clean = pickClientMetadata(metadata);
    const clientSecret = usesClientSecret(clean.token_endpoint_auth_method) ? newSecret() : undefined;
    const registrationAccessToken = options.withRegistrationToken === true ? newSecret() : undefined;
    const data: ClientData = {
      ...clean,
      client_id_issued_at: Math.floor(this.#clock() / 1000),
      approved: options.approved === true,
      ...(clientSecret !== undefined && { secretHash: this.#hash(this.#secretKey, clientSecret) }),
      ...(registrationAccessToken !== undefined && { registrationTokenHash: this.#hash(this.#registrationTokenKey, registrationAccessToken) }),
    };
    // 128 random bits: a collision is not expected, but `create` is
    // create-if-absent, so one could never overwrite another client.
    const clientId = await this.#clients.createWithFreshId(() => `${CLIENT_ID_PREFIX}${randomBytes(CLIENT_ID_BYTES).toString('base64url')}`, data, 3);
    if (clientId === null) throw new Error('could not find an unused client id');
    const created = await this.#clients.get(clientId);
    if (created === null) throw new Error('the new client record vanished');
    const client = toClient(created);
    await this.#events.emit({
      type: 'client.registered',
      outcome: 'success',
      ...auditContext(clientId, context),
      detail: { ...describeClient(clean), selfManaged: registrationAccessToken !== undefined },
    });
    return { client, ...(clientSecret !== undefined && { clientSecret }), ...(registrationAccessToken !== undefined && { registrationAccessToken }) };
  }

  async get(clientId: string): Promise<OAuthClient | null> {
    if (typeof clientId !== 'string' || clientId.length === 0 || clientId.length > MAX_CLIENT_ID_LENGTH) return null;
    const now = performance.now();
    const cacheMs = this.#cacheMs();
    const cached = this.#cache.get(clientId);
    if (cached !== undefined && now - cached.readAt < cacheMs) return cached.client;
    const generation = this.#generation;
    const record = await this.#clients.get(clientId);
    if (record === null) {
      this.#cache.delete(clientId);
      return null;
    }
    const client = toClient(record);
    // Only clients that exist are cached: unknown ids cannot fill memory.
    if (cacheMs > 0 && generation === this.#generation) {
      this.#cache.delete(clientId);
      if (this.#cache.size >= CACHE_ENTRIES) this.#cache.delete(this.#cache.keys().next().value!);
      this.#cache.set(clientId, { client, readAt: now });
    }
    return client;
  }

  /** Clients in client_id order (keyset pagination: pass the last id as `after`). */
  async list(options: { after?: string; limit?: number } = {}): Promise<OAuthClient[]> {
    return (await this.#clients.list(options)).map(toClient);
  }

  /**
   * Replaces the client's metadata (RFC 7592 section 2.2: an update is a
   * full replacement) with one compare-and-set on the version: on
   * `expectedVersion` when given (the version the caller read), else on the
   * version read here. A concurrent change makes it fail with
   * ClientRegistryError `conflict`; it is never retried blindly, so no
   * update silently overwrites another.
   *
   * The secret follows the auth method: kept while it stays secret-based,
   * dropped when it moves to none or private_key_jwt, and made (and
   * returned, once) when it moves to a secret-based one.
   */
  async update(clientId: string, metadata: ClientMetadata, context: ClientChangeContext, options: { expectedVersion?: number } = {}): Promise<UpdatedClient> {
    const record = await this.#read(clientId);
    const expectedVersion = options.expectedVersion ?? record.version;
    if (record.version !== expectedVersion) throw conflict(clientId);
    const clean = pickClientMetadata(metadata);
    const before = record.data.token_endpoint_auth_method;
    const after = clean.token_endpoint_auth_method;
    const clientSecret = usesClientSecret(after) && (!usesClientSecret(before) || record.data.secretHash === undefined) ? newSecret() : undefined;
    const secretHash = usesClientSecret(after) ? (clientSecret !== undefined ? this.#hash(this.#secretKey, clientSecret) : record.data.secretHash) : undefined;
    // An operator approved the URIs they saw: new ones need approving again.
    const approved = record.data.approved === true && sameList(record.data.redirect_uris, clean.redirect_uris) && sameList(record.data.post_logout_redirect_uris, clean.post_logout_redirect_uris);
    const data: ClientData = {
      ...clean,
      client_id_issued_at: record.data.client_id_issued_at,
      approved,
      ...(secretHash !== undefined && { secretHash }),
      ...(record.data.registrationTokenHash !== undefined && { registrationTokenHash: record.data.registrationTokenHash }),
    };
    const version = await this.#clients.update(clientId, expectedVersion, data);
    this.forget(clientId);
    if (version === null) throw conflict(clientId);
    await this.#events.emit({
      type: 'client.updated',
      outcome: 'success',
      ...auditContext(clientId, context),
      detail: { ...describeClient(clean), previousAuthMethod: before, reason: updateReason(before, after, clientSecret !== undefined), ...(record.data.approved === true && !approved && { approvalWithdrawn: true }) },
    });
    return { client: toClient({ ...record, version, data }), ...(clientSecret !== undefined && { clientSecret }) };
  }

  /**
   * An operator vouches for the client's registered URIs (`client approve`):
   * from now on /authorize errors and sign-outs may go to them without an
   * interstitial page. Resolves false when it was approved already.
   */
  async approve(clientId: string, context: ClientChangeContext): Promise<boolean> {
    const record = await this.#read(clientId);
    if (record.data.approved === true) return false;
    const version = await this.#clients.update(clientId, record.version, { ...record.data, approved: true });
    this.forget(clientId);
    if (version === null) throw conflict(clientId);
    await this.#events.emit({ type: 'client.updated', outcome: 'success', ...auditContext(clientId, context), detail: { ...describeClient(record.data), reason: 'approved', approved: true } });
    return true;
  }

  /** Deletes the client; false when there was none. Tokens it holds are the token service's to revoke. */
  async delete(clientId: string, context: ClientChangeContext): Promise<boolean> {
    const client = await this.get(clientId);
    if (client === null) return false;
    const deleted = await this.#clients.delete(clientId);
    this.forget(clientId);
    if (!deleted) return false;
    await this.#events.emit({ type: 'client.deleted', outcome: 'success', ...auditContext(clientId, context), detail: { authMethod: client.token_endpoint_auth_method, reason: 'deleted' } });
    return true;
  }

  /**
   * Replaces the secret with a new one, returned once. The old secret stops
   * working at once: there is no overlap period, so a leaked secret is dead
   * the moment it is rotated (deploy the new one before rotating if the
   * client must not notice).
   */
  async rotateSecret(clientId: string, context: ClientChangeContext): Promise<string> {
    const record = await this.#read(clientId);
    const method = record.data.token_endpoint_auth_method;
    if (!usesClientSecret(method)) throw new ClientRegistryError('no_secret', `client ${clientId} authenticates with ${method}; it has no secret to rotate`);
    const clientSecret = newSecret();
    const version = await this.#clients.update(clientId, record.version, { ...record.data, secretHash: this.#hash(this.#secretKey, clientSecret) });
    this.forget(clientId);
    if (version === null) throw conflict(clientId);
    await this.#events.emit({ type: 'client.updated', outcome: 'success', ...auditContext(clientId, context), detail: { authMethod: method, reason: 'secret_rotated' } });
    return clientSecret;
  }

  /** Drops what is cached of a client that changed (here, or on another instance: its event). */
  forget(clientId: string): void {
    this.#generation += 1;
    this.#cache.delete(clientId);
  }

  /** Drops every cached client (events may have been missed). */
  forgetAll(): void {
    this.#generation += 1;
    this.#cache.clear();
  }

  /** Whether `presented` is the client's secret; constant time in the secret (RFC 6749 section 10.2; docs/architecture.md, Conventions). */
  verifySecret(client: OAuthClient, presented: string): boolean {
    // A busy client presents the same secret on every request: once it has
    // verified against this exact stored hash, later presentations are
    // compared with it directly (constant time, same length), which skips an
    // HMAC per request. A rotated secret changes the hash and ends the entry.
    const remembered = this.#verifiedSecrets.get(client.client_id);
    if (remembered !== undefined && remembered.secretHash === client.secretHash) {
      const candidate = Buffer.from(presented, 'utf8');
      if (candidate.length === remembered.secret.length) return timingSafeEqual(candidate, remembered.secret);
    }
    const ok = this.#verify(this.#secretKey, client.secretHash, presented);
    if (ok) {
      if (this.#verifiedSecrets.size >= CACHE_ENTRIES) this.#verifiedSecrets.delete(this.#verifiedSecrets.keys().next().value!);
      this.#verifiedSecrets.set(client.client_id, { secretHash: client.secretHash!, secret: Buffer.from(presented, 'utf8') });
    }
    return ok;
  }

  /** Whether `presented` is the client's RFC 7592 registration access token; constant time. */
  verifyRegistrationToken(client: OAuthClient, presented: string): boolean {
    return this.#verify(this.#registrationTokenKey, client.registrationTokenHash, presented);
  }

  #verify(key: KeyObject, storedHex: string | undefined, presented: string): boolean {
    if (storedHex === undefined || typeof presented !== 'string' || presented.length === 0 || presented.length > MAX_PRESENTED_LENGTH) return false;
    const stored = Buffer.from(storedHex, 'hex');
    // Both sides are HMAC outputs of one length, so timingSafeEqual compares
    // in constant time whatever was presented.
    const computed = createHmac('sha256', key).update(presented, 'utf8').digest();
    return stored.length === computed.length && timingSafeEqual(stored, computed);
  }

  #hash(key: KeyObject, value: string): string {
    return createHmac('sha256', key).update(value, 'utf8').digest('hex');
  }

  async #read(clientId: string): Promise<StoredRecord<ClientData>> {
    const record = typeof clientId === 'string' && clientId.length > 0 && clientId.length <= MAX_CLIENT_ID_LENGTH ? await this.#clients.get(clientId) : null;
    if (record === null) throw new ClientRegistryError('not_found', `no client ${clientId.slice(0, MAX_CLIENT_ID_LENGTH)}`);
    return record;
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((value, index) => value === b[index]);
}

function conflict(clientId: string): ClientRegistryError {
  return new ClientRegistryError('conflict', `client ${clientId} was changed concurrently; read it again and retry`);
}

function updateReason(before: TokenEndpointAuthMethod, after: TokenEndpointAuthMethod, issued: boolean): string {
  if (issued) return 'metadata_changed_secret_issued';
  if (usesClientSecret(before) && !usesClientSecret(after)) return 'metadata_changed_secret_removed';
  return 'metadata_changed';
}
