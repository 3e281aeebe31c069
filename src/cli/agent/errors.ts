/**
 * How `portcullis agent` ends, and why an attempt failed. An attempt that
 * failed with `CaUnavailableError` is tried again (with backoff); any other
 * failure ends the agent with one line and the exit code of its kind.
 */

/** The exit codes of `portcullis agent` (README: "Service certificates"). */
export const AGENT_EXIT = {
  /** Enrolled (--once), or stopped by SIGTERM/SIGINT. */
  ok: 0,
  /** Refused or misconfigured: a bad flag, a refused credential or name, no mTLS endpoint to renew at, an untrusted server. */
  refused: 1,
  /** --once only: the CA was unreachable or answered 5xx; try again later. */
  unavailable: 2,
  /** The certificate is revoked (the renewal was refused for it, or the CRL lists it). */
  revoked: 3,
  /** The certificate expired before it could be renewed, and there is no credential to enrol again with. */
  expired: 4,
} as const;

export type AgentExitCode = (typeof AGENT_EXIT)[keyof typeof AGENT_EXIT];

/** Ends the agent: `message` is the one line it prints (written for the operator, without secrets). */
export class AgentExit extends Error {
  override readonly name = 'AgentExit';
  readonly exitCode: AgentExitCode;

  constructor(exitCode: AgentExitCode, message: string) {
    super(message);
    this.exitCode = exitCode;
  }
}

/** The CA could not be reached, timed out, or answered 5xx or 429: worth another attempt. */
export class CaUnavailableError extends Error {
  override readonly name = 'CaUnavailableError';
  /** From a Retry-After header, when the CA sent one. */
  readonly retryAfterMs: number | undefined;

  constructor(message: string, retryAfterMs?: number) {
    super(message);
    this.retryAfterMs = retryAfterMs;
  }
}

/** The CA (or the token endpoint) refused the request: a 4xx answer, or a TLS alert about our certificate. */
export class CaRefusalError extends Error {
  override readonly name = 'CaRefusalError';
  /** The RFC 9457 problem type, the OAuth error, or the TLS error code. */
  readonly type: string;
  readonly status: number | undefined;

  constructor(type: string, message: string, status?: number) {
    super(message);
    this.type = type;
    this.status = status;
  }
}

/** The CA says the certificate we hold is revoked. */
export class CertificateRevokedError extends Error {
  override readonly name = 'CertificateRevokedError';
}

/** SIGTERM or SIGINT arrived while the agent waited. */
export class AgentStopped extends Error {
  override readonly name = 'AgentStopped';
}
