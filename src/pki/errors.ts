/** Refusals of the CA that are not about a CSR (those are CertificateRequestError). */
export type AuthorityRefusal = 'not_initialised' | 'already_initialised' | 'unknown_certificate' | 'certificate_revoked' | 'certificate_expired' | 'root_key_required' | 'enrolment_refused';

export class AuthorityError extends Error {
  readonly code: AuthorityRefusal;

  constructor(code: AuthorityRefusal, message: string) {
    super(message);
    this.name = 'AuthorityError';
    this.code = code;
  }
}
