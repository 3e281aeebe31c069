/**
 * The one registry of the errors this SDK reports about a SET, keyed by the
 * RFC 8935 section 2.4 error codes (the same codes RFC 8936 section 2.4
 * uses in `setErrs`), and the error for a transmitter that cannot be
 * reached (a key set or configuration fetch that failed): that one is not
 * the SET's fault, so it must never be reported to the transmitter as a
 * bad SET, which would make it drop the event.
 */

/** RFC 8935 section 2.4 / RFC 8936 section 2.4 "Security Event Token Error Codes". */
export type SetErrorCode = 'invalid_request' | 'invalid_key' | 'invalid_issuer' | 'invalid_audience' | 'authentication_failed' | 'access_denied';

/** Each code with its HTTP status on the push endpoint and its registered meaning. */
export const SET_ERROR_CODES: Readonly<Record<SetErrorCode, { readonly status: 400 | 401 | 403; readonly meaning: string }>> = {
  invalid_request: { status: 400, meaning: 'the request body cannot be parsed as a SET, or the event does not conform to its definition' },
  invalid_key: { status: 400, meaning: 'a key used to sign the SET is invalid or unacceptable to the recipient' },
  invalid_issuer: { status: 400, meaning: 'the SET issuer is invalid for the recipient' },
  invalid_audience: { status: 400, meaning: 'the SET audience does not correspond to the recipient' },
  // RFC 8935 section 2.3: authentication and authorisation failures of the HTTP request use 401 and 403 (RFC 9110 sections 15.5.2, 15.5.4).
  authentication_failed: { status: 401, meaning: 'the recipient could not authenticate the transmitter' },
  access_denied: { status: 403, meaning: 'the transmitter is not authorised to transmit the SET to the recipient' },
};

/** A SET refused: `code` is what goes into `err`, `message` into `description` (RFC 8935 section 2.3). */
export class SetVerificationError extends Error {
  readonly code: SetErrorCode;

  constructor(code: SetErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SetVerificationError';
    this.code = code;
  }
}

/**
 * The transmitter's configuration or key set could not be fetched or is
 * unusable, or a SET names a key that is not in the cached set while a
 * refetch is not yet allowed (a rotation the cache has not seen). Transient from the SET's point of view: a push endpoint answers
 * 503 so the transmitter retries (RFC 8935 section 2.3), a poll client does
 * not acknowledge the SET and gets it again.
 */
export class SignalsUnavailableError extends Error {
  readonly code = 'SIGNALS_UNAVAILABLE';
  /** How long to wait before trying again, when known (the key set's refetch cool-down); else undefined. */
  readonly retryAfterMs: number | undefined;

  constructor(message: string, options?: { cause?: unknown; retryAfterMs?: number }) {
    super(message, options);
    this.name = 'SignalsUnavailableError';
    this.retryAfterMs = options?.retryAfterMs;
  }
}
