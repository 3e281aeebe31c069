/**
 * The one registry of the verifier's refusals: a stable code, its HTTP
 * status and the `error` value its challenge carries (RFC 6750 section 3.1,
 * RFC 9449 sections 7.1 and 8). Callers switch on `code`; the adapters
 * answer `status` with the `headers` of the failure.
 */
export type VerifyErrorCode =
  | 'missing_token'
  | 'invalid_request'
  | 'invalid_token'
  | 'insufficient_scope'
  | 'invalid_dpop_proof'
  | 'use_dpop_nonce'
  | 'temporarily_unavailable';

export interface VerifyErrorEntry {
  readonly status: number;
  /** The challenge's `error` attribute; absent for a request without credentials (RFC 6750 section 3.1). */
  readonly error?: string;
}

export const VERIFY_ERRORS: Readonly<Record<VerifyErrorCode, VerifyErrorEntry>> = {
  // RFC 6750 section 3.1: "If the request lacks any authentication information ... SHOULD NOT include an error code".
  missing_token: { status: 401 },
  invalid_request: { status: 400, error: 'invalid_request' },
  invalid_token: { status: 401, error: 'invalid_token' },
  insufficient_scope: { status: 403, error: 'insufficient_scope' },
  // RFC 9449 section 7.1: a proof that fails its checks is invalid_dpop_proof on the DPoP challenge.
  invalid_dpop_proof: { status: 401, error: 'invalid_dpop_proof' },
  // RFC 9449 section 9: a resource server asks for its nonce with a 401 and DPoP-Nonce.
  use_dpop_nonce: { status: 401, error: 'use_dpop_nonce' },
  // The issuer's keys could not be fetched: the client's token may well be good, so not a 401.
  temporarily_unavailable: { status: 503 },
};

/** A refusal inside the pipeline; `createVerifier` turns it into a `VerifyFailure`. */
export class VerifyError extends Error {
  override readonly name = 'VerifyError';
  readonly code: VerifyErrorCode;
  /**
   * A fixed text for the client: never a claim, a header or a token
   * fragment (RFC 6750 section 3 limits the characters, and echoing a
   * token back helps nobody but an attacker).
   */
  readonly description: string;
  constructor(code: VerifyErrorCode, description: string, options?: ErrorOptions) {
    super(description, options);
    this.code = code;
    this.description = description;
  }
}
