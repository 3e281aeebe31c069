/**
 * The one registry of errors the HTTP server answers. Every error response
 * comes from a code here: its HTTP status, its RFC 9457 title, and the
 * RFC 6749 section 5.2 `error` value used by OAuth endpoints. A test checks
 * that the registry is complete and consistent.
 */
import type { OAuthErrorCode } from '../oauth/index.ts';

export interface ErrorSpec {
  readonly status: number;
  readonly title: string;
  /** RFC 6749 section 5.2 / RFC 6750 section 3.1 error code for OAuth endpoints. */
  readonly oauth: string;
}

export const errorRegistry = {
  bad_request: { status: 400, title: 'Bad request', oauth: 'invalid_request' },
  malformed_body: { status: 400, title: 'Malformed request body', oauth: 'invalid_request' },
  validation_failed: { status: 400, title: 'Request validation failed', oauth: 'invalid_request' },
  unauthorized: { status: 401, title: 'Authentication required', oauth: 'invalid_client' },
  forbidden: { status: 403, title: 'Forbidden', oauth: 'access_denied' },
  not_found: { status: 404, title: 'Not found', oauth: 'invalid_request' },
  method_not_allowed: { status: 405, title: 'Method not allowed', oauth: 'invalid_request' },
  request_timeout: { status: 408, title: 'Request timeout', oauth: 'invalid_request' },
  body_too_large: { status: 413, title: 'Request body too large', oauth: 'invalid_request' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type', oauth: 'invalid_request' },
  too_many_requests: { status: 429, title: 'Too many requests', oauth: 'slow_down' },
  header_too_large: { status: 431, title: 'Request header fields too large', oauth: 'invalid_request' },
  // OAuth errors: the key is the RFC error value itself (src/oauth/errors.ts).
  invalid_request: { status: 400, title: 'Invalid OAuth request', oauth: 'invalid_request' },
  // RFC 6749 section 5.2: 401 when the client authenticated (or tried to) and failed.
  invalid_client: { status: 401, title: 'Client authentication failed', oauth: 'invalid_client' },
  invalid_grant: { status: 400, title: 'Invalid grant', oauth: 'invalid_grant' },
  unauthorized_client: { status: 400, title: 'Client not authorized for this', oauth: 'unauthorized_client' },
  unsupported_grant_type: { status: 400, title: 'Unsupported grant type', oauth: 'unsupported_grant_type' },
  invalid_scope: { status: 400, title: 'Invalid scope', oauth: 'invalid_scope' },
  invalid_target: { status: 400, title: 'Invalid resource', oauth: 'invalid_target' },
  unsupported_token_type: { status: 400, title: 'Unsupported token type', oauth: 'unsupported_token_type' },
  invalid_token: { status: 401, title: 'Invalid access token', oauth: 'invalid_token' },
  // RFC 6750 section 3.1: a valid token without the scope the resource needs.
  insufficient_scope: { status: 403, title: 'Insufficient scope', oauth: 'insufficient_scope' },
  invalid_client_metadata: { status: 400, title: 'Invalid client metadata', oauth: 'invalid_client_metadata' },
  invalid_redirect_uri: { status: 400, title: 'Invalid redirect URI', oauth: 'invalid_redirect_uri' },
  invalid_dpop_proof: { status: 400, title: 'Invalid DPoP proof', oauth: 'invalid_dpop_proof' },
  use_dpop_nonce: { status: 400, title: 'DPoP nonce required', oauth: 'use_dpop_nonce' },
  access_denied: { status: 403, title: 'Access denied', oauth: 'access_denied' },
  // A credential throttle (RFC 6585 section 4: 429 with Retry-After). The
  // error value is RFC 6749 section 4.1.2.1's temporarily_unavailable, not
  // invalid_client: the credential was not even checked, and a client told
  // "invalid_client" would think its secret wrong.
  temporarily_unavailable: { status: 429, title: 'Too many failed attempts', oauth: 'temporarily_unavailable' },
  // The built-in CA's refusals (src/pki): one code per rule, so a client can tell what to fix.
  malformed_csr: { status: 400, title: 'Malformed certificate signing request', oauth: 'invalid_request' },
  bad_csr_signature: { status: 400, title: 'Certificate signing request signature invalid', oauth: 'invalid_request' },
  unsupported_algorithm: { status: 400, title: 'Signature algorithm not accepted', oauth: 'invalid_request' },
  weak_key: { status: 400, title: 'Public key not accepted', oauth: 'invalid_request' },
  ca_requested: { status: 403, title: 'CA certificates are not issued', oauth: 'access_denied' },
  spiffe_id_required: { status: 400, title: 'SPIFFE ID required', oauth: 'invalid_request' },
  multiple_uri_sans: { status: 400, title: 'More than one URI SAN', oauth: 'invalid_request' },
  unsupported_name: { status: 400, title: 'Name type not issued', oauth: 'invalid_request' },
  name_not_permitted: { status: 403, title: 'Name not permitted', oauth: 'access_denied' },
  lifetime_too_long: { status: 400, title: 'Certificate lifetime not allowed', oauth: 'invalid_request' },
  unknown_certificate: { status: 403, title: 'Certificate not issued by this CA', oauth: 'access_denied' },
  certificate_revoked: { status: 403, title: 'Certificate revoked', oauth: 'access_denied' },
  certificate_expired: { status: 403, title: 'Certificate expired', oauth: 'access_denied' },
  ca_not_initialised: { status: 404, title: 'No certificate authority', oauth: 'invalid_request' },
  // The signal transmitter (src/signals): SSF 1.0 section 8.1 status codes.
  too_many_streams: { status: 409, title: 'Stream limit reached', oauth: 'invalid_request' },
  conflict: { status: 409, title: 'Conflict', oauth: 'invalid_request' },
  internal_error: { status: 500, title: 'Internal server error', oauth: 'server_error' },
  service_unavailable: { status: 503, title: 'Service unavailable', oauth: 'temporarily_unavailable' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof errorRegistry;

// Every OAuth error the authorization server raises has an entry above.
null as unknown as OAuthErrorCode satisfies ErrorCode;

export const errorCodes = Object.keys(errorRegistry) as ErrorCode[];

/** URI that identifies a problem type (RFC 9457 section 3.1.1). */
export function problemType(code: ErrorCode): string {
  return `urn:portcullis:problem:${code.replaceAll('_', '-')}`;
}

/**
 * An error a handler throws to answer a client: `detail` is shown to the
 * client, so it must be written for them and carry no secret.
 */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  readonly code: ErrorCode;
  readonly detail: string;
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: ErrorCode, detail: string, options: { headers?: Record<string, string>; cause?: unknown } = {}) {
    super(detail, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.detail = detail;
    this.headers = options.headers ?? {};
  }

  get status(): number {
    return errorRegistry[this.code].status;
  }
}

/** The registry code for a status Fastify or Node chose, for errors we did not raise. */
export function codeForStatus(status: number): ErrorCode {
  const match = errorCodes.find((code) => errorRegistry[code].status === status);
  if (match !== undefined) return match;
  return status >= 500 ? 'internal_error' : 'bad_request';
}
