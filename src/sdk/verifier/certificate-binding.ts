/**
 * Certificate-bound access tokens (RFC 8705 section 3): a token whose
 * `cnf` names `x5t#S256` is good only on a TLS connection whose client
 * certificate has that SHA-256 thumbprint of its DER encoding (section
 * 3.1). TLS already proved the client holds the certificate's key; here the
 * certificate is only compared, never validated (section 3 allows
 * self-signed ones, and the token, not the chain, says which one counts).
 */
import { createHash, X509Certificate } from 'node:crypto';
import { constantTimeEqual } from './constant-time.ts';
import { VerifyError } from './errors.ts';

/** base64url(SHA-256(DER)) of a certificate, as `x5t#S256` spells it. */
export function certificateThumbprint(certificate: Uint8Array | X509Certificate): string {
  const der = certificate instanceof X509Certificate ? certificate.raw : certificate;
  return createHash('sha256').update(der).digest('base64url');
}

export function checkCertificateBinding(expected: unknown, certificate: Uint8Array | X509Certificate | undefined): void {
  if (typeof expected !== 'string' || expected === '') throw new VerifyError('invalid_token', 'the token has a malformed cnf claim');
  if (certificate === undefined) throw new VerifyError('invalid_token', 'the token is bound to a client certificate and the connection presented none');
  if (!constantTimeEqual(certificateThumbprint(certificate), expected)) throw new VerifyError('invalid_token', 'the token is bound to another client certificate');
}
