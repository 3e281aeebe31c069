/**
 * Client metadata (RFC 7591 section 2): what a client may register, checked
 * once, by one pure function, before anything is stored. No I/O here: the
 * registry (clients.ts) stores what this returns, and nothing else.
 *
 * The rules, each with where it comes from:
 * - Redirect URIs are absolute, carry no fragment (RFC 6749 section 3.1.2),
 *   no wildcard and no userinfo, and are later compared by exact string
 *   (RFC 9700 sections 2.1 and 4.1.3, OAuth 2.1 section 2.3.1), so they are
 *   stored exactly as given. https is required, except http on a loopback
 *   address (RFC 8252 section 7.3, OAuth 2.1 section 8.4.2) and private-use
 *   (reverse-domain) schemes for native apps (RFC 8252 section 7.1).
 * - Only the authorization code flow: no implicit, no hybrid (OAuth 2.1
 *   section 1.5 / 10.1, RFC 9700 section 2.1.2); grant and response types
 *   agree (RFC 7591 section 2.1).
 * - Secrets are made by the server, never chosen by the client.
 * - Unknown fields are ignored (RFC 7591 section 2: the server MUST ignore
 *   metadata it does not understand) and never stored.
 */
import { X509Certificate, createPublicKey } from 'node:crypto';
import { MIN_RSA_MODULUS_BITS, SIGNING_ALGORITHMS, algorithmsFor, type SigningAlgorithm } from '../crypto/index.ts';
import { parseAllowedName, selfSignedClientProblem } from '../pki/index.ts';
import { TLS_SUBJECT_FIELDS, tlsSubjectProblem, type TlsSubjectField } from './mtls.ts';

export type TokenEndpointAuthMethod = 'none' | 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt' | 'tls_client_auth' | 'self_signed_tls_client_auth';
export type GrantType = 'authorization_code' | 'refresh_token' | 'client_credentials';
/** ID tokens are signed by the keyring, so with any algorithm it keeps keys for (crypto/algorithms.ts). */
export type IdTokenSigningAlgorithm = SigningAlgorithm;

/** What is stored and returned, under the RFC 7591 section 2 (and OIDC Registration) names. */
export interface ClientMetadata {
  readonly client_name?: string;
  readonly redirect_uris: readonly string[];
  /** OpenID Connect RP-Initiated Logout 1.0 section 3.1; the same rules as redirect_uris. */
  readonly post_logout_redirect_uris: readonly string[];
  readonly grant_types: readonly GrantType[];
  /** ['code'] exactly when grant_types includes authorization_code, else []. */
  readonly response_types: readonly 'code'[];
  readonly token_endpoint_auth_method: TokenEndpointAuthMethod;
  /** Space-separated scopes the client may request (RFC 6749 section 3.3 syntax). */
  readonly scope: string;
  /** The client's public keys (RFC 7517), required for private_key_jwt. Only public members are kept. */
  readonly jwks?: { readonly keys: readonly Record<string, unknown>[] };
  /** OIDC Registration section 2; decides which redirect URIs are allowed. */
  readonly application_type: 'web' | 'native';
  /** RFC 9126 section 6. */
  readonly require_pushed_authorization_requests: boolean;
  /** RFC 9449 section 5.2. */
  readonly dpop_bound_access_tokens: boolean;
  /** OIDC Registration section 2; default: the server's signing algorithm. */
  readonly id_token_signed_response_alg: IdTokenSigningAlgorithm;
  /** OIDC Back-Channel Logout 1.0 section 2.2. */
  readonly backchannel_logout_uri?: string;
  readonly backchannel_logout_session_required: boolean;
  /**
   * Where this server tells the client that a person it received data about
   * was erased (GDPR Art. 19): a RISC account-purged SET is POSTed here
   * (RFC 8935 framing), for clients that run no signal stream.
   */
  readonly erasure_notification_uri?: string;
  /** RFC 8705 section 2.1.2: for tls_client_auth, exactly one of these names the client's certificate. */
  readonly tls_client_auth_subject_dn?: string;
  readonly tls_client_auth_san_dns?: string;
  readonly tls_client_auth_san_uri?: string;
  readonly tls_client_auth_san_ip?: string;
  readonly tls_client_auth_san_email?: string;
  /** RFC 8705 section 3.4: the client uses only certificate-bound access tokens. */
  readonly tls_client_certificate_bound_access_tokens: boolean;
  /**
   * Portcullis extension, set by the operator only (never through dynamic
   * registration): the names this client may have the built-in CA put in
   * its certificates, as `spiffe://trust-domain/path`, `dns:name` or
   * `ip:address`. Absent when none.
   */
  readonly cert_sans?: readonly string[];
}

export type ClientMetadataErrorCode = 'invalid_redirect_uri' | 'invalid_client_metadata';

/**
 * A registration refused for what it asked (RFC 7591 section 3.2.2). `error`
 * is the registered error code; the message, written for the client's
 * developer, names the field and the rule and never echoes a long value.
 */
export class ClientMetadataError extends Error {
  override readonly name = 'ClientMetadataError';
  readonly error: ClientMetadataErrorCode;
  constructor(error: ClientMetadataErrorCode, message: string) {
    super(message);
    this.error = error;
  }
}

export interface ValidateClientMetadataOptions {
  /**
   * Every scope this client may register: OpenID scopes and scopes of
   * registered resources an operator grants it, or what dynamic
   * registration allows (`oauth.registrationScopes`).
   */
  readonly allowedScopes: readonly string[];
  /** Added to the refusal of a scope outside `allowedScopes`: how to get it. */
  readonly scopeHint?: string;
  /**
   * The default id_token_signed_response_alg. Default RS256: OIDC Dynamic
   * Client Registration section 2 makes RS256 the default when the client
   * names none, and relying parties that name none expect it.
   */
  readonly defaultSigningAlgorithm?: string;
  /**
   * The operator is registering (`portcullis client`): operator-only fields
   * (`cert_sans`) are accepted. Default false: dynamic registration refuses them.
   */
  readonly operator?: boolean;
}

/** OIDC Dynamic Client Registration section 2: "The default, if omitted, is RS256." */
export const DEFAULT_ID_TOKEN_SIGNING_ALGORITHM: IdTokenSigningAlgorithm = 'RS256';

export const TOKEN_ENDPOINT_AUTH_METHODS: readonly TokenEndpointAuthMethod[] = ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth'];
export const GRANT_TYPES: readonly GrantType[] = ['authorization_code', 'refresh_token', 'client_credentials'];
export const ID_TOKEN_SIGNING_ALGORITHMS: readonly IdTokenSigningAlgorithm[] = SIGNING_ALGORITHMS;

/** RFC 8705 section 2: the client authenticates with its TLS client certificate. */
export function usesClientCertificate(method: TokenEndpointAuthMethod): boolean {
  return method === 'tls_client_auth' || method === 'self_signed_tls_client_auth';
}

/** Auth methods for which the server issues a client secret. */
export function usesClientSecret(method: TokenEndpointAuthMethod): boolean {
  return method === 'client_secret_basic' || method === 'client_secret_post';
}

export const CLIENT_METADATA_LIMITS = {
  clientName: 200,
  redirectUris: 20,
  uriLength: 2000,
  scopes: 50,
  scopeLength: 2000,
  jwksKeys: 10,
  kidLength: 128,
  x5cCertificates: 10,
  x5cCertificateLength: 16_384,
  certSans: 20,
  certSanLength: 2048,
} as const;

/**
 * RFC 3986 URI characters (printable ASCII without space, `"`, `<`, `>`,
 * `\`, `^`, backtick, `{`, `|`, `}`): what a browser and this server parse
 * the same way. A tab or newline would be silently dropped by a WHATWG URL
 * parser and a backslash read as a slash, so the URI compared later would
 * not be the one that was checked; they are refused instead.
 */
const URI_CHARACTERS = /^[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]+$/;
/** RFC 3986 section 3.1. */
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;
/** RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;
/** Loopback IP literals as the WHATWG parser writes a host (RFC 8252 section 7.3). */
const LOOPBACK_IP_HOSTS = new Set(['127.0.0.1', '[::1]']);

/**
 * Response types that are refused with their own explanation: the implicit
 * flow and the hybrid flows leak tokens through the front channel
 * (RFC 9700 section 2.1.2; OAuth 2.1 drops them).
 */
const FRONT_CHANNEL_TOKEN_RESPONSE = /(^|\s)(token|id_token)(\s|$)/;

/** JWK members that hold private or symmetric key material (RFC 7518 section 6). */
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
/** What is kept of a registered JWK: its public parts and labels, nothing else. */
const PUBLIC_JWK_MEMBERS = ['kty', 'kid', 'use', 'key_ops', 'alg', 'crv', 'x', 'y', 'n', 'e', 'x5c'];
/** Asymmetric JWS algorithms a client key may declare (never `none` or HMAC: RFC 8725 section 3.1). */
const CLIENT_KEY_ALGORITHMS = new Set<string>(algorithmsFor('clientKey'));
const EC_CURVES = new Set(['P-256', 'P-384', 'P-521']);

type Input = Readonly<Record<string, unknown>>;

const metadataError = (message: string) => new ClientMetadataError('invalid_client_metadata', message);
const redirectError = (message: string) => new ClientMetadataError('invalid_redirect_uri', message);

/**
 * Checks registration (or update) metadata and returns what may be stored:
 * the known fields, with defaults filled in. Throws ClientMetadataError.
 *
 * Server-managed fields (`client_id`, `client_id_issued_at`,
 * `registration_access_token`, ...) and metadata this server does not use
 * (`logo_uri`, `contacts`, `software_statement`, ...) are ignored. An RFC 7592
 * update request carries `client_id` (and may carry the current
 * `client_secret`): the endpoint checks and removes those before calling this.
 */
export function validateClientMetadata(input: unknown, options: ValidateClientMetadataOptions): ClientMetadata {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw metadataError('client metadata must be a JSON object');
  const fields = input as Input;
  const defaultAlgorithm = options.defaultSigningAlgorithm ?? DEFAULT_ID_TOKEN_SIGNING_ALGORITHM;
  if (!(ID_TOKEN_SIGNING_ALGORITHMS as readonly string[]).includes(defaultAlgorithm)) throw new TypeError(`defaultSigningAlgorithm ${defaultAlgorithm} is not one of ${ID_TOKEN_SIGNING_ALGORITHMS.join(', ')}`);

  // Credentials are the server's to make: a secret a client picks is as
  // strong as the client's habits (RFC 7591 section 3.2.1 lets the server issue it).
  if (has(fields, 'client_secret')) throw metadataError('client secrets are generated by the server; remove client_secret from the request');
  if (has(fields, 'jwks_uri')) throw metadataError('jwks_uri is not supported: register the public keys inline as jwks');

  const applicationType = oneOf(fields, 'application_type', ['web', 'native'] as const, 'web');
  const authMethod = oneOf(fields, 'token_endpoint_auth_method', TOKEN_ENDPOINT_AUTH_METHODS, 'client_secret_basic', {
    client_secret_jwt: 'client_secret_jwt needs the server to keep the secret itself, which this server never does; use private_key_jwt',
  });
  const grantTypes = checkGrantTypes(fields, authMethod);
  const responseTypes = checkResponseTypes(fields, grantTypes);

  const usesRedirects = grantTypes.includes('authorization_code');
  const redirectUris = uriList(fields, 'redirect_uris', applicationType);
  if (usesRedirects && redirectUris.length === 0) throw redirectError('redirect_uris: at least one redirect URI is required for the authorization_code grant');
  if (!usesRedirects && redirectUris.length > 0) throw redirectError('redirect_uris: a client without the authorization_code grant never redirects; leave redirect_uris out');
  const postLogoutRedirectUris = uriList(fields, 'post_logout_redirect_uris', applicationType);
  if (!usesRedirects && postLogoutRedirectUris.length > 0) throw redirectError('post_logout_redirect_uris: only a client that signs users in (authorization_code) can have them');

  const jwks = has(fields, 'jwks') ? checkJwks(fields['jwks']) : undefined;
  if (authMethod === 'private_key_jwt' && jwks === undefined) throw metadataError('token_endpoint_auth_method private_key_jwt needs jwks: the public key(s) the client signs its assertions with');
  // RFC 8705 section 2.2.2: the self-signed certificate is registered as the
  // x5c of a JWK (jwks_uri is not supported here, see above).
  if (authMethod === 'self_signed_tls_client_auth' && !(jwks?.keys.some((key) => key['x5c'] !== undefined) ?? false)) {
    throw metadataError('token_endpoint_auth_method self_signed_tls_client_auth needs jwks with the client\'s certificate as the x5c of a key (RFC 8705 section 2.2.2)');
  }
  // The mTLS listener trusts a registered self-signed certificate as itself: it must not be able to issue others.
  if (authMethod === 'self_signed_tls_client_auth') {
    for (const [index, key] of (jwks?.keys ?? []).entries()) {
      const first = Array.isArray(key['x5c']) ? (key['x5c'] as unknown[])[0] : undefined;
      if (typeof first !== 'string') continue;
      const problem = selfSignedClientProblem(Buffer.from(first, 'base64'));
      if (problem !== undefined) throw metadataError(`jwks.keys[${index}].x5c[0] ${problem} (RFC 8705 section 2.2: the client's own self-signed certificate)`);
    }
  }
  const tlsSubject = checkTlsSubject(fields, authMethod);
  const certificateBound = flag(fields, 'tls_client_certificate_bound_access_tokens');
  const dpopBound = flag(fields, 'dpop_bound_access_tokens');
  // A token is bound to one key: a DPoP key or a TLS client certificate.
  if (certificateBound && dpopBound) throw metadataError('tls_client_certificate_bound_access_tokens and dpop_bound_access_tokens exclude each other: an access token is bound to one key');
  const certSans = checkCertSans(fields, options.operator === true);

  const clientName = has(fields, 'client_name') ? checkClientName(fields['client_name']) : undefined;
  const backchannelLogoutUri = has(fields, 'backchannel_logout_uri') ? checkBackchannelLogoutUri(fields['backchannel_logout_uri']) : undefined;
  const erasureNotificationUri = has(fields, 'erasure_notification_uri') ? checkServerCalledUri(fields['erasure_notification_uri'], 'erasure_notification_uri') : undefined;

  return {
    ...(clientName !== undefined && { client_name: clientName }),
    redirect_uris: redirectUris,
    post_logout_redirect_uris: postLogoutRedirectUris,
    grant_types: grantTypes,
    response_types: responseTypes,
    token_endpoint_auth_method: authMethod,
    scope: checkScope(fields, options.allowedScopes, options.scopeHint),
    ...(jwks !== undefined && { jwks }),
    application_type: applicationType,
    require_pushed_authorization_requests: flag(fields, 'require_pushed_authorization_requests'),
    dpop_bound_access_tokens: dpopBound,
    id_token_signed_response_alg: oneOf(fields, 'id_token_signed_response_alg', ID_TOKEN_SIGNING_ALGORITHMS, defaultAlgorithm as IdTokenSigningAlgorithm, {
      none: 'unsigned ID tokens (none) are not issued',
    }),
    ...(backchannelLogoutUri !== undefined && { backchannel_logout_uri: backchannelLogoutUri }),
    backchannel_logout_session_required: flag(fields, 'backchannel_logout_session_required'),
    ...(erasureNotificationUri !== undefined && { erasure_notification_uri: erasureNotificationUri }),
    ...(tlsSubject !== undefined && { [tlsSubject.field]: tlsSubject.value }),
    tls_client_certificate_bound_access_tokens: certificateBound,
    ...(certSans !== undefined && { cert_sans: certSans }),
  };
}

/** Exactly the ClientMetadata fields of `source` (a stored client, say): nothing else is carried along. */
export function pickClientMetadata(source: ClientMetadata): ClientMetadata {
  return {
    ...(source.client_name !== undefined && { client_name: source.client_name }),
    redirect_uris: [...source.redirect_uris],
    post_logout_redirect_uris: [...source.post_logout_redirect_uris],
    grant_types: [...source.grant_types],
    response_types: [...source.response_types],
    token_endpoint_auth_method: source.token_endpoint_auth_method,
    scope: source.scope,
    ...(source.jwks !== undefined && { jwks: { keys: source.jwks.keys.map((key) => ({ ...key })) } }),
    application_type: source.application_type,
    require_pushed_authorization_requests: source.require_pushed_authorization_requests,
    dpop_bound_access_tokens: source.dpop_bound_access_tokens,
    id_token_signed_response_alg: source.id_token_signed_response_alg,
    ...(source.backchannel_logout_uri !== undefined && { backchannel_logout_uri: source.backchannel_logout_uri }),
    backchannel_logout_session_required: source.backchannel_logout_session_required,
    ...(source.erasure_notification_uri !== undefined && { erasure_notification_uri: source.erasure_notification_uri }),
    ...Object.fromEntries(TLS_SUBJECT_FIELDS.filter((field) => source[field] !== undefined).map((field) => [field, source[field]])),
    tls_client_certificate_bound_access_tokens: source.tls_client_certificate_bound_access_tokens,
    ...(source.cert_sans !== undefined && { cert_sans: [...source.cert_sans] }),
  };
}

/** A field counts as given when present and not null (JSON clients often send null for "unset"). */
function has(fields: Input, name: string): boolean {
  return Object.hasOwn(fields, name) && fields[name] !== null && fields[name] !== undefined;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return Array.isArray(value) ? 'an array' : value === null ? 'null' : `a ${typeof value}`;
}

function oneOf<T extends string>(fields: Input, name: string, allowed: readonly T[], fallback: T, explained: Readonly<Record<string, string>> = {}): T {
  if (!has(fields, name)) return fallback;
  const value = fields[name];
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
  if (typeof value === 'string' && Object.hasOwn(explained, value)) throw metadataError(`${name}: ${explained[value]}`);
  throw metadataError(`${name} must be one of ${allowed.join(', ')} (got ${describe(value)})`);
}

function flag(fields: Input, name: string): boolean {
  if (!has(fields, name)) return false;
  const value = fields[name];
  if (typeof value !== 'boolean') throw metadataError(`${name} must be true or false (got ${describe(value)})`);
  return value;
}

function stringArray(fields: Input, name: string, max: number, error: (message: string) => ClientMetadataError): string[] {
  const value = fields[name];
  if (!Array.isArray(value)) throw error(`${name} must be an array of strings (got ${describe(value)})`);
  if (value.length > max) throw error(`${name}: at most ${max} entries`);
  for (const [index, item] of value.entries()) {
    if (typeof item !== 'string') throw error(`${name}[${index}] must be a string (got ${describe(item)})`);
  }
  const strings = value as string[];
  const duplicate = strings.find((item, index) => strings.indexOf(item) !== index);
  if (duplicate !== undefined) throw error(`${name}: ${describe(duplicate)} is listed twice`);
  return strings;
}

/** RFC 7591 section 2 (default authorization_code) and 2.1 (consistency). */
function checkGrantTypes(fields: Input, authMethod: TokenEndpointAuthMethod): GrantType[] {
  if (!has(fields, 'grant_types')) {
    return ['authorization_code'];
  }
  const given = stringArray(fields, 'grant_types', GRANT_TYPES.length + 5, metadataError);
  if (given.length === 0) throw metadataError('grant_types must not be empty (leave it out for the default, authorization_code)');
  for (const grant of given) {
    if (grant === 'implicit') throw metadataError('grant_types: the implicit grant is not supported (OAuth 2.1 removes it; use authorization_code with PKCE)');
    if (grant === 'password') throw metadataError('grant_types: the resource owner password grant is not supported (OAuth 2.1 removes it, RFC 9700 section 2.4)');
    if (!(GRANT_TYPES as readonly string[]).includes(grant)) throw metadataError(`grant_types: ${describe(grant)} is not supported; use ${GRANT_TYPES.join(', ')}`);
  }
  const grants = given as GrantType[];
  // A refresh token is only ever issued alongside an authorization code's
  // tokens here; client_credentials gets none (RFC 6749 section 4.4.3).
  if (grants.includes('refresh_token') && !grants.includes('authorization_code')) {
    throw metadataError('grant_types: refresh_token needs authorization_code (refresh tokens are issued only with an authorization code)');
  }
  // RFC 6749 section 4.4: only a confidential client may use client_credentials.
  if (grants.includes('client_credentials') && authMethod === 'none') {
    throw metadataError('grant_types: client_credentials needs a confidential client; a public client (token_endpoint_auth_method none) cannot use it');
  }
  return grants;
}

/** RFC 7591 section 2.1: response_types ['code'] goes with, and only with, the authorization_code grant. */
function checkResponseTypes(fields: Input, grants: readonly GrantType[]): 'code'[] {
  const usesCode = grants.includes('authorization_code');
  if (!has(fields, 'response_types')) return usesCode ? ['code'] : [];
  const given = stringArray(fields, 'response_types', 10, metadataError);
  for (const type of given) {
    if (FRONT_CHANNEL_TOKEN_RESPONSE.test(type)) {
      throw metadataError(`response_types: ${describe(type)} is not supported: no implicit or hybrid flows (RFC 9700 section 2.1.2); use "code"`);
    }
    if (type !== 'code') throw metadataError(`response_types: ${describe(type)} is not supported; the only response type is "code"`);
  }
  if (usesCode && given.length === 0) throw metadataError('response_types must be ["code"] for the authorization_code grant (RFC 7591 section 2.1)');
  if (!usesCode && given.length > 0) throw metadataError('response_types "code" needs the authorization_code grant in grant_types (RFC 7591 section 2.1)');
  return given as 'code'[];
}

function uriList(fields: Input, name: string, applicationType: 'web' | 'native'): string[] {
  if (!has(fields, name)) return [];
  const uris = stringArray(fields, name, CLIENT_METADATA_LIMITS.redirectUris, redirectError);
  for (const [index, uri] of uris.entries()) {
    const problem = redirectUriProblem(uri, applicationType);
    if (problem !== undefined) throw redirectError(`${name}[${index}]: ${problem}`);
  }
  return uris;
}

/**
 * Why a redirect URI is refused, or undefined when it is fine. Decisions:
 * - http is allowed only on the loopback IP literals 127.0.0.1 and [::1],
 *   for web and native clients alike (RFC 8252 section 7.3; OAuth 2.1 section
 *   8.4.2), so a developer can run a web app locally.
 * - `http://localhost` is allowed for native apps only: RFC 8252 section 8.3
 *   calls it NOT RECOMMENDED (the name may resolve elsewhere or be
 *   firewalled), and a web app has no reason not to use 127.0.0.1.
 * - Other schemes are private-use schemes, for native apps only, and must be
 *   a reverse domain name (contain a dot, RFC 8252 section 7.1), which also
 *   keeps out `javascript:`, `data:`, `file:` and the like.
 * Loopback port matching (RFC 8252 section 7.3) is the authorize endpoint's
 * business; here the URI is only stored.
 */
export function redirectUriProblem(uri: string, applicationType: 'web' | 'native'): string | undefined {
  if (uri.length === 0) return 'must not be empty';
  if (uri.length > CLIENT_METADATA_LIMITS.uriLength) return `longer than ${CLIENT_METADATA_LIMITS.uriLength} characters`;
  // RFC 9700 section 4.1.3: patterns invite open redirectors; match exactly.
  if (uri.includes('*')) return 'wildcards are not allowed: register every redirect URI in full (RFC 9700 section 4.1.3)';
  if (!URI_CHARACTERS.test(uri)) return 'must be an RFC 3986 URI: no spaces, backslashes or control characters; percent-encode other characters and write an internationalised host in its xn-- form';
  // RFC 6749 section 3.1.2: the redirection endpoint URI MUST NOT include a fragment.
  if (uri.includes('#')) return 'must not contain a fragment (#) (RFC 6749 section 3.1.2)';
  const scheme = SCHEME.exec(uri)?.[1]?.toLowerCase();
  if (scheme === undefined) return 'must be an absolute URI with a scheme (https://...)';
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return 'is not a valid URI';
  }
  // Userinfo (`https://good.example@evil.example/`) makes a URI that reads as
  // one host and goes to another (RFC 9700 section 4.1.1, RFC 3986 section 7.6).
  if (authority(uri)?.includes('@') === true || url.username !== '' || url.password !== '') return 'must not contain userinfo (user@ or user:password@)';
  if ((scheme === 'https' || scheme === 'http') && authority(uri) === undefined) return `must be written ${scheme}://host/...`;
  if (scheme === 'https') return url.hostname === '' ? 'needs a host' : undefined;
  if (scheme === 'http') {
    if (LOOPBACK_IP_HOSTS.has(url.hostname)) return undefined;
    if (url.hostname === 'localhost') {
      return applicationType === 'native' ? undefined : 'http://localhost is allowed for native apps only; use http://127.0.0.1 or http://[::1] (RFC 8252 section 8.3), or https';
    }
    return 'must use https; http is allowed only on a loopback address (http://127.0.0.1 or http://[::1])';
  }
  if (applicationType !== 'native') return `scheme ${scheme}: is allowed for native apps only (application_type native); web apps use https`;
  if (!scheme.includes('.')) return `scheme ${scheme}: a native app's private-use scheme must be a reverse domain name it controls, like com.example.app: (RFC 8252 section 7.1)`;
  return undefined;
}

/** The authority component (RFC 3986 section 3.2) as written, if the URI has one. */
function authority(uri: string): string | undefined {
  const match = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/.exec(uri);
  return match?.[1];
}

/** OIDC Back-Channel Logout 1.0 section 2.2: absolute, no fragment; called by this server, so https (or loopback http). */
function checkBackchannelLogoutUri(value: unknown): string {
  return checkServerCalledUri(value, 'backchannel_logout_uri');
}

/** A URI this server calls (absolute, no fragment, https or loopback http), by the rules of a web redirect URI. */
function checkServerCalledUri(value: unknown, name: string): string {
  if (typeof value !== 'string') throw metadataError(`${name} must be a string (got ${describe(value)})`);
  const problem = redirectUriProblem(value, 'web');
  if (problem !== undefined) throw metadataError(`${name}: ${problem}`);
  return value;
}

/**
 * RFC 8705 section 2.1.2: a tls_client_auth client registers exactly one of
 * the subject DN and the four SAN types, which the certificate it presents
 * must carry. Another method has none of them (they would suggest a check
 * that never runs).
 */
function checkTlsSubject(fields: Input, authMethod: TokenEndpointAuthMethod): { field: TlsSubjectField; value: string } | undefined {
  const given = TLS_SUBJECT_FIELDS.filter((field) => has(fields, field));
  if (authMethod !== 'tls_client_auth') {
    if (given.length > 0) throw metadataError(`${given[0]!} is only for token_endpoint_auth_method tls_client_auth`);
    return undefined;
  }
  if (given.length !== 1) {
    throw metadataError(`token_endpoint_auth_method tls_client_auth needs exactly one of ${TLS_SUBJECT_FIELDS.join(', ')} (RFC 8705 section 2.1.2)${given.length > 1 ? `; got ${given.join(' and ')}` : ''}`);
  }
  const field = given[0]!;
  const value = fields[field];
  if (typeof value !== 'string') throw metadataError(`${field} must be a string (got ${describe(value)})`);
  const problem = tlsSubjectProblem(field, value);
  if (problem !== undefined) throw metadataError(`${field}: ${problem}`);
  return { field, value };
}

/**
 * `cert_sans` (a Portcullis extension): the names the built-in CA may put in
 * this client's certificates. Only the operator sets it; through dynamic
 * registration a client could name any workload and then be issued its
 * identity (RFC 7591 section 5: self-asserted metadata is not trusted).
 * Each entry is `spiffe://trust-domain/path` (a workload SPIFFE ID, which
 * has a path), `dns:name` (stored lower case) or `ip:address` (stored in
 * its canonical form).
 */
function checkCertSans(fields: Input, operator: boolean): string[] | undefined {
  if (!has(fields, 'cert_sans')) return undefined;
  if (!operator) throw metadataError('cert_sans is set by the server\'s operator only (portcullis client create --cert-san), never through dynamic registration');
  const given = stringArray(fields, 'cert_sans', CLIENT_METADATA_LIMITS.certSans, metadataError);
  const sans = given.map((value, index) => {
    const problem = certSanProblem(value);
    if (typeof problem === 'string') throw metadataError(`cert_sans[${index}]: ${problem}`);
    return problem.value;
  });
  const duplicate = sans.find((san, index) => sans.indexOf(san) !== index);
  if (duplicate !== undefined) throw metadataError(`cert_sans: ${describe(duplicate)} is listed twice`);
  return sans.length === 0 ? undefined : sans;
}

function certSanProblem(value: string): string | { value: string } {
  if (value.length > CLIENT_METADATA_LIMITS.certSanLength) return `must be 1 to ${CLIENT_METADATA_LIMITS.certSanLength} characters`;
  try {
    return { value: parseAllowedName(value).written };
  } catch (error) {
    return `${describe(value)}: ${(error as Error).message}`;
  }
}

function checkClientName(value: unknown): string {
  if (typeof value !== 'string') throw metadataError(`client_name must be a string (got ${describe(value)})`);
  const name = value.trim();
  if (name.length === 0) throw metadataError('client_name must not be empty');
  if (name.length > CLIENT_METADATA_LIMITS.clientName) throw metadataError(`client_name: at most ${CLIENT_METADATA_LIMITS.clientName} characters`);
  // Shown to users on the consent page: no control or bidi-override
  // characters that could disguise it as another name.
  if (!name.isWellFormed() || /[\p{Cc}\u200e\u200f\u202a-\u202e\u2066-\u2069]/u.test(name)) throw metadataError('client_name must not contain control or direction-override characters');
  return name;
}

/** RFC 6749 section 3.3 syntax; every scope must be one this server offers. Default: openid. */
function checkScope(fields: Input, allowedScopes: readonly string[], hint: string | undefined): string {
  if (!has(fields, 'scope')) return 'openid';
  const value = fields['scope'];
  if (typeof value !== 'string') throw metadataError(`scope must be a space-separated string (got ${describe(value)})`);
  if (value.length > CLIENT_METADATA_LIMITS.scopeLength) throw metadataError(`scope: at most ${CLIENT_METADATA_LIMITS.scopeLength} characters`);
  const scopes = value.split(' ');
  if (scopes.some((scope) => !SCOPE_TOKEN.test(scope))) throw metadataError('scope must be scope names separated by single spaces (RFC 6749 section 3.3)');
  if (scopes.length > CLIENT_METADATA_LIMITS.scopes) throw metadataError(`scope: at most ${CLIENT_METADATA_LIMITS.scopes} scopes`);
  const allowed = new Set(allowedScopes);
  const unknown = scopes.filter((scope) => !allowed.has(scope));
  if (unknown.length > 0) throw metadataError(`scope: ${unknown.slice(0, 5).map(describe).join(', ')} ${unknown.length === 1 ? 'is' : 'are'} not offered to this client${hint === undefined ? '' : `; ${hint}`}`);
  return [...new Set(scopes)].join(' ');
}

/**
 * RFC 7517 JWK set of the client's public keys. Each key is parsed as a
 * public key (so a malformed one fails here, not at the first assertion),
 * must be OKP (Ed25519), EC (P-256/384/521) or RSA of at least 2048 bits
 * (RFC 8725 section 3.5 on weak keys), and must not carry private members.
 */
function checkJwks(value: unknown): { keys: Record<string, unknown>[] } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw metadataError('jwks must be a JWK Set object: {"keys": [...]} (RFC 7517 section 5)');
  const keys = (value as Input)['keys'];
  if (!Array.isArray(keys) || keys.length === 0) throw metadataError('jwks.keys must be a non-empty array of JWKs');
  if (keys.length > CLIENT_METADATA_LIMITS.jwksKeys) throw metadataError(`jwks: at most ${CLIENT_METADATA_LIMITS.jwksKeys} keys`);
  const checked = keys.map((key: unknown, index) => checkJwk(key, `jwks.keys[${index}]`));
  const kids = checked.map((key) => key['kid']).filter((kid) => kid !== undefined);
  if (new Set(kids).size !== kids.length) throw metadataError('jwks: two keys share one kid');
  if (!checked.some(isSigningKey)) throw metadataError('jwks needs at least one signing key (no "use", or "use": "sig")');
  return { keys: checked };
}

function isSigningKey(key: Readonly<Record<string, unknown>>): boolean {
  const keyOps = key['key_ops'] as readonly string[] | undefined;
  return (key['use'] === undefined || key['use'] === 'sig') && (keyOps === undefined || keyOps.includes('verify'));
}

function checkJwk(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw metadataError(`${where} must be a JWK object`);
  const jwk = value as Input;
  const privateMember = PRIVATE_JWK_MEMBERS.find((member) => Object.hasOwn(jwk, member));
  if (privateMember !== undefined) throw metadataError(`${where} contains private key material ("${privateMember}"): register the public key only, and keep the private key secret`);
  const kty = jwk['kty'];
  if (kty !== 'OKP' && kty !== 'EC' && kty !== 'RSA') throw metadataError(`${where}: kty must be OKP, EC or RSA (got ${describe(kty)})`);
  const kept: Record<string, unknown> = {};
  for (const member of PUBLIC_JWK_MEMBERS) if (Object.hasOwn(jwk, member)) kept[member] = jwk[member];
  for (const member of ['kid', 'use', 'alg', 'crv', 'x', 'y', 'n', 'e']) {
    if (kept[member] !== undefined && typeof kept[member] !== 'string') throw metadataError(`${where}: ${member} must be a string`);
  }
  if (typeof kept['kid'] === 'string' && (kept['kid'].length === 0 || kept['kid'].length > CLIENT_METADATA_LIMITS.kidLength)) throw metadataError(`${where}: kid must be 1 to ${CLIENT_METADATA_LIMITS.kidLength} characters`);
  if (kept['use'] !== undefined && kept['use'] !== 'sig' && kept['use'] !== 'enc') throw metadataError(`${where}: use must be sig or enc`);
  if (kept['key_ops'] !== undefined) {
    const ops = kept['key_ops'];
    if (!Array.isArray(ops) || ops.length > 8 || ops.some((op) => typeof op !== 'string' || op.length > 32)) throw metadataError(`${where}: key_ops must be an array of operation names`);
  }
  if (kept['alg'] !== undefined && !CLIENT_KEY_ALGORITHMS.has(kept['alg'] as string)) throw metadataError(`${where}: alg ${describe(kept['alg'])} is not an asymmetric signing algorithm this server accepts`);
  if (kty === 'OKP' && kept['crv'] !== 'Ed25519') throw metadataError(`${where}: an OKP key must be crv Ed25519 (got ${describe(kept['crv'])})`);
  if (kty === 'EC' && !EC_CURVES.has(kept['crv'] as string)) throw metadataError(`${where}: an EC key must be on P-256, P-384 or P-521 (got ${describe(kept['crv'])})`);
  let publicKey;
  try {
    publicKey = createPublicKey({ key: kept, format: 'jwk' });
  } catch {
    throw metadataError(`${where} is not a valid ${kty} public key`);
  }
  if (kty === 'RSA' && (publicKey.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_MODULUS_BITS) throw metadataError(`${where}: an RSA key must have at least ${MIN_RSA_MODULUS_BITS} bits`);
  if (kept['x5c'] !== undefined) checkX5c(kept['x5c'], publicKey, where);
  return kept;
}

/**
 * RFC 7517 section 4.7: x5c is an array of base64 (not base64url) DER
 * certificates, the first of which holds the key the JWK describes. Each
 * must parse as X.509; the first must carry this very key.
 */
function checkX5c(value: unknown, publicKey: ReturnType<typeof createPublicKey>, where: string): void {
  const limits = CLIENT_METADATA_LIMITS;
  if (!Array.isArray(value) || value.length === 0 || value.length > limits.x5cCertificates) throw metadataError(`${where}: x5c must be an array of 1 to ${limits.x5cCertificates} certificates`);
  for (const [index, item] of value.entries()) {
    if (typeof item !== 'string' || item.length > limits.x5cCertificateLength || !/^[A-Za-z0-9+/]+={0,2}$/.test(item)) {
      throw metadataError(`${where}: x5c[${index}] must be a base64 (not base64url) DER certificate of at most ${limits.x5cCertificateLength} characters`);
    }
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(Buffer.from(item, 'base64'));
    } catch {
      throw metadataError(`${where}: x5c[${index}] is not an X.509 certificate`);
    }
    if (index === 0 && !certificate.publicKey.equals(publicKey)) throw metadataError(`${where}: the key of x5c[0] is not the key this JWK describes (RFC 7517 section 4.7)`);
  }
}
