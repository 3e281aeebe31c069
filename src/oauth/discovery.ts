/**
 * Authorization server metadata (RFC 8414 section 2) and OpenID Provider
 * metadata (OpenID Connect Discovery 1.0 section 3). They list exactly what
 * this server does: a value appears here only once the feature behind it is
 * built and tested, because clients configure themselves from it.
 */
import { SIGNING_ALGORITHMS, algorithmsFor } from '../crypto/index.ts';
import { DPOP_ALGORITHMS } from './dpop.ts';
import { SCOPE_CLAIMS, USER_SCOPE_NAMES } from './scopes.ts';
import { SUPPORTED_GRANT_TYPES } from './token-endpoint.ts';

/** Paths of the endpoints, relative to the issuer. */
export const ENDPOINT_PATHS = {
  authorization: '/authorize',
  par: '/par',
  jwks: '/jwks',
  token: '/token',
  userinfo: '/userinfo',
  introspection: '/introspect',
  revocation: '/revoke',
  registration: '/register',
  endSession: '/logout',
} as const;

export const CLIENT_AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth', 'none'] as const;

/** RFC 8705 section 5: the endpoints that take a TLS client certificate, under their metadata names. */
const MTLS_ENDPOINTS = {
  token_endpoint: ENDPOINT_PATHS.token,
  revocation_endpoint: ENDPOINT_PATHS.revocation,
  introspection_endpoint: ENDPOINT_PATHS.introspection,
  userinfo_endpoint: ENDPOINT_PATHS.userinfo,
  pushed_authorization_request_endpoint: ENDPOINT_PATHS.par,
} as const;

/** Algorithms we publish for client assertions (client-auth.ts accepts these and a few more). */
const ASSERTION_SIGNING_ALGORITHMS = algorithmsFor('advertisedForClientAssertion');

/** An endpoint's absolute URL: the issuer (which may have a path) plus the endpoint's path. */
export function endpointUrl(issuer: string, path: string): string {
  return `${issuer.replace(/\/+$/, '')}${path}`;
}

export interface MetadataOptions {
  readonly issuer: string;
  readonly scopes: readonly string[];
  /** Dynamic registration is on (RFC 7591). */
  readonly registration: boolean;
  /** `tls.mtlsPort`: the listener that asks for client certificates (RFC 8705 section 5). */
  readonly mtlsPort?: number | undefined;
}

/**
 * RFC 8705 section 5: where the endpoints are reached with a client
 * certificate: the issuer's host and path on the mTLS port, always https.
 * Port 0 (any free port) is left out: the port a client must use is not
 * known when the metadata is made.
 */
function mtlsEndpointAliases(issuer: string, mtlsPort: number | undefined): Record<string, string> | undefined {
  if (mtlsPort === undefined || mtlsPort === 0) return undefined;
  const url = new URL(issuer);
  const base = `https://${url.hostname}:${mtlsPort}${url.pathname.replace(/\/+$/, '')}`;
  return Object.fromEntries(Object.entries(MTLS_ENDPOINTS).map(([name, path]) => [name, `${base}${path}`]));
}

export function authorizationServerMetadata(options: MetadataOptions): Record<string, unknown> {
  const { issuer } = options;
  const url = (path: string) => endpointUrl(issuer, path);
  const aliases = mtlsEndpointAliases(issuer, options.mtlsPort);
  return {
    issuer,
    authorization_endpoint: url(ENDPOINT_PATHS.authorization),
    token_endpoint: url(ENDPOINT_PATHS.token),
    jwks_uri: url(ENDPOINT_PATHS.jwks),
    pushed_authorization_request_endpoint: url(ENDPOINT_PATHS.par),
    introspection_endpoint: url(ENDPOINT_PATHS.introspection),
    revocation_endpoint: url(ENDPOINT_PATHS.revocation),
    ...(options.registration && { registration_endpoint: url(ENDPOINT_PATHS.registration) }),
    scopes_supported: [...new Set([...USER_SCOPE_NAMES, ...options.scopes])],
    // OAuth 2.1: the code flow only; no implicit, no hybrid.
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: SUPPORTED_GRANT_TYPES,
    // RFC 9700 section 2.1.1: PKCE with S256, required of every client.
    code_challenge_methods_supported: ['S256'],
    token_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
    token_endpoint_auth_signing_alg_values_supported: ASSERTION_SIGNING_ALGORITHMS,
    introspection_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS.filter((method) => method !== 'none'),
    introspection_endpoint_auth_signing_alg_values_supported: ASSERTION_SIGNING_ALGORITHMS,
    revocation_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
    revocation_endpoint_auth_signing_alg_values_supported: ASSERTION_SIGNING_ALGORITHMS,
    // RFC 9207: every authorization response names its issuer.
    authorization_response_iss_parameter_supported: true,
    require_pushed_authorization_requests: false,
    // RFC 9068 access tokens are signed with these.
    access_token_signing_alg_values_supported: SIGNING_ALGORITHMS,
    // RFC 9449 section 5.1.
    dpop_signing_alg_values_supported: DPOP_ALGORITHMS,
    // RFC 8705 sections 3.3 and 5.
    tls_client_certificate_bound_access_tokens: true,
    ...(aliases !== undefined && { mtls_endpoint_aliases: aliases }),
  };
}

/** OpenID Connect Discovery 1.0 section 3: the RFC 8414 fields plus the OpenID ones. */
export function openIdProviderMetadata(options: MetadataOptions): Record<string, unknown> {
  return {
    ...authorizationServerMetadata(options),
    userinfo_endpoint: endpointUrl(options.issuer, ENDPOINT_PATHS.userinfo),
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: SIGNING_ALGORITHMS,
    claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'auth_time', 'nonce', 'at_hash', 'amr', 'sid', ...Object.values(SCOPE_CLAIMS).flat()],
    claims_parameter_supported: false,
    request_parameter_supported: false,
    request_uri_parameter_supported: false,
    prompt_values_supported: ['none', 'login', 'consent', 'select_account'],
    // OIDC RP-Initiated Logout 1.0 and Back-Channel Logout 1.0.
    end_session_endpoint: endpointUrl(options.issuer, ENDPOINT_PATHS.endSession),
    backchannel_logout_supported: true,
    backchannel_logout_session_supported: true,
  };
}
