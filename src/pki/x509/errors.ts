/**
 * Why a certificate request is refused. Each code is one rule of the
 * issuance policy; the HTTP layer turns it into a problem+json answer
 * (RFC 9457) whose type names the code, so a client can tell "fix your CSR"
 * from "ask for another name".
 */
export type RequestRefusal =
  | 'malformed_csr'
  | 'bad_csr_signature'
  | 'unsupported_algorithm'
  | 'weak_key'
  | 'ca_requested'
  | 'spiffe_id_required'
  | 'multiple_uri_sans'
  | 'unsupported_name'
  | 'name_not_permitted'
  | 'lifetime_too_long';

export class CertificateRequestError extends Error {
  readonly code: RequestRefusal;

  constructor(code: RequestRefusal, message: string) {
    super(message);
    this.name = 'CertificateRequestError';
    this.code = code;
  }
}
