/**
 * Errors the authorization server answers with. Each code is an error value
 * registered for OAuth (RFC 6749 section 5.2, RFC 6750 section 3.1, RFC 7009
 * section 2.2.1, RFC 7591 section 3.2.2, RFC 8707 section 2, RFC 9449
 * section 7.1 and 8); the HTTP layer maps it to a status through its one error
 * registry (src/server/errors.ts), which holds an entry of the same name for
 * every code here (the compiler checks it).
 */
export const OAUTH_ERROR_CODES = [
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
  'invalid_target',
  'unsupported_token_type',
  'invalid_token',
  'insufficient_scope',
  'invalid_client_metadata',
  'invalid_redirect_uri',
  'invalid_dpop_proof',
  'use_dpop_nonce',
  'access_denied',
  'temporarily_unavailable',
] as const;

export type OAuthErrorCode = (typeof OAUTH_ERROR_CODES)[number];

/**
 * A refusal the client is told about. The message becomes
 * `error_description`: written for the client's developer, never carrying a
 * secret, a stack or a store detail.
 */
export class OAuthError extends Error {
  override readonly name = 'OAuthError';
  readonly code: OAuthErrorCode;
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: OAuthErrorCode, description: string, options: { headers?: Record<string, string> } = {}) {
    super(description);
    this.code = code;
    this.headers = options.headers ?? {};
  }
}
